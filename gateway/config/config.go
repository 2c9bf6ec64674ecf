package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/edgegw/edgegw/gateway/loopback"
	"gopkg.in/yaml.v3"
)

// Config is edgegw.yaml, version 1. The schema, with every default, is in
// configs/edgegw.yaml. Load fills defaults, decodes strictly, resolves
// relative paths against the config file's directory and validates; all
// paths in a loaded Config are absolute, key URIs included.
type Config struct {
	Version   int            `yaml:"version"`
	Site      string         `yaml:"site"`
	StateDir  string         `yaml:"state_dir"`
	Log       LogConfig      `yaml:"log"`
	Listeners []Listener     `yaml:"listeners"`
	Devices   string         `yaml:"devices"`
	Policies  string         `yaml:"policies"`
	Store     StoreConfig    `yaml:"store"`
	Limits    LimitsConfig   `yaml:"limits"`
	Bridge    *BridgeConfig  `yaml:"bridge"`  // nil: local broker only
	Bridges   []BridgeConfig `yaml:"bridges"` // several named bridges (bridges.go); exclusive with bridge
	Metrics   MetricsConfig  `yaml:"metrics"`
	Admin     AdminConfig    `yaml:"admin"`
	Audit     AuditConfig    `yaml:"audit"`
	Shadows   *ShadowConfig  `yaml:"shadows"`   // nil: shadow topics are ordinary topics
	Rules     []Rule         `yaml:"rules"`     // rules.go
	Enrolment *Enrolment     `yaml:"enrolment"` // enrol.go; nil: no enrolment over MQTT

	// File is the config file as given to Load; Dir is its absolute
	// directory, against which relative paths were resolved.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`

	rep *report // positions of keys, for CheckFiles and later errors
}

// LogConfig is the log section. The --log-level and --log-format flags win.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Listener is one local MQTT listener.
type Listener struct {
	Name         string       `yaml:"name"`
	Address      string       `yaml:"address"`       // host:port; host "" = all interfaces
	TLS          *ListenerTLS `yaml:"tls"`           // nil: plaintext, loopback only
	Identity     string       `yaml:"identity"`      // cn | san-uri | san-dns: where the thing name comes from
	PasswordFile string       `yaml:"password_file"` // optional bcrypt file, an extra factor
	Authorizer   *Authorizer  `yaml:"authorizer"`    // optional custom authorizer (rules.go)
	Thing        string       `yaml:"thing"`         // plaintext only: every client is this thing, any client ID (listener_thing.go)
}

// ListenerTLS is the mutual TLS setup of a listener.
type ListenerTLS struct {
	CA         string `yaml:"ca"`   // trust bundle (PEM)
	Cert       string `yaml:"cert"` // server certificate chain (PEM)
	Key        string `yaml:"key"`  // key URI (see hw.ResolveURI)
	CRL        string `yaml:"crl"`  // optional; reloaded live
	MinVersion string `yaml:"min_version"`
	ClientAuth string `yaml:"client_auth"` // require | none
}

// StoreConfig is the durable queue.
type StoreConfig struct {
	Dir           string `yaml:"dir"`
	MaxBytes      Size   `yaml:"max_bytes"`
	MinFree       Size   `yaml:"min_free"`
	EncryptionKey string `yaml:"encryption_key"` // "" | file:PATH | tpm-sealed:PATH[;opts]
}

// LimitsConfig bounds what clients can make the broker hold.
// LimitsConfig is the `limits` section. A broker limit left out (zero)
// takes the broker's default (broker.DefaultLimits: the broker owns them);
// written, it must be more than 0.
type LimitsConfig struct {
	HandshakeTimeout     Duration `yaml:"handshake_timeout"`
	MaxPendingHandshakes int      `yaml:"max_pending_handshakes"`
	MaxPacketSize        Size     `yaml:"max_packet_size"`
	MaxClients           int      `yaml:"max_clients"`
	ClientWriteQueue     int      `yaml:"client_write_queue"`
	ReceiveMaximum       int      `yaml:"receive_maximum"`
	SessionExpiryMax     Duration `yaml:"session_expiry_max"`
	SessionMaxMessages   int      `yaml:"session_max_messages"` // QoS 1/2 messages held for one offline persistent session
	SessionMaxBytes      Size     `yaml:"session_max_bytes"`    // their topic + payload bytes
	RetainedMaxMessages  int      `yaml:"retained_max_messages"`
	RetainedMaxBytes     Size     `yaml:"retained_max_bytes"`
	MaxTopicLength       int      `yaml:"max_topic_length"`
	MaxTopicLevels       int      `yaml:"max_topic_levels"`
	// MemoryLimit is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit), applied at start unless GOMEMLIMIT is
	// set in the environment; 0 leaves the Go default (no limit).
	MemoryLimit Size `yaml:"memory_limit"`
}

