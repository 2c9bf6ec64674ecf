package pkicmd

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw"
)

// listenerTLS is the part of a listener's config `pki server` reads.
type listenerTLS struct {
	Name string `yaml:"name"`
	TLS  *struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
}

// serverTarget finds the certificate file and key URI of listener name ("" = the first TLS
// listener) in the config, paths resolved against the config's directory. A missing config
// file gives empty results.
func serverTarget(config, name string) (cert, key string, err error) {
	b, err := os.ReadFile(config)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	var view struct {
		Listeners []listenerTLS `yaml:"listeners"`
	}
	if err := yaml.Unmarshal(b, &view); err != nil {
		return "", "", fmt.Errorf("reading %s: %w", config, err)
	}
	dir := filepath.Dir(config)
	for _, l := range view.Listeners {
		if l.TLS == nil || (name != "" && l.Name != name) {
			continue
		}
		cert = l.TLS.Cert
		if cert != "" && !filepath.IsAbs(cert) {
			cert = filepath.Join(dir, cert)
		}
		return cert, hw.ResolveURI(l.TLS.Key, dir), nil
	}
	if name != "" {
		return "", "", fmt.Errorf("%s: no TLS listener named %q", config, name)
	}
	return "", "", nil
}

// pkiServerOpts are the flags of `edgegw pki server`.
type pkiServerOpts struct {
	keyURI, out, listener, renewBefore, stateDir, format string
	hosts, ips                                           []string
	days                                                 int
	asJSON                                               bool
	reuseKey                                             bool // server_reuse.go
}

func pkiServerCmd(a app, f *pkiFlags) *cobra.Command {
	var s pkiServerOpts
	cmd := &cobra.Command{
		Use:   "server [--key URI] [--host H]... [--ip IP]... [--days N] [--renew-before D] [--out FILE]",
		Short: "Issue or renew the LAN listener's server certificate for a file, TPM or PKCS#11 key",
		Long: `Makes a CSR with the listener's key where it lives (the key never leaves the TPM or HSM),
has the site CA sign a serverAuth certificate for it, and writes the chain (certificate, then
the CA certificate) atomically to the listener's tls.cert in the config (-c; --listener picks
one, default the first TLS listener), or to --out.

The key is --key, else the listener's tls.key. Host names and addresses are --host and --ip,
else those of the existing certificate, else this host's name, localhost, 127.0.0.1 and ::1.

With --renew-before D (e.g. 30d, 720h) it does nothing unless the existing certificate expires
within D or is for another key. The running daemon picks up a renewed certificate for the same
key by itself; for a new key, restart it.

With --reuse-key it renews the existing certificate for the key it certifies without opening
the key (the CA needs only the public key, from the certificate it issued): no PIN is read, and
a TPM the running daemon holds (swtpm, or a TPM without /dev/tpmrm0, serves one connection at a
time; opening the key there gives up after 30 s and says so) is not waited for. This is what
edgegw-server-cert.timer runs daily: --reuse-key --renew-before 30d. The periodic renewal keeps
the key; a new key is an operator's change (tls.key, this command without --reuse-key, restart).

` + a.keys.URIHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.run(a, f, cmd) },
	}
	fl := cmd.Flags()
	fl.StringVar(&s.keyURI, "key", "", "key URI of the listener (default: the listener's tls.key)")
	fl.StringArrayVar(&s.hosts, "host", nil, "DNS name (or address) in the certificate; repeat")
	fl.StringArrayVar(&s.ips, "ip", nil, "IP address in the certificate; repeat")
	fl.IntVar(&s.days, "days", 0, "lifetime in days (default: the CA's server_days, 825)")
	fl.StringVar(&s.renewBefore, "renew-before", "", "only renew when the certificate expires within this time (e.g. 30d)")
	fl.StringVar(&s.out, "out", "", "certificate chain file (default: the listener's tls.cert, else DIR/server.crt)")
	fl.StringVar(&s.listener, "listener", "", "listener name in the config (default: the first TLS listener)")
	fl.StringVar(&s.stateDir, "state-dir", a.keys.DefaultStateDir, "where --key auto keeps its key")
	fl.BoolVar(&s.reuseKey, "reuse-key", false, "renew the existing certificate for its own public key without opening the key (a TPM the daemon holds)")
	a.OutputFlags(cmd, &s.format, &s.asJSON)
	return cmd
}

