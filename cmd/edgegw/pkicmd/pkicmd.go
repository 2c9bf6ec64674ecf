// Package pkicmd is `edgegw pki`: the site certificate authority on the
// command line (init, import-ca, issue, sign, revoke, crl, list, claim,
// server, renew-policy). The CA itself, its files and lock are gateway/pki's;
// claims and the renewal policy are gateway/enrol's; keys in a TPM or HSM are
// hw's. These commands resolve the PKI directory and registry from the flags
// and the config (read loosely: the listeners' tls.ca and devices, so a pki
// command works before the config is complete), call those packages and print
// the result as text or one JSON document (json.go: the -o json schemas,
// listed in the help by cmd/edgegw's output_schema.go).
//
// It is a room of the edgegw command line: package main adds it with New and
// provides the CLI (cmd/edgegw/cli); an error that carries an exit status is
// a *cli.ExitError. It must not import mochi-mqtt, badger, prometheus or
// paho, nor the daemon (gateway, broker, store); only cmd/edgegw imports it
// (cmd/edgegw/deps_test.go). Tests that run the whole binary against a real
// daemon (pki_run_test.go, pki_server_e2e_test.go, the enrolment e2e tests)
// stay beside the binary in cmd/edgegw.
//
// A Raspberry Pi has no real-time clock: "now" for new certificates and the
// CRL is never before the build date (clockFloor, clock.BuildFloor, which
// main's -ldflags build date sets through clock.SetBuildInfo).
package pkicmd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/pki"
)

// defaultPKIDir is the PKI directory when neither --dir nor the config names one. Not under
// /var/lib/edgegw, which purging the package deletes: the site CA must outlive a reinstall.
const defaultPKIDir = "/etc/edgegw/pki"

// DaemonUser is the system user the package creates and `edgegw run` runs as. When `edgegw pki`
// runs as root and this user exists, the daemon gets what it must read (pki.DaemonOwner).
const DaemonUser = "edgegw"

// clockFloor is the earliest believable "now" for certificates and the CRL: clock.BuildFloor,
// the floor the daemon's clock guard uses too (cmd/edgegw's buildinfo.go hands main.buildDate to
// clock.SetBuildInfo). A Pi has no real-time clock: a clock before the build date is wrong, and
// certificates then start at the build date instead.
func clockFloor() time.Time { return clock.BuildFloor() }

type pkiFlags struct {
	config  string
	dir     string
	devices string
}

// app is the command line around the pki commands, as their functions use it.
type app struct {
	cli.CLI
	keys Keys
}

// Keys is what the pki commands that take --key (init, server) share with the
// key commands (edgegw key), which own both.
type Keys struct {
	URIHelp         string // the key URI grammar, appended to their help
	DefaultStateDir string // where --key auto keeps its key: --state-dir's default
}