// MinMemoryLimit is the smallest limits.memory_limit accepted: below it the
// live set of even a small site (queue caches, TLS sessions) exceeds the
// limit and the collector runs without pause.
const MinMemoryLimit Size = 32 << 20

// DefaultMemoryLimit is limits.memory_limit's default. Measured with
// edgegw-load (2,000 mTLS sessions, building scenario): the live heap plus
// goroutine stacks reach about 120 MiB under traffic; with 140MiB the peak RSS
// was 145 MiB (Go's default, GOGC=100 alone: 243 MiB) at no measurable CPU
// cost, while 120MiB made the collector run all the time; see
// packaging/edgegw.service.
const DefaultMemoryLimit Size = 140 << 20

// BridgeConfig is the link to the upstream broker.
type BridgeConfig struct {
	Upstreams []Upstream `yaml:"upstreams"` // failover in order
	ClientID  string     `yaml:"client_id"`
	TLS       *ClientTLS `yaml:"tls"`
	// Keepalive, ConnectTimeout, Backoff and Inflight left out (zero) take
	// the bridge's defaults (bridge.Config: 30s, 10s, 1s-2m, 1024): the
	// bridge owns them, the config does not repeat them.
	Keepalive      Duration       `yaml:"keepalive"`
	ConnectTimeout Duration       `yaml:"connect_timeout"`
	Backoff        Backoff        `yaml:"backoff"`
	Inflight       int            `yaml:"inflight"`
	DrainRate      int            `yaml:"drain_rate"` // messages/s while a backlog drains; 0 = unlimited
	UserProperties UserProperties `yaml:"user_properties"`
	Routes         []Route        `yaml:"routes"`
	// Name, profile, protocol, credentials, proxy, envelope and the cloud
	// limits: see bridges.go. Left out, the bridge's (or its profile's)
	// defaults apply.
	Name         string   `yaml:"name"`
	Profile      string   `yaml:"profile"`
	Protocol     string   `yaml:"protocol"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	Proxy        string   `yaml:"proxy"`
	Envelope     string   `yaml:"envelope"`
	ALPN         []string `yaml:"alpn"`
	MaxPayload   Size     `yaml:"max_payload"`
	MaxRate      int      `yaml:"max_rate"`
}

// Upstream is one upstream broker.
type Upstream struct {
	URL        string   `yaml:"url"`         // mqtts://host[:port] or mqtt://loopback[:port]
	ServerName string   `yaml:"server_name"` // SNI / verification name override
	ALPN       []string `yaml:"alpn"`        // TLS ALPN protocols for this upstream (bridges.go)
}

// ClientTLS is the gateway's own TLS identity towards the upstream.
type ClientTLS struct {
	CA   string `yaml:"ca"`   // optional: "" = system roots
	Cert string `yaml:"cert"` // the gateway's certificate (PEM)
	Key  string `yaml:"key"`  // key URI (see hw.ResolveURI)
	// Renew, when set, renews the certificate before it expires
	// (renew.go).
	Renew *Renew `yaml:"renew"`
}

// Backoff bounds the reconnect delay.
type Backoff struct {
	Min Duration `yaml:"min"`
	Max Duration `yaml:"max"`
}

// UserProperties names the MQTT 5 user properties added upstream; "" disables one.
type UserProperties struct {
	Device string `yaml:"device"`
	Seq    string `yaml:"seq"`
}

// Route directions and overflow policies.
const (
	DirectionOut  = "out"
	DirectionIn   = "in"
	DirectionBoth = "both"

	OverflowDropOldest = "drop-oldest"
	OverflowReject     = "reject"
)

// Route maps local topics to upstream topics; outbound routes own a queue.
type Route struct {
	Name         string   `yaml:"name"`      // unique; default "<direction>:<topic>"
	Topic        string   `yaml:"topic"`     // MQTT filter (ValidateTopicFilter)
	Direction    string   `yaml:"direction"` // out | in | both
	QoS          int      `yaml:"qos"`       // 0 | 1 | 2 (2 is sent upstream as 1)
	LocalPrefix  string   `yaml:"local_prefix"`
	RemotePrefix string   `yaml:"remote_prefix"`
	Priority     int      `yaml:"priority"` // higher drains first
	MaxBytes     Size     `yaml:"max_bytes"`
	MaxMessages  int64    `yaml:"max_messages"`
	MaxAge       Duration `yaml:"max_age"`
	Overflow     string   `yaml:"overflow"` // drop-oldest | reject
	QueueQoS0    bool     `yaml:"queue_qos0"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	Address string `yaml:"address"` // host:port; "" disables
	// TLS and BasicAuthFile guard the listener and its status page (status_page.go).
	TLS           *MetricsTLS `yaml:"tls"`
	BasicAuthFile string      `yaml:"basic_auth_file"`
}

