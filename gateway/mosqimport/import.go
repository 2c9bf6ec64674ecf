package mosqimport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/gateway/authz"
)

// Result is everything an import produces: the three outputs as data, and
// the report.
type Result struct {
	Source   string // the mosquitto.conf imported
	Config   Config
	Policies []PolicyDoc
	Registry Registry
	Findings []Finding // sorted by file and line
}

// Config is the edgegw.yaml to write: only what the import decides; every
// other key keeps edgegw's default.
type Config struct {
	Site      string
	Listeners []Listener
	Bridges   []Bridge // Bridges[0] is written active when Valid; the rest commented out
}

// Listener is one edgegw listener.
type Listener struct {
	From         Pos
	Name         string
	Address      string
	TLS          *ListenerTLS
	PasswordFile string
}

// ListenerTLS is a listener's TLS block.
type ListenerTLS struct {
	CA, Cert, Key, CRL string // Key is a key URI (file:PATH)
	MinVersion         string
	ClientAuth         string // require | none (none only on loopback)
}

// Bridge is one Mosquitto connection as an edgegw bridge section.
type Bridge struct {
	From      Pos
	Name      string
	Upstreams []string // URLs, failover order
	ClientID  string
	CA        string // "" = system roots
	Cert, Key string // Key is a key URI
	Keepalive int    // seconds
	Routes    []Route
	Problems  []string // why it cannot run as written; empty = valid
}

// Valid reports whether edgegw can run this bridge as written.
func (b *Bridge) Valid() bool { return len(b.Problems) == 0 }

// Route is one bridge route.
type Route struct {
	From                      Pos
	Name, Topic, Direction    string
	QoS                       int
	LocalPrefix, RemotePrefix string
}

// Registry is the devices.yaml to write.
type Registry struct {
	Things []RegThing
	Groups []RegGroup
}

// RegThing is one listed thing.
type RegThing struct {
	From     Pos
	Name     string
	Policies []string
}

// RegGroup attaches policies by a thing-name pattern.
type RegGroup struct {
	Name     string
	Match    string // IAM glob on the thing name
	Policies []string
}

// Options tune an import.
type Options struct {
	Site string // edgegw.yaml site; default "mosquitto-import"
}

// ErrNoConfig is returned when the mosquitto.conf cannot be read.
var ErrNoConfig = errors.New("cannot read the Mosquitto configuration")

// maxFileBytes bounds every file the importer reads.
const maxFileBytes = 4 << 20

// readSmall reads a regular file of at most maxFileBytes (never a device
// or a FIFO a configuration might name).
func readSmall(path string) ([]byte, error) {
	// Stat before Open: opening a FIFO would block.
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB; is this the right file?", path, maxFileBytes>>20)
	}
	return data, nil
}

// Import reads the mosquitto.conf at path, the files of its include_dir
// lines and its acl_file, and translates them. Only an unreadable path is an
// error (wrapping ErrNoConfig); everything else that cannot be carried over
// is a Finding.
func Import(path string, opts Options) (*Result, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrNoConfig, path, err)
	}
	p := &confParser{c: &Conf{}}
	p.parse(path, data)
	// include_dir is processed from the main file only, files ending in
	// .conf in byte order (upper case before lower case).
	for _, inc := range p.c.IncludeDirs {
		dir := inc.Value
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(path), dir)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			p.errs = append(p.errs, Finding{Pos: inc.Pos, Kind: Invalid, Text: "include_dir " + inc.Value,
				Reason: fmt.Sprintf("cannot read the directory (%v); its files were not imported", unwrapPath(err))})
			continue
		}
		var names []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			f := filepath.Join(dir, n)
			d, err := readSmall(f)
			if err != nil {
				p.errs = append(p.errs, Finding{Pos: inc.Pos, Kind: Invalid, Text: f, Reason: fmt.Sprintf("cannot read (%v); not imported", unwrapPath(err))})
				continue
			}
			p.parse(f, d)
		}
	}
	res := Translate(path, p.c, readACLFile, opts)
	res.Findings = append(res.Findings, p.errs...)
	res.Findings = sortFindings(res.Findings)
	return res, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ACLReader reads and parses an acl_file; Import's reads the file system.
type ACLReader func(path string) (*ACL, []Finding, error)