// New is `edgegw pki`. c is the command line around it; defaultConfig is
// -c's default.
func New(c cli.CLI, defaultConfig string, keys Keys) *cobra.Command {
	a := app{CLI: c, keys: keys}
	f := &pkiFlags{}
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Site certificate authority: issue, sign, revoke and list device certificates",
		Long: `The site PKI gives every sensor its own X.509 certificate, revocable alone.

  edgegw pki init                       create the site CA, the broker's server certificate, an empty CRL
  edgegw pki init --csr                 ... or make a CSR for your enterprise root, then
  edgegw pki import-ca CERT             finish the CA with the certificate it signed (plus its chain)
  edgegw pki issue THING                key + certificate + ca.crt for a sensor that cannot make a key
  edgegw pki sign CSR --thing THING     sign a CSR made on the sensor (its key never leaves it)
  edgegw pki revoke THING|SERIAL        put certificates on the CRL (the gateway reloads crl.pem)
  edgegw pki crl                        re-sign the CRL before its nextUpdate (run it from a timer)
  edgegw pki list                       serial, thing, type, expiry, status
  edgegw pki claim NAME --template T    a claim certificate: sensors enrol themselves over MQTT
  edgegw pki renew-policy               the edgegw-renew policy: enrolled sensors renew over MQTT
  edgegw pki server                     issue or renew the LAN listener's certificate (file, TPM, HSM key)

The PKI directory (--dir) is, in order: --dir; the directory of listeners[].tls.ca of the
first TLS listener in the config (-c); ` + defaultPKIDir + `. It holds ca.crt, ca.key (0600; or
the key URI in ca.json), ca.json, server.crt, server.key (0600), crl.pem, issued.json and a
lock file: two pki commands at once wait for each other.

Run as root on a system with the user ` + DaemonUser + ` (the package creates it), init and import-ca
make the directory 0750 root:` + DaemonUser + ` and server.key 0600 owned by ` + DaemonUser + `, so the
daemon and 'edgegw check' can read the broker's files; ca.key stays root's (0600).

issue and sign add the thing to the registry (--devices; default: devices from the config,
else DIR/../devices.yaml), keeping its comments and order. revoke leaves the registry alone:
the thing remains and its certificate is revoked (AWS IoT semantics).

A Raspberry Pi has no real-time clock: if the clock is before this build's date, the build
date is used as "now" and a warning says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.config, "config", "c", defaultConfig, "config file naming the PKI directory and the registry (optional)")
	pf.StringVar(&f.dir, "dir", "", "PKI directory (default: from the config, else "+defaultPKIDir+")")
	pf.StringVar(&f.devices, "devices", "", "registry file issue/sign update (default: devices from the config, else DIR/../devices.yaml)")
	cmd.AddCommand(pkiInitCmd(a, f), pkiImportCACmd(a, f), pkiIssueCmd(a, f), pkiSignCmd(a, f),
		pkiRevokeCmd(a, f), pkiCRLCmd(a, f), pkiListCmd(a, f))
	cmd.AddCommand(pkiClaimCmd(a, f), pkiServerCmd(a, f)) // claim.go, server.go
	cmd.AddCommand(pkiRenewPolicyCmd(a, f))               // renew_policy.go
	return cmd
}

// options resolves the PKI directory and registry from the flags and the config.
func (f *pkiFlags) options(a app, cmd *cobra.Command) (pki.Options, error) {
	o := pki.Options{Dir: f.dir, Devices: f.devices, NotBefore: clockFloor()}
	b, err := os.ReadFile(f.config)
	switch {
	case err == nil:
		var view struct {
			Listeners []struct {
				TLS *struct {
					CA string `yaml:"ca"`
				} `yaml:"tls"`
			} `yaml:"listeners"`
			Devices string `yaml:"devices"`
		}
		if err := yaml.Unmarshal(b, &view); err != nil {
			return o, &cli.ExitError{Code: 1, Err: fmt.Errorf("reading %s: %w", f.config, err)}
		}
		base := filepath.Dir(f.config)
		abs := func(p string) string {
			if p == "" || filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(base, p)
		}
		if o.Dir == "" {
			for _, l := range view.Listeners {
				if l.TLS != nil && l.TLS.CA != "" {
					o.Dir = filepath.Dir(abs(l.TLS.CA))
					break
				}
			}
		}
		if o.Devices == "" {
			o.Devices = abs(view.Devices)
		}
	case cmd.Flags().Changed("config"):
		return o, &cli.ExitError{Code: 1, Err: fmt.Errorf("reading config: %w", err)}
	}
	if o.Dir == "" {
		o.Dir = defaultPKIDir
	}
	if o.Devices == "" {
		o.Devices = filepath.Join(filepath.Dir(filepath.Clean(o.Dir)), "devices.yaml")
	}
	if o.Owner, err = pki.DaemonOwner(DaemonUser, nil); err != nil {
		return o, &cli.ExitError{Code: 1, Err: err}
	}
	if logLevelGiven(cmd) {
		lg, err := a.Logger(nil)
		if err != nil {
			return o, err
		}
		o.Logger = lg
	}
	return o, nil
}

// logLevelGiven reports whether the global --log-level names a level: only then do the pki
// operations log (to stderr), as they did when the commands lived in package main.
func logLevelGiven(cmd *cobra.Command) bool {
	fl := cmd.Flags().Lookup("log-level")
	return fl != nil && fl.Value.String() != ""
}

func clockWarning(w io.Writer, clamped bool) {
	if clamped {
		fmt.Fprintf(w, "warning: the system clock (%s) is before this build (%s): certificates and the CRL start at the build date; set the clock (NTP) and check with `date`\n",
			time.Now().UTC().Format(time.RFC3339), clockFloor().Format(time.DateOnly))
	}
}

func pkiInitCmd(a app, f *pkiFlags) *cobra.Command {
	var opts pki.InitOptions
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the site CA, the broker's server certificate, an empty CRL and issued.json",
		Long: `Creates the site CA in the PKI directory: an ECDSA P-256 key (ca.key, 0600, unless
--key names a TPM/HSM key URI, recorded in ca.json), a self-signed CA certificate (CA:TRUE,
pathlen 0, keyCertSign+cRLSign, 10 years), the broker's server certificate for --host names
(DNS names or IP addresses; default: this host name, localhost, 127.0.0.1, ::1), an empty CRL
and issued.json. It refuses to overwrite an existing CA.

With --csr it makes only the key and ca.csr for your enterprise root to sign (as a subordinate
CA); finish with 'edgegw pki import-ca CERT'.

` + a.keys.URIHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := a.JSONOutput(format, asJSON) // the CLI's (cmd/edgegw's output.go)
			if err != nil {
				return err
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			res, err := pki.Init(cmd.Context(), o, opts)
			if err != nil {
				return err
			}
			clockWarning(a.Stderr(), res.ClockClamped)
			if isJSON {
				v := pkiInitView(o.Dir, res)
				if opts.CSR {
					v.CSR = filepath.Join(o.Dir, pki.CACSRFile)
				}
				return a.WriteJSON(a.Stdout(), v)
			}
			if opts.CSR {
				fmt.Fprintf(a.Stdout(), "CA key and CSR created in %s\n  csr: %s\nHave your root CA sign it as a subordinate CA (pathlen 0), then run:\n  edgegw pki import-ca --dir %s SIGNED.crt   (the certificate followed by its chain)\n",
					o.Dir, filepath.Join(o.Dir, pki.CACSRFile), o.Dir)
				return nil
			}
			fmt.Fprintf(a.Stdout(), "site CA %q created in %s, valid until %s\n", res.CACert.Subject.CommonName, o.Dir, res.CACert.NotAfter.Format(time.DateOnly))
			for _, p := range res.Files {
				fmt.Fprintf(a.Stdout(), "  %s\n", p)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Key, "key", "", "CA key URI (default: a new file DIR/ca.key)")
	fl.StringVar(&opts.CN, "cn", "edgegw site CA", "CA common name")
	fl.IntVar(&opts.Days, "days", pki.DefaultCADays, "CA lifetime in days")
	fl.StringArrayVar(&opts.Hosts, "host", nil, "server certificate name (DNS name or IP); repeat (default: hostname, localhost, 127.0.0.1, ::1)")
	fl.IntVar(&opts.ServerDays, "server-days", pki.DefaultServerDays, "server certificate lifetime in days")
	fl.IntVar(&opts.CRLDays, "crl-days", pki.DefaultCRLDays, "CRL lifetime (nextUpdate) in days")
	fl.BoolVar(&opts.CSR, "csr", false, "make a CSR for an enterprise root instead of a self-signed CA")
	a.OutputFlags(cmd, &format, &asJSON)
	return cmd
}

func pkiImportCACmd(a app, f *pkiFlags) *cobra.Command {
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import-ca CERT",
		Short: "Finish a CA started with 'pki init --csr' with the certificate your root signed",
		Long: `CERT is a PEM file: the CA certificate signed by your enterprise root, followed by the
chain up to the root. It must match the key made by 'pki init --csr' and be a CA certificate
allowed to sign certificates and CRLs. The whole file becomes ca.crt; the server certificate,
CRL and issued.json are created as by 'pki init'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			isJSON, err := a.JSONOutput(format, asJSON)
			if err != nil {
				return err
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			res, err := pki.ImportCA(cmd.Context(), o, b)
			if err != nil {
				return err
			}
			clockWarning(a.Stderr(), res.ClockClamped)
			for _, w := range res.Warnings {
				fmt.Fprintf(a.Stderr(), "warning: %s\n", w)
			}
			if isJSON {
				return a.WriteJSON(a.Stdout(), pkiInitView(o.Dir, res))
			}
			fmt.Fprintf(a.Stdout(), "site CA %q imported into %s, valid until %s\n", res.CACert.Subject.String(), o.Dir, res.CACert.NotAfter.Format(time.DateOnly))
			return nil
		},
	}
	a.OutputFlags(cmd, &format, &asJSON)
	return cmd
}