// AdminConfig is the local admin socket (edgegw status, queue ...).
type AdminConfig struct {
	Socket string `yaml:"socket"` // "" disables
}

// AuditConfig is the audit log.
type AuditConfig struct {
	File string `yaml:"file"` // "" = audit lines go to the log only
	// Journal also writes the audit lines to the log (the journal) when
	// File is set; by default they are written once, to File.
	Journal bool `yaml:"journal"`
}

// Default returns a Config with every default set and nothing else:
// no listeners, no site, no bridge.
func Default() *Config {
	return &Config{
		StateDir: "/var/lib/edgegw",
		Log:      LogConfig{Level: "info", Format: "text"},
		Store: StoreConfig{
			Dir:      "/var/lib/edgegw/queue",
			MaxBytes: 2 << 30,
			MinFree:  64 << 20,
		},
		// The broker's limits default in the broker (broker.DefaultLimits).
		Limits:  LimitsConfig{MemoryLimit: DefaultMemoryLimit},
		Metrics: MetricsConfig{Address: "127.0.0.1:9641"},
		Admin:   AdminConfig{Socket: "/run/edgegw/admin.sock"},
		Audit:   AuditConfig{File: "/var/log/edgegw/audit.log"},
	}
}

func (l *Listener) setDefaults() { l.Identity = "cn" }

func (t *ListenerTLS) setDefaults() { t.MinVersion = "1.2"; t.ClientAuth = "require" }

func (b *BridgeConfig) setDefaults() {
	b.UserProperties = UserProperties{Device: "edgegw-device", Seq: "edgegw-seq"}
}

// ID is the route's name: Name, or "DIRECTION:TOPIC" when the file gives
// none. Validate fills Name with it; the queue, the bridge and the metrics
// all know the route by it.
func (r Route) ID() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Direction + ":" + r.Topic
}

func (r *Route) setDefaults() {
	r.Direction = DirectionOut
	r.QoS = 1
	r.Overflow = OverflowDropOldest
}

// maxConfigBytes bounds what Load reads: a config is a few KiB.
const maxConfigBytes = 1 << 20

// Load reads, decodes and validates the config file at path. A
// *Error lists every problem with file:line and key path; other errors
// are about reading the file. It does not look at the files the config
// names: CheckFiles does.
func Load(path string) (*Config, error) {
	data, dir, err := read(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, dir, data)
}

// read reads a config file and returns its bytes and absolute directory.
func read(path string) (data []byte, dir string, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading config %q: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading config %q: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, "", &Error{Errors: []*FieldError{{File: path, Msg: "file larger than 1MiB; is this the right file?"}}}
	}
	return data, filepath.Dir(abs), nil
}

// Parse is Load on bytes: name is used in errors, relative paths
// resolve against dir.
func Parse(name, dir string, data []byte) (*Config, error) {
	c, rep := parse(name, dir, data)
	if err := rep.err(); err != nil {
		return nil, err
	}
	return c, nil
}

