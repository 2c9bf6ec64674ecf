package authorizer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid; else a substring of the error
	}{
		{"loopback IPv4", Config{URL: "http://127.0.0.1:9000/authorize"}, ""},
		{"loopback IPv6", Config{URL: "http://[::1]:9000/authorize"}, ""},
		{"localhost https", Config{URL: "https://localhost:8443/a"}, ""},
		{"unix socket", Config{URL: "unix:/run/edgegw/auth.sock"}, ""},
		{"executable", Config{Command: []string{"/usr/lib/edgegw/auth", "--x"}}, ""},
		{"LAN address", Config{URL: "http://192.168.1.10:9000/authorize"},
			`authorizer.url: "http://192.168.1.10:9000/authorize" is not on this machine (host "192.168.1.10"): the authorizer sees passwords and tokens, which must not cross the network; use http://127.0.0.1:PORT/PATH`},
		{"remote name", Config{URL: "https://auth.example.com/authorize"}, `is not on this machine (host "auth.example.com")`},
		{"relative socket", Config{URL: "unix:auth.sock"}, `"unix:auth.sock": the socket path must be absolute`},
		{"credentials in URL", Config{URL: "http://u:p@127.0.0.1/"}, "no credentials in the URL"},
		{"other scheme", Config{URL: "ftp://127.0.0.1/"}, `scheme "ftp"`},
		{"neither", Config{}, "authorizer.url: give url (a local HTTP endpoint) or command (an executable)"},
		{"both", Config{URL: "http://127.0.0.1/", Command: []string{"/bin/true"}}, "give url or command, not both"},
		{"empty executable", Config{Command: []string{""}}, "authorizer.command: the first element is the executable"},
		{"timeout too long", Config{URL: "unix:/a.sock", Timeout: time.Hour}, "authorizer.timeout: 1h0m0s: want more than 0 and at most 1m0s"},
		{"negative rate", Config{URL: "unix:/a.sock", Rate: -1}, "authorizer.rate: -1"},
		{"signing without keys", Config{URL: "unix:/a.sock", TokenSigning: &TokenSigning{TokenKeyName: "token"}},
			"authorizer.token_signing.public_keys: want 1 or 2 PEM files"},
		{"signing without key name", Config{URL: "unix:/a.sock", TokenSigning: &TokenSigning{PublicKeys: []string{"/k.pem"}}},
			"authorizer.token_signing.token_key_name: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v; want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	// New refuses what Validate refuses, before anything runs.
	if _, err := New(Config{URL: "http://10.0.0.1/"}, quietLog()); err == nil {
		t.Error("New accepted a non-local URL")
	}
}

// The config room decodes the section with yaml.v3: the tags and durations work.
func TestConfigYAML(t *testing.T) {
	var c Config
	src := "url: unix:/run/a.sock\ntimeout: 2s\nrate: 5\nburst: 10\nmax_concurrent: 2\ntoken_signing: {token_key_name: tok, public_keys: [/etc/k.pem]}\n"
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{URL: "unix:/run/a.sock", Timeout: 2 * time.Second, Rate: 5, Burst: 10, MaxConcurrent: 2,
		TokenSigning: &TokenSigning{TokenKeyName: "tok", PublicKeys: []string{"/etc/k.pem"}}}
	if c.URL != want.URL || c.Timeout != want.Timeout || c.Rate != want.Rate || c.Burst != want.Burst ||
		c.MaxConcurrent != want.MaxConcurrent || c.TokenSigning == nil || c.TokenSigning.TokenKeyName != "tok" ||
		len(c.TokenSigning.PublicKeys) != 1 {
		t.Errorf("decoded %+v; want %+v", c, want)
	}
	if d := (Config{URL: "unix:/a"}).WithDefaults(); d.Timeout != DefaultTimeout || d.Rate != DefaultRate ||
		d.Burst != DefaultBurst || d.MaxConcurrent != DefaultMaxConcurrent {
		t.Errorf("WithDefaults = %+v", d)
	}
}

func TestParseAnswer(t *testing.T) {
	pol := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}`
	quoted := func(s string) string { b, _ := jsonString(s); return b }
	ok := func(docs string) string {
		return `{"isAuthenticated":true,"principalId":"abc","disconnectAfterInSeconds":300,"refreshAfterInSeconds":86400,"policyDocuments":[` + docs + `]}`
	}
	tests := []struct {
		name, in string
		reason   error // nil: parses
		nPol     int
	}{
		{"policy as a string", ok(quoted(pol)), nil, 1},
		{"policy as an object", ok(pol), nil, 1},
		{"extra fields as in AWS's example", `{"password":"x",` + ok(pol)[1:], nil, 1},
		{"not authenticated", `{"isAuthenticated":false}`, nil, 0},
		{"empty", ``, ErrMalformed, 0},
		{"truncated", `{"isAuthenticated":true`, ErrMalformed, 0},
		{"trailing data", ok(pol) + `{}`, ErrMalformed, 0},
		{"bad principal", strings.Replace(ok(pol), `"abc"`, `"a-b"`, 1), ErrMalformed, 0},
		{"no policies", ok(``), ErrMalformed, 0},
		{"eleven policies", ok(strings.Repeat(pol+",", 10) + pol), ErrMalformed, 0},
		{"policy too long", ok(quoted(pol[:len(pol)-1] + `,"Id":"` + strings.Repeat("x", 2048) + `"}`)), ErrMalformed, 0},
		{"refresh too long", strings.Replace(ok(pol), "86400", "86401", 1), ErrMalformed, 0},
		{"policy a number", ok(`42`), ErrMalformed, 0},
		{"policy does not parse", ok(quoted(`{"Version":"2012-10-17","Statement":[]}`)), ErrPolicy, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, pols, err := parseAnswer([]byte(tt.in))
			if tt.reason == nil {
				if err != nil || len(pols) != tt.nPol {
					t.Errorf("parseAnswer = %d policies, %v; want %d, nil", len(pols), err, tt.nPol)
				}
				return
			}
			if !errors.Is(err, tt.reason) {
				t.Errorf("parseAnswer = %v; want %v", err, tt.reason)
			}
		})
	}
}

// FuzzParseAnswer: an authorizer's answer is outside input; any bytes give an
// answer or a typed error, never a panic, and an authenticated answer always has
// policies.
func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(`{"isAuthenticated":true,"principalId":"p","disconnectAfterInSeconds":300,"refreshAfterInSeconds":300,"policyDocuments":["{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"iot:*\",\"Resource\":\"*\"}}"]}`))
	f.Add([]byte(`{"isAuthenticated":true,"principalId":"p","disconnectAfterInSeconds":300,"refreshAfterInSeconds":300,"policyDocuments":[{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":"iot:Connect","NotResource":"topic/${iot:ClientId}","Condition":{"ForAllValues:StringEquals":{"iot:ConnectAttributes":[]}}}]}]}`))
	f.Add([]byte(`{"isAuthenticated":false}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, pols, err := parseAnswer(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrPolicy) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if a.IsAuthenticated && len(pols) == 0 {
			t.Fatal("authenticated without policies")
		}
	})
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