// pkiInitView is the -o json document of init and import-ca.
func pkiInitView(dir string, res *pki.InitResult) InitJSON {
	v := InitJSON{Dir: dir, Files: append([]string{}, res.Files...), Warnings: append([]string{}, res.Warnings...), ClockClamped: res.ClockClamped}
	if res.CACert != nil {
		v.CASubject, v.CANotAfter = res.CACert.Subject.String(), res.CACert.NotAfter.UTC()
	}
	return v
}

// thingFlags are shared by issue and sign.
type thingFlags struct {
	typ      string
	attrs    []string
	policies []string
	days     int
	out      string
	renew    bool
	format   string // -o table|json
	asJSON   bool
}

func (t *thingFlags) add(a app, cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&t.typ, "type", "", "thing type, recorded in issued.json and the registry")
	fl.StringArrayVar(&t.attrs, "attr", nil, "registry attribute k=v; repeat")
	fl.StringArrayVar(&t.policies, "policy", nil, "policy name to attach in the registry; repeat")
	fl.IntVar(&t.days, "days", pki.DefaultDeviceDays, "certificate lifetime in days")
	fl.StringVar(&t.out, "out", ".", "directory for THING.crt, THING.key (0600) and ca.crt")
	fl.BoolVar(&t.renew, "renew", false, "replace the thing's active certificate; the old one is revoked as superseded")
	a.OutputFlags(cmd, &t.format, &t.asJSON)
}