func parse(name, dir string, data []byte) (c *Config, rep *report) {
	c = Default()
	c.File, c.Dir = name, dir
	rep = newReport(name)
	c.rep = rep
	defer func() {
		// yaml.v3 has panicked on hostile input before; a config file must
		// never crash the daemon or the checker.
		if p := recover(); p != nil {
			rep.errs = append(rep.errs, &FieldError{File: name, Msg: fmt.Sprintf("YAML syntax: cannot parse this file (%v)", p)})
		}
	}()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			rep.errs = append(rep.errs, &FieldError{File: name, Line: 1, Msg: "empty file; want at least version: 1, site, listeners, devices and policies"})
			return c, rep
		}
		rep.syntaxError(err)
		return c, rep
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		rep.errs = append(rep.errs, &FieldError{File: name, Line: extra.Line, Msg: "more than one YAML document (---); want exactly one"})
	} else if !errors.Is(err, io.EOF) {
		rep.syntaxError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			rep.errs = append(rep.errs, &FieldError{File: name, Line: 1, Msg: "empty file; want at least version: 1, site, listeners, devices and policies"})
			return c, rep
		}
		root = root.Content[0]
	}
	rep.pos[""] = root.Line
	if n := resolveAlias(root); n != nil && n.Kind == yaml.MappingNode {
		rep.decodeStruct(n, reflect.ValueOf(c).Elem(), "")
	} else {
		rep.addAt(root.Line, "", "want a mapping of keys (version: 1, site: ..., listeners: ...), got %s", describe(root))
		return c, rep
	}
	if _, ok := rep.pos["version"]; !ok {
		rep.add("version", "missing; want version: 1")
		rep.failed["version"] = true
	}
	c.resolvePaths()
	c.resolveRulePaths()
	c.validate(rep)
	return c, rep
}

// Validate checks a Config built in code (Load already validates).
// It returns a *Error or nil.
func (c *Config) Validate() error {
	rep := newReport(c.File)
	if c.rep != nil {
		rep.pos, rep.failed = c.rep.pos, c.rep.failed
	}
	c.validate(rep)
	return rep.err()
}

// Line returns the line of the config where the key at path (e.g.
// "bridge.routes[1].topic") or its nearest ancestor was written; 0 if unknown.
// Later errors (at reload, at startup) use it to point at the key.
func (c *Config) Line(path string) int {
	if c.rep == nil {
		return 0
	}
	return c.rep.line(path)
}

// Errorf returns a *Error for one problem at the key path, for checks
// made outside this file (e.g. a policy name in a route) that should read
// like config errors.
func (c *Config) Errorf(path, format string, args ...any) error {
	return &Error{Errors: []*FieldError{{File: c.File, Line: c.Line(path), Path: path, Msg: fmt.Sprintf(format, args...)}}}
}

func (c *Config) validate(r *report) {
	if c.Version != 1 && !r.failed["version"] {
		r.add("version", "%d: unsupported; want 1", c.Version)
	}
	switch {
	case c.Site == "":
		r.add("site", "required: a name for this site, e.g. plant-7")
	case !nameRE.MatchString(c.Site):
		r.add("site", "%q: want letters, digits, '.', '_' or '-'", c.Site)
	}
	if c.StateDir == "" {
		r.add("state_dir", "required: a directory for admin state and auto keys")
	}
	c.Log.validate(r, "log")
	if len(c.Listeners) == 0 {
		r.add("listeners", "at least one listener required")
	}
	names := map[string]string{}
	addrs := map[string]string{}
	for i := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		l := &c.Listeners[i]
		l.validate(r, p)
		if l.Name != "" {
			if prev, dup := names[l.Name]; dup {
				r.add(p+".name", "%q: duplicate listener name (also %s)", l.Name, prev)
			} else {
				names[l.Name] = p
			}
		}
		if l.Address != "" {
			if prev, dup := addrs[l.Address]; dup {
				r.add(p+".address", "%q: already used by %s", l.Address, prev)
			} else {
				addrs[l.Address] = p
			}
		}
	}
	if c.Devices == "" {
		r.add("devices", "required: the device registry file, e.g. devices.yaml")
	}
	if c.Policies == "" {
		r.add("policies", "required: the policy directory, e.g. policies/")
	}
	c.Store.validate(r, "store")
	c.Limits.validate(r, "limits")
	c.validateBridges(r) // bridge and bridges (bridges.go)
	if c.Shadows != nil {
		var first *BridgeConfig
		if bl := c.BridgeList(); len(bl) > 0 {
			first = bl[0] // shadow sync runs through the first bridge
		}
		c.Shadows.validate(r, "shadows", first)
	}
	if c.Metrics.Address != "" {
		if err := checkHostPort(c.Metrics.Address); err != nil {
			r.add("metrics.address", "%q: %v", c.Metrics.Address, err)
		}
	}
	c.validateRules(r)
	c.Metrics.validatePage(r, "metrics") // status_page.go
	c.validateEnrolment(r)               // enrol.go
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func (l *LogConfig) validate(r *report, p string) {
	if _, err := ParseLogLevel(l.Level); err != nil {
		r.add(p+".level", "%v", err)
	}
	if l.Format != "text" && l.Format != "json" {
		r.add(p+".format", "%q: want text or json", l.Format)
	}
}