func (s *pkiServerOpts) run(a app, f *pkiFlags, cmd *cobra.Command) error {
	isJSON, err := a.JSONOutput(s.format, s.asJSON) // the CLI's (cmd/edgegw's output.go)
	if err != nil {
		return err
	}
	o, err := f.options(a, cmd)
	if err != nil {
		return err
	}
	if err := s.target(f.config, o.Dir); err != nil {
		return err
	}
	var before time.Duration
	if s.renewBefore != "" {
		if before, err = parseDays(s.renewBefore); err != nil {
			return &cli.ExitError{Code: 2, Err: fmt.Errorf("--renew-before %q: %v", s.renewBefore, err)}
		}
	}
	if s.reuseKey { // server_reuse.go
		return renewReusingKey(a, cmd, o, serverRenewal{keyURI: s.keyURI, out: s.out, renewBefore: s.renewBefore, hosts: s.hosts, ips: s.ips, days: s.days, isJSON: isJSON})
	}
	key, err := openServerKey(cmd.Context(), s.keyURI, hw.WithStateDir(s.stateDir)) // server_reuse.go: bounded
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	defer key.Close()
	old, err := readLeaf(s.out)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	names, err := serverNames(s.hosts, s.ips, old)
	if err != nil {
		return err
	}
	sameKey := old != nil && publicEqual(old.PublicKey, key.Public())
	if before > 0 && old != nil && sameKey {
		now := time.Now()
		if fl := clockFloor(); now.Before(fl) {
			now = fl
		}
		if left := old.NotAfter.Sub(now); left > before {
			return s.notDue(a, old, left, isJSON)
		}
	}
	csr, err := hw.CSR(key, names[0], names)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("making the CSR with %s: %w", hw.Redact(s.keyURI), err)}
	}
	b, err := pki.SignServer(cmd.Context(), o, pki.ServerRequest{CSR: csr, Hosts: names, Days: s.days, Out: s.out})
	if err != nil {
		return err
	}
	verb := "issued"
	if old != nil {
		verb = "renewed"
	}
	keyChanged := old != nil && !sameKey
	if isJSON {
		return a.WriteJSON(a.Stdout(), ServerJSON{Action: verb, Serial: b.Serial, Hosts: names, NotAfter: b.Cert.NotAfter.UTC(),
			CertFile: s.out, Key: hw.Redact(s.keyURI), KeyChanged: keyChanged})
	}
	fmt.Fprintf(a.Stdout(), "server certificate %s: serial %s for %s, valid until %s\n  cert: %s\n  key:  %s\n",
		verb, b.Serial, strings.Join(names, ", "), b.Cert.NotAfter.Format(time.DateOnly), s.out, hw.Redact(s.keyURI))
	if keyChanged {
		fmt.Fprintln(a.Stdout(), "the key changed: restart the daemon (systemctl restart edgegw) to serve it")
	}
	return nil
}

// target fills in --out and --key from the config's listener (config), else
// --out defaults to dir's server certificate; a key is required.
func (s *pkiServerOpts) target(config, dir string) error {
	cfgCert, cfgKey, err := serverTarget(config, s.listener)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	if s.out == "" {
		s.out = cfgCert
	}
	if s.out == "" {
		s.out = filepath.Join(dir, pki.ServerCertFile)
	}
	if s.keyURI == "" {
		s.keyURI = cfgKey
	}
	if s.keyURI == "" {
		return &cli.ExitError{Code: 2, Err: errors.New("pki server: no key: give --key URI, or a config whose listener has tls.key")}
	}
	return nil
}

// serverNames are the names the certificate is for: --host and --ip, else those
// of the existing certificate old, else this host's defaults.
func serverNames(hosts, ips []string, old *x509.Certificate) ([]string, error) {
	names := append(slices.Clone(hosts), ips...)
	for _, ip := range ips {
		if net.ParseIP(ip) == nil {
			return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("--ip %q is not an IP address", ip)}
		}
	}
	if old != nil && len(names) == 0 {
		names = append(names, old.DNSNames...)
		for _, ip := range old.IPAddresses {
			names = append(names, ip.String())
		}
	}
	if len(names) == 0 {
		names = pki.DefaultHosts()
	}
	return names, nil
}

// notDue reports that the certificate old, valid for left, is kept.
func (s *pkiServerOpts) notDue(a app, old *x509.Certificate, left time.Duration, isJSON bool) error {
	if isJSON {
		return a.WriteJSON(a.Stdout(), ServerJSON{Action: "not_due", Serial: old.SerialNumber.Text(16), Hosts: certNames(old),
			NotAfter: old.NotAfter.UTC(), CertFile: s.out, Key: hw.Redact(s.keyURI)})
	}
	fmt.Fprintf(a.Stdout(), "%s is valid until %s (%d days): not due for renewal (--renew-before %s)\n",
		s.out, old.NotAfter.Format(time.DateOnly), int(left.Hours()/24), s.renewBefore)
	return nil
}

// readLeaf returns the first certificate in path, nil when the file does not exist.
func readLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate; move it aside to issue a new one", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// certNames lists c's DNS names and IP addresses ([] when none).
func certNames(c *x509.Certificate) []string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

func publicEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