func (t *thingFlags) request(thing string) (pki.IssueRequest, error) {
	r := pki.IssueRequest{Thing: thing, Type: t.typ, Policies: t.policies, Days: t.days, Renew: t.renew}
	for _, kv := range t.attrs {
		if err := addAttr(&r, kv); err != nil {
			return r, err
		}
	}
	return r, nil
}

func addAttr(r *pki.IssueRequest, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("--attr %q: want key=value", kv)}
	}
	if r.Attributes == nil {
		r.Attributes = map[string]string{}
	}
	r.Attributes[k] = v
	return nil
}

func pkiIssueCmd(a app, f *pkiFlags) *cobra.Command {
	var tf thingFlags
	var batch string
	cmd := &cobra.Command{
		Use:   "issue THING... [--batch FILE]",
		Short: "Make a key and certificate for devices that cannot make their own key",
		Long: `For each THING: an ECDSA P-256 key and a client certificate (CN=THING, SAN URI
urn:edgegw:thing:THING, clientAuth, 1 year), written to --out as THING.crt, THING.key (0600)
and ca.crt; the thing is added to (or updated in) the registry with --type, --attr and
--policy. A thing that already has an active certificate is refused unless --renew.

--batch FILE enrolls many things in one step (one lock, one commit; 2,000 sensors take
seconds): one thing per line, "NAME [TYPE] [key=value]...", '#' starts a comment. A line's
TYPE and attributes override --type and add to --attr.

All or nothing: if any thing is refused, nothing is written.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && batch == "" {
				return &cli.ExitError{Code: 2, Err: errors.New("pki issue: name at least one THING or give --batch FILE")}
			}
			isJSON, err := a.JSONOutput(tf.format, tf.asJSON)
			if err != nil {
				return err
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			var reqs []pki.IssueRequest
			for _, th := range args {
				r, err := tf.request(th)
				if err != nil {
					return err
				}
				reqs = append(reqs, r)
			}
			if batch != "" {
				br, err := readBatch(batch, tf)
				if err != nil {
					return err
				}
				reqs = append(reqs, br...)
			}
			start := time.Now()
			res, err := pki.Issue(cmd.Context(), o, tf.out, reqs...)
			if err != nil {
				return err
			}
			clockWarning(a.Stderr(), res.ClockClamped)
			if isJSON {
				return a.WriteJSON(a.Stdout(), pkiIssueView(res.Bundles, o.Devices, res.ClockClamped))
			}
			printBundles(a.Stdout(), res.Bundles, time.Since(start))
			fmt.Fprintf(a.Stdout(), "registry: %s\n", o.Devices)
			return nil
		},
	}
	tf.add(a, cmd)
	cmd.Flags().StringVar(&batch, "batch", "", `file of things, one a line: "NAME [TYPE] [key=value]..."`)
	return cmd
}

// readBatch parses a --batch file.
func readBatch(path string, tf thingFlags) ([]pki.IssueRequest, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var reqs []pki.IssueRequest
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		r, err := tf.request(fields[0])
		if err != nil {
			return nil, err
		}
		r.Attributes = maps.Clone(r.Attributes)
		for i, fld := range fields[1:] {
			if i == 0 && !strings.Contains(fld, "=") {
				r.Type = fld
				continue
			}
			if err := addAttr(&r, fld); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
		}
		if err := pki.ValidThing(r.Thing); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		reqs = append(reqs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no things in the file", path)
	}
	return reqs, nil
}

func printBundles(w io.Writer, bs []pki.Bundle, took time.Duration) {
	if len(bs) > 10 {
		fmt.Fprintf(w, "issued %d certificates in %s into %s\n", len(bs), took.Round(time.Millisecond), filepath.Dir(bs[0].CertFile))
		return
	}
	for _, b := range bs {
		fmt.Fprintf(w, "issued %s: serial %s, valid until %s\n", b.Thing, b.Serial, b.Cert.NotAfter.Format(time.DateOnly))
		if len(b.Superseded) > 0 {
			fmt.Fprintf(w, "  superseded and revoked: %s\n", strings.Join(b.Superseded, ", "))
		}
		fmt.Fprintf(w, "  cert: %s\n", b.CertFile)
		if b.KeyFile != "" {
			fmt.Fprintf(w, "  key:  %s (0600: copy it to the device, then delete it here)\n", b.KeyFile)
		}
		fmt.Fprintf(w, "  ca:   %s\n", b.CAFile)
	}
}

func pkiSignCmd(a app, f *pkiFlags) *cobra.Command {
	var tf thingFlags
	var thing string
	cmd := &cobra.Command{
		Use:   "sign CSR --thing THING",
		Short: "Sign a CSR made on the device; its private key never touches the gateway",
		Long: `Signs a PKCS#10 CSR (PEM or DER; "-" reads stdin) for THING after checking that its
signature verifies, its key is ECDSA P-256/P-384 or RSA >= 2048 bits (Ed25519 is refused:
mbedTLS sensors cannot use it), and its subject CN is THING (a mismatch is refused, never
overridden). Writes THING.crt and ca.crt to --out and updates the registry. On any refusal
nothing is written.

On the device:  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                  -keyout THING.key -out THING.csr -subj /CN=THING`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			isJSON, err := a.JSONOutput(tf.format, tf.asJSON)
			if err != nil {
				return err
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			var csr []byte
			if args[0] == "-" {
				csr, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			} else {
				csr, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("reading CSR: %w", err)
			}
			r, err := tf.request(thing)
			if err != nil {
				return err
			}
			b, err := pki.Sign(cmd.Context(), o, tf.out, csr, r)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if isJSON {
				return a.WriteJSON(a.Stdout(), pkiIssueView([]pki.Bundle{*b}, o.Devices, false))
			}
			printBundles(a.Stdout(), []pki.Bundle{*b}, 0)
			fmt.Fprintf(a.Stdout(), "registry: %s\n", o.Devices)
			return nil
		},
	}
	tf.add(a, cmd)
	cmd.Flags().StringVar(&thing, "thing", "", "thing name; must equal the CSR's subject CN")
	_ = cmd.MarkFlagRequired("thing")
	return cmd
}

func pkiRevokeCmd(a app, f *pkiFlags) *cobra.Command {
	var reason, format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revoke THING|SERIAL",
		Short: "Revoke a certificate (by serial) or a thing's active certificates; re-sign the CRL",
		Long: `Puts the certificate with SERIAL (hex, colons allowed, as 'pki list' or openssl print it),
or every active certificate of THING, on the CRL and re-signs crl.pem (new CRL number,
nextUpdate). The running gateway watches crl.pem and cuts the device at once; mosquitto reads
its crlfile at start only. devices.yaml is not changed: the thing remains, its certificate is
revoked; issue a new one (no --renew needed) to re-enroll it.

Reasons: ` + strings.Join(pki.ReasonNames(), ", "),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			isJSON, err := a.JSONOutput(format, asJSON)
			if err != nil {
				return err
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			crlFile := filepath.Join(o.Dir, pki.CRLFile)
			res, err := pki.Revoke(cmd.Context(), o, args[0], reason)
			if errors.Is(err, pki.ErrAlreadyRevoked) {
				fmt.Fprintf(a.Stderr(), "nothing to do: %v\n", err)
				if isJSON {
					return a.WriteJSON(a.Stdout(), RevokeJSON{Revoked: []pki.Entry{}, CRLFile: crlFile, NothingToDo: err.Error()})
				}
				return nil
			}
			if err != nil {
				return err
			}
			clockWarning(a.Stderr(), res.ClockClamped)
			if isJSON {
				return a.WriteJSON(a.Stdout(), RevokeJSON{Revoked: append([]pki.Entry{}, res.Revoked...), CRLNumber: res.CRLNumber,
					CRLFile: crlFile, ClockClamped: res.ClockClamped})
			}
			for _, e := range res.Revoked {
				fmt.Fprintf(a.Stdout(), "revoked %s (%s): serial %s, reason %s\n", e.Thing, e.Kind, e.Serial, e.Reason)
			}
			fmt.Fprintf(a.Stdout(), "CRL number %d written to %s\n", res.CRLNumber, filepath.Join(o.Dir, pki.CRLFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "revocation reason: "+strings.Join(pki.ReasonNames(), ", "))
	a.OutputFlags(cmd, &format, &asJSON)
	return cmd
}

func pkiCRLCmd(a app, f *pkiFlags) *cobra.Command {
	var days int
	var refreshBefore, format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Re-sign the CRL with a fresh nextUpdate (run it from a timer well before it expires)",
		Long: `openssl, mosquitto and other clients that check CRLs refuse every certificate once the CRL
is past its nextUpdate. 'pki revoke' re-signs the CRL; when nothing is revoked for a while,
run 'edgegw pki crl' (e.g. weekly from a systemd timer) to refresh it.

With --refresh-before, the CRL is re-signed only when its nextUpdate is within that window
(or the current CRL cannot be read); otherwise the command says when it will be due and
exits 0. The package's edgegw-crl.timer runs 'edgegw pki crl --refresh-before 10d' daily.
The running gateway notices the new crl.pem by itself: no reload is needed.`,
		Example: `  edgegw pki crl
  edgegw pki crl --refresh-before 10d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := a.JSONOutput(format, asJSON)
			if err != nil {
				return err
			}
			var window time.Duration
			if refreshBefore != "" {
				d, err := parseDays(refreshBefore)
				if err != nil {
					return &cli.ExitError{Code: 2, Err: fmt.Errorf("--refresh-before %q: %v", refreshBefore, err)}
				}
				window = d
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			crlFile := filepath.Join(o.Dir, pki.CRLFile)
			if refreshBefore != "" {
				due, msg, cur := crlDue(o.Dir, window)
				if !due && isJSON {
					return a.WriteJSON(a.Stdout(), CRLJSON{CRLNumber: cur.Number.Int64(), NextUpdate: cur.NextUpdate.UTC(), CRLFile: crlFile, Message: msg})
				}
				if !due {
					fmt.Fprintln(a.Stdout(), msg)
					return nil
				}
				if msg != "" {
					fmt.Fprintln(a.Stderr(), msg)
				}
			}
			rl, err := pki.RefreshCRL(cmd.Context(), o, days)
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("CRL number %s: %d revoked, next update %s", rl.Number, len(rl.RevokedCertificateEntries), rl.NextUpdate.Format(time.RFC3339))
			if isJSON {
				n := len(rl.RevokedCertificateEntries)
				return a.WriteJSON(a.Stdout(), CRLJSON{Resigned: true, CRLNumber: rl.Number.Int64(), Revoked: &n,
					NextUpdate: rl.NextUpdate.UTC(), CRLFile: crlFile, Message: msg})
			}
			fmt.Fprintln(a.Stdout(), msg)
			return nil
		},
	}
	cmd.Flags().IntVar(&days, "days", 0, "CRL lifetime in days, also for later CRLs (default: as set at init, 30)")
	cmd.Flags().StringVar(&refreshBefore, "refresh-before", "", "re-sign only when nextUpdate is within this time, e.g. 10d, 72h (default: always)")
	a.OutputFlags(cmd, &format, &asJSON)
	return cmd
}