// ParseLogLevel maps debug|info|warn|error to a level value for slog
// (-4, 0, 4, 8).
func ParseLogLevel(s string) (int, error) {
	switch s {
	case "debug":
		return -4, nil
	case "info":
		return 0, nil
	case "warn":
		return 4, nil
	case "error":
		return 8, nil
	}
	return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
}

func (l *Listener) validate(r *report, p string) {
	switch {
	case l.Name == "":
		r.add(p+".name", "required: a unique name, e.g. lan")
	case !nameRE.MatchString(l.Name):
		r.add(p+".name", "%q: want letters, digits, '.', '_' or '-'", l.Name)
	}
	local := false
	if l.Address == "" {
		r.add(p+".address", "required: host:port, e.g. \":8883\" or \"127.0.0.1:1883\"")
	} else if err := checkHostPort(l.Address); err != nil {
		r.add(p+".address", "%q: %v", l.Address, err)
	} else {
		host, _, _ := net.SplitHostPort(l.Address)
		local = loopback.Host(host)
		if l.TLS == nil && !local {
			r.add(p+".address", "%q: a listener without tls must bind a loopback address (127.0.0.1, ::1 or localhost); add tls or bind 127.0.0.1", l.Address)
		}
	}
	switch l.Identity {
	case "cn", "san-uri", "san-dns":
	default:
		r.add(p+".identity", "%q: want cn, san-uri or san-dns", l.Identity)
	}
	l.validateThing(r, p)
	if t := l.TLS; t != nil {
		tp := p + ".tls"
		if t.CA == "" {
			r.add(tp+".ca", "required with tls: the CA bundle that signs device certificates, e.g. pki/ca.crt")
		}
		if t.Cert == "" {
			r.add(tp+".cert", "required with tls: the server certificate, e.g. pki/server.crt")
		}
		validateKeyURI(r, tp+".key", t.Key, true)
		if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
			r.add(tp+".min_version", "%q: want \"1.2\" or \"1.3\"", t.MinVersion)
		}
		switch t.ClientAuth {
		case "require":
		case "none":
			if !local && !r.failed[p+".address"] {
				r.add(tp+".client_auth", "none is allowed only on a loopback address; %q is not one (devices must present a certificate)", l.Address)
			}
		default:
			r.add(tp+".client_auth", "%q: want require or none", t.ClientAuth)
		}
	}
}

// MinTLSVersion returns the tls.VersionTLS1x constant for "1.2" or "1.3".
func (t *ListenerTLS) MinTLSVersion() uint16 {
	if t.MinVersion == "1.3" {
		return 0x0304 // tls.VersionTLS13
	}
	return 0x0303 // tls.VersionTLS12
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. \":8883\" or \"127.0.0.1:1883\"")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q: want a number 0-65535", port)
	}
	if host == "" || host == "localhost" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("host %q: want an IP address, localhost, or nothing (all interfaces)", host)
	}
	return nil
}

func (s *StoreConfig) validate(r *report, p string) {
	if s.Dir == "" {
		r.add(p+".dir", "required: the queue directory, e.g. /var/lib/edgegw/queue")
	}
	if s.MaxBytes <= 0 {
		r.add(p+".max_bytes", "must be more than 0, e.g. 2GiB")
	}
	if s.EncryptionKey != "" {
		scheme, _, _ := strings.Cut(s.EncryptionKey, ":")
		if !strings.Contains(s.EncryptionKey, ":") || (scheme != "file" && scheme != "tpm-sealed") {
			r.add(p+".encryption_key", "%q: want \"\" (no encryption), file:PATH or tpm-sealed:PATH", s.EncryptionKey)
		}
	}
}

