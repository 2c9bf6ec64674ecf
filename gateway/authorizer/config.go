package authorizer

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Config is a listener's `authorizer:` section. Exactly one of URL and Command.
//
//	authorizer:
//	  url: http://127.0.0.1:9000/authorize   # or unix:/run/edgegw/authorizer.sock
//	  # command: [/usr/lib/edgegw/authorizer, --verbose]
//	  timeout: 5s          # per call, AWS's limit for a custom authorizer
//	  rate: 20             # calls per second, sustained (token bucket)
//	  burst: 40            # calls at once after a quiet spell
//	  max_concurrent: 4    # calls in flight
//	  token_signing:       # optional: verify the token's signature before calling
//	    token_key_name: token
//	    public_keys: [/etc/edgegw/authorizer-signing.pem]
type Config struct {
	URL           string        `yaml:"url"`
	Command       []string      `yaml:"command"`
	Timeout       time.Duration `yaml:"timeout"`
	Rate          float64       `yaml:"rate"`
	Burst         int           `yaml:"burst"`
	MaxConcurrent int           `yaml:"max_concurrent"`
	TokenSigning  *TokenSigning `yaml:"token_signing"`
}

// TokenSigning enables AWS's token signature check: the client puts
// `TOKEN_KEY_NAME=TOKEN&x-amz-customauthorizer-signature=SIG` in the query string of
// its MQTT username; SIG is base64 RSA-SHA256 (PKCS #1 v1.5) over TOKEN. A connect
// whose signature does not verify is denied without calling the authorizer.
type TokenSigning struct {
	TokenKeyName string   `yaml:"token_key_name"`
	PublicKeys   []string `yaml:"public_keys"` // PEM files, RSA of at least 2048 bits (at most 2, as AWS)
}

// Defaults, applied by WithDefaults.
const (
	DefaultTimeout       = 5 * time.Second // AWS's timeout for a custom authorizer Lambda
	DefaultRate          = 20.0
	DefaultBurst         = 40
	DefaultMaxConcurrent = 4
	maxTimeout           = time.Minute
)

// WithDefaults returns c with every unset limit at its default.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	return c
}

// Validate checks the section (after WithDefaults). Errors name the key and say
// what to write instead; all are returned at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("authorizer.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.URL == "" && len(c.Command) == 0:
		bad("url", "give url (a local HTTP endpoint) or command (an executable)")
	case c.URL != "" && len(c.Command) > 0:
		bad("url", "give url or command, not both")
	case c.URL != "":
		if _, err := parseEndpoint(c.URL); err != nil {
			bad("url", "%v", err)
		}
	default:
		if c.Command[0] == "" {
			bad("command", "the first element is the executable to run; it is empty")
		}
	}
	if c.Timeout <= 0 || c.Timeout > maxTimeout {
		bad("timeout", "%v: want more than 0 and at most %v (AWS allows an authorizer 5s)", c.Timeout, maxTimeout)
	}
	if c.Rate <= 0 {
		bad("rate", "%v: want calls per second above 0", c.Rate)
	}
	if c.Burst < 1 {
		bad("burst", "%d: want at least 1", c.Burst)
	}
	if c.MaxConcurrent < 1 {
		bad("max_concurrent", "%d: want at least 1", c.MaxConcurrent)
	}
	if s := c.TokenSigning; s != nil {
		if s.TokenKeyName == "" {
			bad("token_signing.token_key_name", "empty: name the username query parameter that carries the token")
		}
		if len(s.PublicKeys) == 0 || len(s.PublicKeys) > 2 {
			bad("token_signing.public_keys", "want 1 or 2 PEM files with the RSA public keys that verify token signatures, got %d", len(s.PublicKeys))
		}
	}
	return errors.Join(errs...)
}

// endpoint is a parsed URL: an HTTP URL on a loopback host, or a unix socket path.
type endpoint struct {
	url  string // what the request goes to
	unix string // the socket path, for unix:
}

const localForms = "use http://127.0.0.1:PORT/PATH, http://[::1]:PORT/PATH, http://localhost:PORT/PATH or unix:/path/to.sock"

// parseEndpoint accepts only endpoints on this machine: the authorizer receives
// passwords and tokens, which must not cross the network.
func parseEndpoint(raw string) (endpoint, error) {
	if path, ok := strings.CutPrefix(raw, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return endpoint{}, fmt.Errorf("%q: the socket path must be absolute: %s", raw, localForms)
		}
		return endpoint{url: "http://unix/", unix: path}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("%q: %v: %s", raw, err, localForms)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, fmt.Errorf("%q: scheme %q: %s", raw, u.Scheme, localForms)
	}
	if u.User != nil {
		return endpoint{}, fmt.Errorf("%q: no credentials in the URL: %s", raw, localForms)
	}
	host := u.Hostname()
	if !isLoopbackHost(host) {
		return endpoint{}, fmt.Errorf("%q is not on this machine (host %q): the authorizer sees passwords and tokens, which must not cross the network; %s", raw, host, localForms)
	}
	return endpoint{url: u.String()}, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