func readACLFile(path string) (*ACL, []Finding, error) {
	d, err := readSmall(path)
	if err != nil {
		return nil, nil, err
	}
	a, fs := ParseACL(path, d)
	return a, fs, nil
}

// Translate turns a parsed configuration into the edgegw outputs. source is
// the main file's name (relative paths in it resolve against its
// directory); readACL loads the acl_file.
func Translate(source string, c *Conf, readACL ACLReader, opts Options) *Result {
	t := &translator{res: &Result{Source: source}, dir: filepath.Dir(source)}
	t.res.Config.Site = opts.Site
	if t.res.Config.Site == "" {
		t.res.Config.Site = "mosquitto-import"
	}
	t.res.Findings = append(t.res.Findings, c.Ignored...)
	acl := t.listeners(c)
	t.acl(c, acl, readACL)
	t.bridges(c)
	return t.res
}

type translator struct {
	res *Result
	dir string
}

func (t *translator) add(pos Pos, k Kind, text, format string, args ...any) {
	t.res.Findings = append(t.res.Findings, Finding{Pos: pos, Kind: k, Text: text, Reason: fmt.Sprintf(format, args...)})
}

func (t *translator) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(t.dir, p)
}

func settingText(key string, s *Setting) string { return key + " " + s.Value }

// chosenACL is the security setup the policies are made from.
type chosenACL struct {
	acl       *Setting // nil: no acl_file (everything allowed)
	anonymous bool     // some imported listener allowed anonymous clients
	anyClient bool     // at least one listener was imported
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// listeners translates the listeners and decides which acl_file applies.
func (t *translator) listeners(c *Conf) chosenACL {
	var ch chosenACL
	ls := c.Listeners
	if len(ls) == 0 {
		// Mosquitto 2.0 without a listener: "local only mode", port 1883 on
		// loopback, anonymous clients allowed.
		t.res.Config.Listeners = append(t.res.Config.Listeners, Listener{Name: "local", Address: "127.0.0.1:1883"})
		t.add(Pos{File: t.res.Source}, Changed, "", "no listener configured: Mosquitto ran in local-only mode (127.0.0.1:1883, anonymous clients allowed); imported as the loopback listener \"local\", where the client ID is the thing name")
		ch.acl = c.Security.ACLFile
		ch.anonymous, ch.anyClient = true, true
		return ch
	}
	ch.acl = c.Security.ACLFile
	if c.PerListenerSettings {
		// The first listener's acl_file applies to all (policies are global).
		ch.acl = nil
		for _, l := range ls {
			if l.Security.ACLFile != nil {
				ch.acl = l.Security.ACLFile
				break
			}
		}
	}
	seen := map[string]bool{}
	names := map[string]int{}
	for _, l := range ls {
		t.listener(c, l, &ch, seen, names)
	}
	t.passwordFiles(c)
	if !ch.anyClient {
		t.res.Config.Listeners = append(t.res.Config.Listeners, Listener{Name: "local", Address: "127.0.0.1:1883"})
		t.add(Pos{File: t.res.Source}, Changed, "", "no listener could be imported; added the loopback listener \"local\" (127.0.0.1:1883) so the configuration is complete: add a TLS listener for the LAN")
	}
	return ch
}

// listener translates one listener l into t.res.Config.Listeners, or says why
// it is not imported. seen holds the addresses taken, names the names (see
// listenerName); ch records anonymous access and that a client can connect.
func (t *translator) listener(c *Conf, l *ConfListener, ch *chosenACL, seen map[string]bool, names map[string]int) {
	sec := &c.Security
	if c.PerListenerSettings {
		sec = &l.Security
	}
	head := fmt.Sprintf("listener %d", l.Port)
	if l.Host != "" {
		head += " " + l.Host
	}
	if l.Default {
		head = fmt.Sprintf("port %d", l.Port)
	}
	t.res.Findings = append(t.res.Findings, l.Other...)
	t.res.Findings = append(t.res.Findings, sec.Other...)
	switch {
	case l.Socket:
		t.add(l.Pos, NotCarried, head, "edgegw has no unix socket listener; local services connect to a loopback TCP listener")
		return
	case l.Protocol != nil && l.Protocol.Value != "mqtt":
		t.add(l.Protocol.Pos, NotCarried, settingText("protocol", l.Protocol), "edgegw listeners speak MQTT over TCP only; this listener was not imported")
		return
	case c.PerListenerSettings && sec.ACLFile != nil && ch.acl != nil && sec.ACLFile.Value != ch.acl.Value:
		t.add(l.Pos, NotCarried, head, "per_listener_settings: this listener has its own acl_file %s, but edgegw's policies apply to every listener (imported: %s from %s); not imported, so its clients get no rights they did not have", sec.ACLFile.Value, ch.acl.Value, ch.acl.Pos)
		return
	}
	if c.PerListenerSettings && sec.ACLFile == nil && ch.acl != nil {
		t.add(l.Pos, Changed, head, "per_listener_settings: this listener had no acl_file (its clients could publish and receive everything); in edgegw the policies from %s apply to its clients too", ch.acl.Value)
	}
	tls := l.TLS()
	host, lt, ok := t.listenerEndpoint(l, head, tls)
	if !ok {
		return
	}
	el := Listener{From: l.Pos, TLS: lt, Address: net.JoinHostPort(host, strconv.Itoa(l.Port))}
	if seen[el.Address] {
		t.add(l.Pos, NotCarried, head, "address %s is already used by an imported listener", el.Address)
		return
	}
	seen[el.Address] = true
	el.Name = listenerName(names, tls, l.Port)
	if a := sec.AllowAnonymous; a != nil && a.Value == "true" {
		ch.anonymous = true
		t.add(a.Pos, Changed, settingText("allow_anonymous", a), "edgegw has no anonymous clients: every client is a thing (its certificate's CN, or on a loopback listener without TLS its client ID) and gets the policies devices.yaml attaches")
	}
	usesIdentity := tls && (l.UseIdentity != nil && l.UseIdentity.Value == "true" || l.UseSubject != nil && l.UseSubject.Value == "true")
	if pf := sec.PasswordFile; pf != nil && !usesIdentity {
		el.PasswordFile = t.path(pf.Value)
	}
	ch.anyClient = true
	t.res.Config.Listeners = append(t.res.Config.Listeners, el)
}

// listenerEndpoint decides the host an imported listener binds and its TLS
// settings: a host name is not bound (plaintext moves to loopback, TLS is not
// imported), plaintext off loopback moves to 127.0.0.1. ok is false when the
// listener is not imported (the finding says why).
func (t *translator) listenerEndpoint(l *ConfListener, head string, tls bool) (host string, lt *ListenerTLS, ok bool) {
	host = l.Host
	if host != "" && !strings.EqualFold(host, "localhost") {
		if _, err := netip.ParseAddr(host); err != nil {
			if !tls {
				host = "127.0.0.1" // plaintext goes to loopback anyway, reported below
			} else {
				t.add(l.Pos, NotCarried, head, "edgegw binds an IP address (or all interfaces), not the host name %q: add the listener with that host's address", l.Host)
				return "", nil, false
			}
		}
	}
	if tls {
		lt, ok := t.listenerTLS(l, head, host)
		return host, lt, ok
	}
	if !isLoopback(host) {
		t.add(l.Pos, Changed, head, "plaintext on a non-loopback address: edgegw allows plaintext only on loopback; imported on 127.0.0.1 (add TLS with client certificates to serve the LAN)")
		host = "127.0.0.1"
	}
	t.add(l.Pos, Changed, head, "without TLS edgegw knows a client by its client ID (the thing name), not by the user name it sends: a client Mosquitto knew as user NAME must connect with client ID NAME to get that user's rights")
	return host, nil, true
}

// listenerName names an imported listener by its kind and port (tls-8883,
// local-1883), with a counter when the name is taken (names counts them).
func listenerName(names map[string]int, tls bool, port int) string {
	base := "local"
	if tls {
		base = "tls"
	}
	name := fmt.Sprintf("%s-%d", base, port)
	if names[name]++; names[name] > 1 {
		name += "-" + strconv.Itoa(names[name])
	}
	return name
}

// listenerTLS translates a TLS listener's settings; false (reported) when
// the listener cannot be imported as it is.
func (t *translator) listenerTLS(l *ConfListener, head, host string) (*ListenerTLS, bool) {
	if l.CertFile == nil || l.KeyFile == nil {
		t.add(l.Pos, NotCarried, head, "TLS needs both certfile and keyfile; not imported")
		return nil, false
	}
	if l.CAFile == nil {
		what := "no cafile"
		if l.CAPath != nil {
			what = "capath " + l.CAPath.Value + " instead of a cafile"
		}
		t.add(l.Pos, NotCarried, head, "%s: edgegw verifies client certificates against one CA bundle file (tls.ca); concatenate the CA certificates into one file, add the listener and run edgegw check", what)
		return nil, false
	}
	lt := &ListenerTLS{CA: t.path(l.CAFile.Value), Cert: t.path(l.CertFile.Value), Key: "file:" + t.path(l.KeyFile.Value),
		MinVersion: "1.2", ClientAuth: "require"}
	if l.CRLFile != nil {
		lt.CRL = t.path(l.CRLFile.Value)
	}
	if v := l.TLSVersion; v != nil {
		switch v.Value {
		case "tlsv1.3":
			lt.MinVersion = "1.3"
		case "tlsv1.2":
		default:
			t.add(v.Pos, Changed, settingText("tls_version", v), "edgegw accepts TLS 1.2 or later only")
		}
	}
	reqCert := l.RequireCertificate != nil && l.RequireCertificate.Value == "true"
	if !reqCert {
		if isLoopback(host) {
			lt.ClientAuth = "none"
		} else {
			t.add(l.Pos, Changed, head, "Mosquitto did not require a client certificate here (require_certificate false); edgegw requires one on every non-loopback listener: each client needs a certificate signed by %s whose CN is its thing name", l.CAFile.Value)
		}
	}
	if s := l.UseSubject; s != nil && s.Value == "true" {
		t.add(s.Pos, Changed, settingText("use_subject_as_username", s), "edgegw names the client by its certificate's CN (the thing name), not by the whole subject; ACL user names that were subjects no longer match")
	} else if s := l.UseIdentity; reqCert && (s == nil || s.Value != "true") {
		t.add(l.Pos, Changed, head, "Mosquitto took the user name from CONNECT here; edgegw takes the thing name from the certificate's CN, and the ACL's user names become thing names: give each user a certificate with CN = user name")
	}
	return lt, true
}

// passwordFiles keeps the password files by reference and names their
// formats.
func (t *translator) passwordFiles(c *Conf) {
	var pfs []*Setting
	if c.PerListenerSettings {
		for _, l := range c.Listeners {
			if l.Security.PasswordFile != nil {
				pfs = append(pfs, l.Security.PasswordFile)
			}
		}
	} else if c.Security.PasswordFile != nil {
		pfs = append(pfs, c.Security.PasswordFile)
	}
	for _, pf := range pfs {
		t.passwordFile(pf)
	}
}

// passwordFile names the hash formats of a password file.
func (t *translator) passwordFile(pf *Setting) {
	text := settingText("password_file", pf)
	data, err := readSmall(t.path(pf.Value))
	if err != nil {
		t.add(pf.Pos, Note, text, "kept by reference; could not read it to check its hash formats (%v)", unwrapPath(err))
		return
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		_, hash, _ := strings.Cut(line, ":")
		switch {
		case strings.HasPrefix(hash, "$7$"):
			counts["$7$ (PBKDF2-SHA512, mosquitto_passwd 2.0)"]++
		case strings.HasPrefix(hash, "$6$"):
			counts["$6$ (salted SHA-512, mosquitto_passwd 1.x)"]++
		case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
			counts["bcrypt"]++
		default:
			counts["unknown format"]++
		}
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		parts = []string{"no entries"}
	}
	t.add(pf.Pos, Note, text, "kept by reference as the listeners' password_file (a password is an extra factor after the certificate in edgegw); entries: %s", strings.Join(parts, ", "))
}

// acl translates the chosen acl_file into policies and the registry.
func (t *translator) acl(c *Conf, ch chosenACL, readACL ACLReader) {
	base := basePolicy()
	t.res.Policies = append(t.res.Policies, base)
	group := RegGroup{Name: GroupAll, Match: "*", Policies: []string{PolicyBase}}
	defer func() { t.res.Registry.Groups = append(t.res.Registry.Groups, group) }()
	pos := Pos{File: t.res.Source}
	t.add(pos, Changed, "", "Mosquitto let a client connect with any client ID; edgegw's policy %s allows only the thing name as client ID", PolicyBase)
	t.add(pos, Changed, "", "Mosquitto granted every SUBSCRIBE and checked read access per message; %s grants every filter too and iot:Receive decides per message, except that edgegw refuses a filter without wildcards naming a topic the client may not receive (Mosquitto granted it and delivered nothing)", PolicyBase)
	if ch.acl == nil {
		t.res.Policies = append(t.res.Policies, allowAllPolicy())
		group.Policies = append(group.Policies, PolicyAllowAll)
		t.add(pos, Note, "", "no acl_file: Mosquitto let every client publish and receive every topic; imported as the policy %s attached to every thing", PolicyAllowAll)
		return
	}
	a, errs, err := readACL(t.path(ch.acl.Value))
	if err != nil {
		t.add(ch.acl.Pos, NotCarried, settingText("acl_file", ch.acl), "cannot read it (%v): no topic rights imported; every client can connect and subscribe but publishes and receives nothing", unwrapPath(err))
		return
	}
	t.res.Findings = append(t.res.Findings, errs...)
	rs := t.aclRules(a, ch)
	var notes inexactNotes
	defer notes.report(t)
	// Write lines reaching the bridge-state topics Mosquitto allowed in $SYS.
	sysState := filterLangs(parseLevels("$SYS/broker/connection/+/state", false), subst{})
	pats := t.keepExact(rs.pats, subst{}, sysState)
	b := &budget{left: maxWork}
	if len(pats) > 0 {
		doc := PolicyDoc{Name: PolicyPatterns}
		for _, r := range pats {
			doc.Statements = append(doc.Statements, r.statements()...)
		}
		t.res.Policies = append(t.res.Policies, doc)
		group.Policies = append(group.Policies, PolicyPatterns)
		(&scope{who: "any client", pats: pats}).check(b, notes.add)
	}
	for _, u := range rs.order {
		urs := t.keepExact(rs.users[u], subst{client: u, user: u}, sysState)
		if len(urs) == 0 {
			continue
		}
		doc := PolicyDoc{Name: UserPolicy(u)}
		for _, r := range urs {
			doc.Statements = append(doc.Statements, r.statements()...)
		}
		t.res.Policies = append(t.res.Policies, doc)
		t.res.Registry.Things = append(t.res.Registry.Things, RegThing{From: rs.firstLine[u], Name: u, Policies: []string{doc.Name}})
		(&scope{who: "user " + u, sb: subst{client: u, user: u}, user: urs, pats: pats, users: true}).check(b, notes.add)
	}
}

// aclRules are an acl_file's lines as rules: the pattern lines, and each user's
// lines in the order the users first appear.
type aclRules struct {
	pats      []*rule
	users     map[string][]*rule
	order     []string
	firstLine map[string]Pos
}

// aclRules sorts the lines of a into pattern and user rules; lines for
// anonymous clients or for user names that are not thing names are reported
// and dropped.
func (t *translator) aclRules(a *ACL, ch chosenACL) aclRules {
	rs := aclRules{users: map[string][]*rule{}, firstLine: map[string]Pos{}}
	for i := range a.Lines {
		l := &a.Lines[i]
		switch {
		case l.Pattern:
			rs.pats = append(rs.pats, newRule(l))
		case !l.HasUser:
			why := "applies to anonymous clients only (it comes before any user line); edgegw has no anonymous clients, attach a policy to the things that need it"
			if !ch.anonymous {
				why = "applies to anonymous clients only (it comes before any user line) and allow_anonymous is false: Mosquitto applied it to nobody"
			}
			t.add(l.Pos, NotCarried, l.Text, "%s", why)
		case !authz.ValidThingName(l.User):
			t.add(l.Pos, NotCarried, l.Text, "user name %q is not a valid thing name ([a-zA-Z0-9:_-], at most 128); edgegw cannot attach a policy to it", l.User)
		default:
			if _, ok := rs.users[l.User]; !ok {
				rs.order = append(rs.order, l.User)
				rs.firstLine[l.User] = l.Pos
			}
			rs.users[l.User] = append(rs.users[l.User], newRule(l))
		}
	}
	return rs
}

// inexactNotes collects the differences found per acl line, so that each line
// gets one finding: the first difference, and how many more.
type inexactNotes struct {
	first map[*rule]string
	seen  map[*rule]map[string]bool
	order []*rule
}

func (n *inexactNotes) add(r *rule, reason string) {
	if n.first == nil {
		n.first, n.seen = map[*rule]string{}, map[*rule]map[string]bool{}
	}
	if _, ok := n.first[r]; !ok {
		n.first[r], n.seen[r] = reason, map[string]bool{}
		n.order = append(n.order, r)
	}
	n.seen[r][reason] = true
}

func (n *inexactNotes) report(t *translator) {
	for _, r := range n.order {
		reason := n.first[r]
		if more := len(n.seen[r]) - 1; more > 0 {
			reason += fmt.Sprintf("; and %d more such overlap(s)", more)
		}
		t.add(r.line.Pos, Inexact, r.line.Text, "%s", reason)
	}
}

// keepExact drops the granting rules that have no exact policy form (edgegw
// grants less than Mosquitto there) and reports write rules that reach the
// $SYS bridge-state topics (sysState) Mosquitto allowed, which edgegw refuses.
func (t *translator) keepExact(rs []*rule, sb subst, sysState []lang) []*rule {
	var out []*rule
	for _, r := range rs {
		if r.line.Access != Deny && !r.tr.exact {
			t.add(r.line.Pos, NotCarried, r.line.Text, "no exact policy form for '+' followed by a literal level and '#' (a policy '*' spans levels): not imported, so edgegw grants less here; split it into lines without that shape")
			continue
		}
		if r.line.Access&Write != 0 && anyIntersect(filterLangs(r.levels, sb), sysState) {
			t.add(r.line.Pos, NotCarried, r.line.Text, "edgegw reserves $SYS for the broker: Mosquitto let this client publish bridge state on $SYS/broker/connection/<id>/state, edgegw refuses every $SYS publish")
		}
		out = append(out, r)
	}
	return out
}

func (t *translator) bridges(c *Conf) {
	for i, cn := range c.Connections {
		b := t.bridge(cn)
		switch {
		case i > 0:
			t.add(cn.Pos, NotCarried, "connection "+cn.Name, "edgegw has one bridge (one upstream identity); this connection is written commented out in edgegw.yaml")
		case !b.Valid():
			t.add(cn.Pos, NotCarried, "connection "+cn.Name, "written commented out in edgegw.yaml: %s", strings.Join(b.Problems, "; "))
		}
		t.res.Config.Bridges = append(t.res.Config.Bridges, b)
	}
}

// bridge translates one connection block; what keeps it from working is in
// b.Problems.
func (t *translator) bridge(cn *Connection) Bridge {
	b := Bridge{From: cn.Pos, Name: cn.Name, Keepalive: 60}
	t.res.Findings = append(t.res.Findings, cn.Other...)
	tls := cn.CAFile != nil || cn.CAPath != nil
	if cn.CAFile != nil {
		b.CA = t.path(cn.CAFile.Value)
	} else if cn.CAPath != nil {
		t.add(cn.CAPath.Pos, Changed, settingText("bridge_capath", cn.CAPath), "edgegw verifies the upstream against one CA bundle file or the system's roots; imported as the system's roots (bridge.tls.ca empty)")
	}
	if cn.CertFile != nil {
		b.Cert = t.path(cn.CertFile.Value)
	}
	if cn.KeyFile != nil {
		b.Key = "file:" + t.path(cn.KeyFile.Value)
	}
	b.upstreams(cn, tls)
	if tls && (b.Cert == "" || b.Key == "") {
		b.Problems = append(b.Problems, "no bridge_certfile/bridge_keyfile: edgegw authenticates to the upstream with the gateway's own certificate; get one from the upstream's CA and set bridge.tls.cert and key")
	}
	b.ClientID = cn.Name
	if cn.RemoteClientID != nil {
		b.ClientID = cn.RemoteClientID.Value
	} else {
		t.add(cn.Pos, Changed, "connection "+cn.Name, "no remote_clientid: Mosquitto used HOSTNAME.%s upstream; imported as client_id %q", cn.Name, cn.Name)
	}
	if len(b.ClientID) > 128 || strings.IndexByte(b.ClientID, 0) >= 0 {
		b.Problems = append(b.Problems, "client ID longer than 128 characters")
	}
	if k := cn.Keepalive; k != nil {
		n, err := strconv.Atoi(k.Value)
		if err != nil || n < 1 || n > 65535 {
			t.add(k.Pos, NotCarried, settingText("keepalive_interval", k), "want 1-65535 seconds; edgegw's default (30s) applies")
			b.Keepalive = 0
		} else {
			b.Keepalive = n
		}
	}
	for j, tp := range cn.Topics {
		if r, ok := t.bridgeRoute(cn.Name, j, tp); ok {
			b.Routes = append(b.Routes, r)
		}
	}
	if len(b.Routes) == 0 {
		b.Problems = append(b.Problems, "no topic line could be imported")
	}
	return b
}

// upstreams turns the connection's addresses into upstream URLs (mqtts:// when
// the bridge has TLS); bad addresses go to b.Problems.
func (b *Bridge) upstreams(cn *Connection, tls bool) {
	if len(cn.Addresses) == 0 {
		b.Problems = append(b.Problems, "no address")
	}
	for _, a := range cn.Addresses {
		host, port := a.Value, "1883"
		if h, p, err := net.SplitHostPort(a.Value); err == nil {
			host, port = h, p
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			b.Problems = append(b.Problems, fmt.Sprintf("address %s: bad port", a.Value))
			continue
		}
		if strings.ContainsAny(host, "/?#@[] ") || host == "" {
			b.Problems = append(b.Problems, fmt.Sprintf("address %s: bad host", a.Value))
			continue
		}
		scheme := "mqtts"
		if !tls {
			scheme = "mqtt"
			if !isLoopback(host) {
				b.Problems = append(b.Problems, fmt.Sprintf("address %s: plaintext to a non-loopback host; edgegw connects upstream with TLS only (set bridge.tls and an mqtts:// URL)", a.Value))
			}
		}
		b.Upstreams = append(b.Upstreams, scheme+"://"+net.JoinHostPort(host, port))
	}
}

// bridgeRoute translates the j-th topic line of connection name into a route,
// or reports why it cannot be one (ok false).
func (t *translator) bridgeRoute(name string, j int, tp BridgeTopic) (Route, bool) {
	text := "topic " + tp.Pattern
	if tp.Pattern == "" {
		t.add(tp.Pos, NotCarried, text+`""`, "an empty pattern remaps one topic (%q to %q); edgegw routes map a prefix: write a route with topic set to that topic's last level and the prefixes set to the levels before it", tp.LocalPrefix, tp.RemotePrefix)
		return Route{}, false
	}
	if msg := checkFilter(tp.Pattern); msg != "" {
		t.add(tp.Pos, Invalid, text, "%s", msg)
		return Route{}, false
	}
	if strings.ContainsAny(tp.LocalPrefix+tp.RemotePrefix, "+#") {
		t.add(tp.Pos, Invalid, text, "a prefix must not contain wildcards")
		return Route{}, false
	}
	r := Route{From: tp.Pos, Name: fmt.Sprintf("%s-%d", name, j+1), Topic: tp.Pattern, Direction: tp.Direction,
		QoS: tp.QoS, LocalPrefix: tp.LocalPrefix, RemotePrefix: tp.RemotePrefix}
	if tp.QoS == 2 {
		t.add(tp.Pos, Changed, text, "QoS 2: edgegw sends upstream at QoS 1 (at least once, duplicates marked with edgegw-seq)")
	}
	if tp.QoS == 0 && tp.Direction != "in" {
		t.add(tp.Pos, Note, text, "QoS 0 out: edgegw queues QoS 0 messages durably only with queue_qos0: true on the route")
	}
	return r, true
}

// Validate checks the policies and registry with edgegw's policy engine,
// the same loader `edgegw check` uses.
func (r *Result) Validate() (*authz.Engine, error) {
	var srcs []authz.Source
	for i := range r.Policies {
		srcs = append(srcs, authz.Source{Name: "policies/" + r.Policies[i].Name + ".json", Data: r.Policies[i].JSON()})
	}
	e, err := authz.Load(authz.Source{Name: "devices.yaml", Data: r.Registry.YAML()}, srcs)
	if err != nil {
		return nil, fmt.Errorf("validating the imported policies: %w", err)
	}
	return e, nil
}