// crlDue reports whether the CRL in dir must be re-signed because its nextUpdate is within
// window of now (the clock floor when the clock is before the build), with a line that says
// why, and the CRL read (nil when due because it could not be read). A CRL that cannot be read
// or verified is due: re-signing replaces it.
func crlDue(dir string, window time.Duration) (due bool, msg string, crl *pki.CRL) {
	path := filepath.Join(dir, pki.CRLFile)
	crl, err := pki.LoadCRL(path, filepath.Join(dir, pki.CACertFile))
	if err != nil {
		return true, fmt.Sprintf("edgegw: %v: re-signing it", err), nil
	}
	now := time.Now()
	if fl := clockFloor(); now.Before(fl) {
		now = fl
	}
	if crl.NextUpdate.IsZero() || !crl.NextUpdate.After(now.Add(window)) {
		return true, "", crl
	}
	return false, fmt.Sprintf("CRL number %s: next update %s, more than %s away: not re-signed",
		crl.Number, crl.NextUpdate.Format(time.RFC3339), formatWindow(window)), crl
}

// formatWindow prints a --refresh-before window the way it is usually given: whole days as
// "10d", anything else as a Go duration.
func formatWindow(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func pkiListCmd(a app, f *pkiFlags) *cobra.Command {
	var expiring, format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List issued certificates: serial, thing, type, not-after, status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			if asJSON, err = a.JSONOutput(format, asJSON); err != nil { // the CLI's (cmd/edgegw's output.go)
				return err
			}
			entries, err := pki.List(o)
			if err != nil {
				return err
			}
			if expiring != "" {
				d, err := parseDays(expiring)
				if err != nil {
					return &cli.ExitError{Code: 2, Err: fmt.Errorf("--expiring %q: %v", expiring, err)}
				}
				now := time.Now()
				if fl := clockFloor(); now.Before(fl) {
					now = fl
				}
				var keep []pki.Entry
				for _, e := range entries {
					if e.Status == pki.StatusActive && e.NotAfter.Before(now.Add(d)) {
						keep = append(keep, e)
					}
				}
				entries = keep
				sort.SliceStable(entries, func(i, j int) bool { return entries[i].NotAfter.Before(entries[j].NotAfter) })
			}
			if asJSON {
				if entries == nil {
					entries = []pki.Entry{}
				}
				enc := json.NewEncoder(a.Stdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			tw := tabwriter.NewWriter(a.Stdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tTHING\tTYPE\tNOT-AFTER\tSTATUS")
			now := time.Now()
			for _, e := range entries {
				st := string(e.Status)
				if e.Status == pki.StatusActive && now.After(e.NotAfter) {
					st = "expired"
				}
				if e.Reason != "" && e.Status != pki.StatusActive {
					st += " (" + e.Reason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Serial, e.Thing, e.Type, e.NotAfter.Format(time.DateOnly), st)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&expiring, "expiring", "", "only active certificates expiring within this time, e.g. 30d, 72h")
	a.OutputFlags(cmd, &format, &asJSON) // JSON: the issued.json entries
	return cmd
}

// parseDays reads "30d" (days) or a Go duration ("72h").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 {
			return 0, errors.New("want a number of days such as 30d, or a duration such as 72h")
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("want a number of days such as 30d, or a duration such as 72h")
	}
	return d, nil
}
