package mosqimport

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Output file names inside the directory WriteDir writes.
const (
	ConfigFile   = "edgegw.yaml"
	DevicesFile  = "devices.yaml"
	PoliciesDir  = "policies"
	ReportFile   = "IMPORT-REPORT.txt"
	policiesPath = PoliciesDir + "/"
)

// ErrExists is returned by WriteDir when an output file already exists: an
// import never overwrites a configuration.
var ErrExists = errors.New("output file already exists")

// q quotes a YAML scalar: a JSON-style double-quoted string, which YAML reads
// back unchanged.
func q(s string) string { return strconv.Quote(s) }

// YAML renders edgegw.yaml: every imported key with the line it came from.
func (r *Result) YAML() []byte {
	var b bytes.Buffer
	c := &r.Config
	fmt.Fprintf(&b, "# edgegw configuration imported from %s by `edgegw import mosquitto`.\n", r.Source)
	fmt.Fprintf(&b, "# Read %s first: what was not carried over, or not exactly, and why.\n", ReportFile)
	b.WriteString("# Keys not written here keep edgegw's defaults; check with: edgegw check -c edgegw.yaml\n")
	b.WriteString("version: 1\n")
	fmt.Fprintf(&b, "site: %s\n", q(c.Site))
	b.WriteString("listeners:\n")
	for _, l := range c.Listeners {
		if l.From.Line > 0 {
			fmt.Fprintf(&b, "  # from %s\n", l.From)
		}
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n", q(l.Name), q(l.Address))
		if t := l.TLS; t != nil {
			b.WriteString("    tls:\n")
			fmt.Fprintf(&b, "      ca: %s\n      cert: %s\n      key: %s\n", q(t.CA), q(t.Cert), q(t.Key))
			if t.CRL != "" {
				fmt.Fprintf(&b, "      crl: %s\n", q(t.CRL))
			}
			fmt.Fprintf(&b, "      min_version: %s\n      client_auth: %s\n", q(t.MinVersion), t.ClientAuth)
			b.WriteString("    identity: cn\n")
		}
		if l.PasswordFile != "" {
			fmt.Fprintf(&b, "    password_file: %s\n", q(l.PasswordFile))
		}
	}
	fmt.Fprintf(&b, "devices: %s\npolicies: %s\n", DevicesFile, policiesPath)
	for i := range c.Bridges {
		br := &c.Bridges[i]
		active := i == 0 && br.Valid()
		var sec bytes.Buffer
		br.yaml(&sec)
		b.WriteString("\n")
		if active {
			b.Write(sec.Bytes())
			continue
		}
		fmt.Fprintf(&b, "# Mosquitto connection %q (%s), not active: see %s.\n", br.Name, br.From, ReportFile)
		for _, p := range br.Problems {
			fmt.Fprintf(&b, "#   %s\n", p)
		}
		if i > 0 {
			b.WriteString("#   edgegw has one bridge; this is the connection as it would read.\n")
		}
		for _, line := range strings.SplitAfter(sec.String(), "\n") {
			if line != "" {
				b.WriteString("#" + line)
			}
		}
	}
	return b.Bytes()
}

func (br *Bridge) yaml(b *bytes.Buffer) {
	fmt.Fprintf(b, "# from %s (connection %s)\n", br.From, br.Name)
	b.WriteString("bridge:\n  upstreams:\n")
	for _, u := range br.Upstreams {
		fmt.Fprintf(b, "    - url: %s\n", q(u))
	}
	fmt.Fprintf(b, "  client_id: %s\n", q(br.ClientID))
	if len(br.Upstreams) > 0 && strings.HasPrefix(br.Upstreams[0], "mqtts:") {
		b.WriteString("  tls:\n")
		if br.CA != "" {
			fmt.Fprintf(b, "    ca: %s\n", q(br.CA))
		}
		fmt.Fprintf(b, "    cert: %s\n    key: %s\n", q(br.Cert), q(br.Key))
	}
	if br.Keepalive > 0 {
		fmt.Fprintf(b, "  keepalive: %ds\n", br.Keepalive)
	}
	b.WriteString("  routes:\n")
	for _, rt := range br.Routes {
		fmt.Fprintf(b, "    # from %s\n", rt.From)
		fmt.Fprintf(b, "    - name: %s\n      topic: %s\n      direction: %s\n      qos: %d\n", q(rt.Name), q(rt.Topic), rt.Direction, rt.QoS)
		if rt.LocalPrefix != "" {
			fmt.Fprintf(b, "      local_prefix: %s\n", q(rt.LocalPrefix))
		}
		if rt.RemotePrefix != "" {
			fmt.Fprintf(b, "      remote_prefix: %s\n", q(rt.RemotePrefix))
		}
	}
}

// YAML renders devices.yaml.
func (r *Registry) YAML() []byte {
	var b bytes.Buffer
	b.WriteString("# Device registry imported from Mosquitto: each ACL user is a thing of that name.\n")
	b.WriteString("version: 1\n")
	b.WriteString("default: {policies: []}\n")
	b.WriteString("things:")
	if len(r.Things) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for _, t := range r.Things {
		if t.From.Line > 0 {
			fmt.Fprintf(&b, "  # from %s\n", t.From)
		}
		fmt.Fprintf(&b, "  - name: %s\n    policies: [%s]\n", q(t.Name), quoteList(t.Policies))
	}
	b.WriteString("groups:")
	if len(r.Groups) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "  - name: %s\n    match: {name: %s}\n    policies: [%s]\n", q(g.Name), q(g.Match), quoteList(g.Policies))
	}
	return b.Bytes()
}

func quoteList(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return strings.Join(out, ", ")
}

// Report renders the findings, one a line, with a summary first.
func (r *Result) Report() []byte {
	var b bytes.Buffer
	counts := map[Kind]int{}
	for _, f := range r.Findings {
		counts[f.Kind]++
	}
	fmt.Fprintf(&b, "Import of %s: %d not carried over, %d not exact, %d changed, %d invalid, %d notes.\n",
		r.Source, counts[NotCarried], counts[Inexact], counts[Changed], counts[Invalid], counts[Note])
	b.WriteString("\"not exact\": edgegw grants less than Mosquitto did for the topics named, never more.\n\n")
	for _, f := range r.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// WriteDir writes edgegw.yaml, devices.yaml, policies/*.json and
// IMPORT-REPORT.txt into dir (created if missing). It refuses (ErrExists)
// when any of them exists already, before writing anything.
func (r *Result) WriteDir(dir string) error {
	files := map[string][]byte{
		ConfigFile:  r.YAML(),
		DevicesFile: r.Registry.YAML(),
		ReportFile:  r.Report(),
	}
	for i := range r.Policies {
		files[filepath.Join(PoliciesDir, r.Policies[i].Name+".json")] = r.Policies[i].JSON()
	}
	for name := range files {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("writing the import to %s: %s: %w", dir, name, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("writing the import to %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, PoliciesDir), 0o755); err != nil {
		return fmt.Errorf("writing the import: %w", err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("writing the import: %w", err)
		}
	}
	return nil
}