func (l *LimitsConfig) validate(r *report, p string) {
	pos := func(key string, v int64) {
		if v < 0 || v == 0 && r.has(p+"."+key) {
			r.add(p+"."+key, "must be more than 0")
		}
	}
	pos("handshake_timeout", int64(l.HandshakeTimeout))
	pos("max_pending_handshakes", int64(l.MaxPendingHandshakes))
	pos("max_packet_size", int64(l.MaxPacketSize))
	pos("max_clients", int64(l.MaxClients))
	pos("client_write_queue", int64(l.ClientWriteQueue))
	pos("receive_maximum", int64(l.ReceiveMaximum))
	pos("session_max_messages", int64(l.SessionMaxMessages))
	pos("session_max_bytes", int64(l.SessionMaxBytes))
	pos("retained_max_messages", int64(l.RetainedMaxMessages))
	pos("retained_max_bytes", int64(l.RetainedMaxBytes))
	pos("max_topic_length", int64(l.MaxTopicLength))
	pos("max_topic_levels", int64(l.MaxTopicLevels))
	if l.MaxPacketSize > 268435455 {
		r.add(p+".max_packet_size", "%s: MQTT allows at most 268435455 bytes (256MiB - 1)", l.MaxPacketSize)
	}
	if l.ReceiveMaximum > 65535 {
		r.add(p+".receive_maximum", "%d: MQTT allows at most 65535", l.ReceiveMaximum)
	}
	if l.MaxTopicLength > MaxTopicBytes {
		r.add(p+".max_topic_length", "%d: MQTT allows at most 65535", l.MaxTopicLength)
	}
	if l.SessionExpiryMax.D() > time.Duration(0xFFFFFFFF)*time.Second {
		r.add(p+".session_expiry_max", "%s: MQTT allows at most 4294967295s", l.SessionExpiryMax)
	}
	if l.MemoryLimit != 0 && l.MemoryLimit < MinMemoryLimit {
		r.add(p+".memory_limit", "%s: want 0 (Go's default, no limit) or at least %s", l.MemoryLimit, MinMemoryLimit)
	}
}

func (b *BridgeConfig) validate(r *report, p string) {
	if len(b.Upstreams) == 0 {
		r.add(p+".upstreams", "at least one upstream required, e.g. - url: mqtts://upstream.example:8883")
	}
	anyTLS := false
	for i, u := range b.Upstreams {
		up := fmt.Sprintf("%s.upstreams[%d].url", p, i)
		tls, err := u.check()
		if err != nil {
			r.add(up, "%v", err)
		}
		anyTLS = anyTLS || tls
	}
	if b.ClientID == "" {
		r.add(p+".client_id", "required with bridge: the gateway's client ID upstream (its thing name), e.g. plant-7-gw")
	} else if len(b.ClientID) > 128 || strings.IndexByte(b.ClientID, 0) >= 0 {
		r.add(p+".client_id", "%q: want at most 128 characters and no NUL", b.ClientID)
	}
	if b.TLS == nil {
		if anyTLS {
			r.add(p+".tls", "required for mqtts:// upstreams: the gateway's own cert and key (the upstream knows the gateway by its certificate)")
		}
	} else {
		// With a username the upstream may know the gateway by its
		// password alone: tls then only verifies the server (ca).
		if b.TLS.Cert == "" && b.Username == "" {
			r.add(p+".tls.cert", "required: the gateway's certificate, e.g. pki/gateway.crt")
		}
		validateKeyURI(r, p+".tls.key", b.TLS.Key, b.TLS.Cert != "")
	}
	if b.Keepalive.D() > 65535*time.Second {
		r.add(p+".keepalive", "%s: MQTT allows at most 65535s", b.Keepalive)
	}
	// Left out, these take the bridge's defaults; written, they must be valid.
	if b.ConnectTimeout < 0 || b.ConnectTimeout == 0 && r.has(p+".connect_timeout") {
		r.add(p+".connect_timeout", "must be more than 0, e.g. 10s")
	}
	if b.Backoff.Min < 0 || b.Backoff.Min == 0 && r.has(p+".backoff.min") {
		r.add(p+".backoff.min", "must be more than 0, e.g. 1s")
	}
	if b.Backoff.Max != 0 && b.Backoff.Max < b.Backoff.Min {
		r.add(p+".backoff.max", "%s: must not be less than backoff.min (%s)", b.Backoff.Max, b.Backoff.Min)
	}
	if b.Inflight < 0 || b.Inflight > 65535 || b.Inflight == 0 && r.has(p+".inflight") {
		r.add(p+".inflight", "%d: want 1-65535", b.Inflight)
	}
	if b.DrainRate < 0 {
		r.add(p+".drain_rate", "%d: must not be negative (0 = unlimited)", b.DrainRate)
	}
	if b.UserProperties.Device != "" && b.UserProperties.Device == b.UserProperties.Seq {
		r.add(p+".user_properties.seq", "%q: must differ from user_properties.device", b.UserProperties.Seq)
	}
	if len(b.Routes) == 0 {
		r.add(p+".routes", "at least one route required, e.g. - {topic: \"building/#\", direction: out}")
	}
	names := map[string]string{}
	for i := range b.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		rt := &b.Routes[i]
		rt.validate(r, rp)
		rt.Name = rt.ID()
		if prev, dup := names[rt.Name]; dup {
			np := rp + ".name"
			if _, ok := r.pos[np]; !ok {
				np = rp
			}
			r.add(np, "%q: duplicate route name (also %s); give each route its own name", rt.Name, prev)
		} else {
			names[rt.Name] = rp
		}
	}
}

// check validates an upstream URL; it reports whether it uses TLS.
func (u Upstream) check() (tls bool, err error) {
	if u.URL == "" {
		return false, errors.New("required, e.g. mqtts://upstream.example:8883")
	}
	pu, err := url.Parse(u.URL)
	if err != nil || pu.Host == "" {
		return false, fmt.Errorf("%q: want mqtts://host[:port]", u.URL)
	}
	if pu.User != nil {
		return false, fmt.Errorf("%q: credentials do not belong in the URL; the gateway authenticates with its certificate", u.URL)
	}
	if pu.Path != "" && pu.Path != "/" || pu.RawQuery != "" || pu.Fragment != "" {
		return false, fmt.Errorf("%q: want mqtts://host[:port] with no path or query", u.URL)
	}
	if p := pu.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return false, fmt.Errorf("%q: port %q: want a number 1-65535", u.URL, p)
		}
	}
	switch pu.Scheme {
	case "mqtts":
		return true, nil
	case "mqtt":
		if !loopback.Host(pu.Hostname()) {
			return false, fmt.Errorf("%q: plaintext mqtt:// is allowed only to a loopback host (127.0.0.1, ::1, localhost); use mqtts://", u.URL)
		}
		return false, nil
	}
	return false, fmt.Errorf("%q: scheme %q: want mqtts:// (or mqtt:// to a loopback host)", u.URL, pu.Scheme)
}

// HostPort returns host:port of the upstream, with the default port (8883
// for mqtts, 1883 for mqtt) when the URL has none.
func (u Upstream) HostPort() string {
	pu, err := url.Parse(u.URL)
	if err != nil {
		return ""
	}
	port := pu.Port()
	if port == "" {
		port = "8883"
		if pu.Scheme == "mqtt" {
			port = "1883"
		}
	}
	return net.JoinHostPort(pu.Hostname(), port)
}

// TLS reports whether the upstream URL is mqtts://.
func (u Upstream) TLS() bool { return strings.HasPrefix(u.URL, "mqtts:") }

func (rt *Route) validate(r *report, p string) {
	if rt.Topic == "" {
		r.add(p+".topic", "required: an MQTT topic filter, e.g. \"building/#\"")
	} else if err := ValidateTopicFilter(rt.Topic); err != nil {
		r.add(p+".topic", "%q: %v", rt.Topic, err)
	}
	switch rt.Direction {
	case DirectionOut, DirectionIn, DirectionBoth:
	default:
		r.add(p+".direction", "%q: want out, in or both", rt.Direction)
	}
	if rt.QoS < 0 || rt.QoS > 2 {
		r.add(p+".qos", "%d: want 0, 1 or 2", rt.QoS)
	}
	for _, pf := range []struct{ key, v string }{{"local_prefix", rt.LocalPrefix}, {"remote_prefix", rt.RemotePrefix}} {
		if pf.v == "" {
			continue
		}
		if err := ValidateTopicName(pf.v); err != nil {
			r.add(p+"."+pf.key, "%q: %v", pf.v, err)
		}
	}
	if rt.MaxBytes < 0 {
		r.add(p+".max_bytes", "must not be negative (0 = only the store cap)")
	}
	if rt.MaxMessages < 0 {
		r.add(p+".max_messages", "%d: must not be negative (0 = no count limit)", rt.MaxMessages)
	}
	switch rt.Overflow {
	case OverflowDropOldest, OverflowReject:
	default:
		r.add(p+".overflow", "%q: want drop-oldest or reject", rt.Overflow)
	}
}
