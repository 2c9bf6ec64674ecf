package mosqimport

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Pos is a line of an input file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line)
	}
	return p.File
}

// Conf is a parsed mosquitto.conf with its include_dir files.
type Conf struct {
	PerListenerSettings bool
	Security            Security // the global one (per_listener_settings false)
	Listeners           []*ConfListener
	Connections         []*Connection
	IncludeDirs         []Setting
	// Ignored are the lines the importer reads but that have no edgegw
	// equivalent, each with the reason; unknown options are in it too.
	Ignored []Finding
}

// Setting is one option value and where it was written.
type Setting struct {
	Pos
	Value string
}

// Security is Mosquitto's per-listener-or-global security group.
type Security struct {
	AllowAnonymous *Setting // "true" | "false"; nil = not written
	PasswordFile   *Setting
	ACLFile        *Setting
	Other          []Finding // psk_file, plugin, auth_plugin...: not carried over
}

// ConfListener is one `listener` (or the default `port`) and its options.
type ConfListener struct {
	Pos
	Port       int
	Host       string // bind address; "" = all interfaces
	Default    bool   // the listener of `port`, `bind_address` and options before any `listener`
	Socket     bool   // a unix socket listener (port 0 with a path)
	Protocol   *Setting
	CAFile     *Setting
	CAPath     *Setting
	CertFile   *Setting
	KeyFile    *Setting
	CRLFile    *Setting
	TLSVersion *Setting
	// RequireCertificate, UseIdentity and UseSubject hold "true" or "false".
	RequireCertificate *Setting
	UseIdentity        *Setting
	UseSubject         *Setting
	Security           Security // per_listener_settings true
	Other              []Finding
}

// TLS reports whether the listener has TLS (certfile and keyfile).
func (l *ConfListener) TLS() bool { return l.CertFile != nil || l.KeyFile != nil }

// Connection is one bridge `connection` block.
type Connection struct {
	Pos
	Name           string
	Addresses      []Setting // host[:port], failover order
	Topics         []BridgeTopic
	CAFile         *Setting
	CAPath         *Setting
	CertFile       *Setting
	KeyFile        *Setting
	RemoteClientID *Setting
	Keepalive      *Setting
	Other          []Finding // options carried over by nothing, with the reason
}

// BridgeTopic is one `topic` line of a connection.
type BridgeTopic struct {
	Pos
	Pattern      string
	Direction    string // out | in | both
	QoS          int
	LocalPrefix  string
	RemotePrefix string
}

// confParser holds the state of one parse: the current listener and bridge.
type confParser struct {
	c        *Conf
	listener *ConfListener // the current `listener`; nil before the first
	def      *ConfListener // the default listener, once an option needs it
	bridge   *Connection
	errs     []Finding
}

// ParseConf parses one mosquitto.conf file. include_dir lines are recorded in
// Conf.IncludeDirs, not followed: Import reads them. Lines Mosquitto itself
// would refuse are returned as findings of kind Invalid in errs (the import
// goes on without them).
func ParseConf(name string, data []byte) (c *Conf, errs []Finding) {
	p := &confParser{c: &Conf{}}
	p.parse(name, data)
	return p.c, p.errs
}

func (p *confParser) invalid(pos Pos, text, format string, args ...any) {
	p.errs = append(p.errs, Finding{Pos: pos, Kind: Invalid, Text: text, Reason: fmt.Sprintf(format, args...)})
}

func (p *confParser) ignore(pos Pos, text, format string, args ...any) {
	p.c.Ignored = append(p.c.Ignored, Finding{Pos: pos, Kind: NotCarried, Text: text, Reason: fmt.Sprintf(format, args...)})
}

// maxLineBytes bounds one configuration line; Mosquitto's own lines are short.
const maxLineBytes = 64 << 10

func (p *confParser) parse(name string, data []byte) {
	for i, raw := range strings.Split(string(data), "\n") {
		pos := Pos{File: name, Line: i + 1}
		line := strings.TrimRight(raw, " \t\r\n\f\v")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if len(line) > maxLineBytes {
			p.invalid(pos, line[:80], "line longer than %d bytes", maxLineBytes)
			continue
		}
		if !utf8.ValidString(line) || strings.IndexByte(line, 0) >= 0 {
			p.invalid(pos, "", "not valid UTF-8 text (or a NUL character); edgegw's files are UTF-8")
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		p.option(pos, line, key, rest)
	}
}

// boolOpt returns a Setting for a true/false option, or records why not.
func (p *confParser) boolOpt(pos Pos, text, key, v string) *Setting {
	if v != "true" && v != "false" {
		p.invalid(pos, text, "%s: %q: want true or false", key, v)
		return nil
	}
	return &Setting{Pos: pos, Value: v}
}

func (p *confParser) cur() *ConfListener {
	if p.listener == nil {
		return p.defaultListener()
	}
	return p.listener
}

// security returns the security group options apply to: the listener's with
// per_listener_settings true, the global one otherwise. Mosquitto requires
// per_listener_settings before any listener; it is applied as read.
func (p *confParser) security() *Security {
	if p.c.PerListenerSettings {
		return &p.cur().Security
	}
	return &p.c.Security
}

// option applies one line (key v) of mosquitto.conf: a bridge option inside a
// connection block, a listener or TLS option, a security option, or a global one.
func (p *confParser) option(pos Pos, text, key, v string) {
	if p.bridgeOption(pos, text, key, v) || p.listenerOption(pos, text, key, v) ||
		p.tlsOption(pos, text, key, v) || p.securityOption(pos, text, key, v) {
		return
	}
	switch key {
	case "per_listener_settings":
		if s := p.boolOpt(pos, text, key, v); s != nil {
			p.c.PerListenerSettings = s.Value == "true"
		}
	case "include_dir":
		if p.need(pos, text, key, v) {
			p.c.IncludeDirs = append(p.c.IncludeDirs, Setting{Pos: pos, Value: v})
		}
	case "connection":
		if !p.need(pos, text, key, v) {
			return
		}
		p.bridge = &Connection{Pos: pos, Name: v}
		p.c.Connections = append(p.c.Connections, p.bridge)
	default:
		if r, ok := globalReasons[key]; ok {
			p.ignore(pos, text, "%s", r)
			return
		}
		if strings.HasPrefix(key, "bridge_") || bridgeKeys[key] {
			p.invalid(pos, text, "%s: a bridge option outside a connection block", key)
			return
		}
		p.ignore(pos, text, "option %q is unknown to the importer; check the edgegw documentation for an equivalent", key)
	}
}

// need reports whether option key has a value, recording an Invalid finding if not.
func (p *confParser) need(pos Pos, text, key, v string) bool {
	if v == "" {
		p.invalid(pos, text, "%s: missing value", key)
		return false
	}
	return true
}

// listenerOption handles listener, port and bind_address, and the listener
// options edgegw does not carry; it reports whether key was one of them.
func (p *confParser) listenerOption(pos Pos, text, key, v string) bool {
	switch key {
	case "listener":
		f := strings.Fields(v)
		if len(f) == 0 || len(f) > 2 {
			p.invalid(pos, text, "listener: want PORT [BIND-ADDRESS]")
			return true
		}
		port, err := strconv.Atoi(f[0])
		if err != nil || port < 0 || port > 65535 {
			p.invalid(pos, text, "listener: port %q: want 0-65535", f[0])
			return true
		}
		l := &ConfListener{Pos: pos, Port: port}
		if len(f) == 2 {
			l.Host = f[1]
			l.Socket = port == 0 && strings.HasPrefix(f[1], "/")
		}
		p.listener = l
		p.c.Listeners = append(p.c.Listeners, l)
	case "port":
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			p.invalid(pos, text, "port: %q: want 1-65535", v)
			return true
		}
		l := p.defaultListener()
		l.Port, l.Pos = port, pos
	case "bind_address":
		if p.need(pos, text, key, v) {
			l := p.defaultListener()
			l.Host = v
		}
	case "ciphers", "ciphers_tls1.3", "dhparamfile", "ecdh_curve", "mount_point", "http_dir", "max_connections",
		"socket_domain", "use_username_as_clientid", "certfile_keyform", "keyfile_keyform", "tls_engine",
		"tls_engine_kpass_sha1", "tls_keyform", "max_topic_alias", "max_qos":
		l := p.cur()
		l.Other = append(l.Other, Finding{Pos: pos, Kind: NotCarried, Text: text, Reason: listenerReasons(key)})
	default:
		return false
	}
	return true
}

// tlsOption handles the current listener's protocol and TLS options (one line
// per option); it reports whether key was one of them.
func (p *confParser) tlsOption(pos Pos, text, key, v string) bool {
	switch key {
	case "protocol", "cafile", "capath", "certfile", "keyfile", "crlfile", "tls_version":
		if !p.need(pos, text, key, v) {
			return true
		}
		set, l := &Setting{Pos: pos, Value: v}, p.cur()
		switch key {
		case "protocol":
			l.Protocol = set
		case "cafile":
			l.CAFile = set
		case "capath":
			l.CAPath = set
		case "certfile":
			l.CertFile = set
		case "keyfile":
			l.KeyFile = set
		case "crlfile":
			l.CRLFile = set
		case "tls_version":
			l.TLSVersion = set
		}
	case "require_certificate":
		p.cur().RequireCertificate = p.boolOpt(pos, text, key, v)
	case "use_identity_as_username":
		p.cur().UseIdentity = p.boolOpt(pos, text, key, v)
	case "use_subject_as_username":
		p.cur().UseSubject = p.boolOpt(pos, text, key, v)
	default:
		return false
	}
	return true
}

// securityOption handles the authentication options of the security group in
// effect (see security); it reports whether key was one of them.
func (p *confParser) securityOption(pos Pos, text, key, v string) bool {
	switch key {
	case "allow_anonymous":
		p.security().AllowAnonymous = p.boolOpt(pos, text, key, v)
	case "password_file":
		if p.need(pos, text, key, v) {
			p.security().PasswordFile = &Setting{Pos: pos, Value: v}
		}
	case "acl_file":
		if p.need(pos, text, key, v) {
			p.security().ACLFile = &Setting{Pos: pos, Value: v}
		}
	case "psk_file", "psk_hint", "plugin", "auth_plugin", "plugin_opt", "auth_opt", "allow_zero_length_clientid",
		"auto_id_prefix":
		s := p.security()
		s.Other = append(s.Other, Finding{Pos: pos, Kind: NotCarried, Text: text, Reason: securityReasons(key)})
	default:
		return false
	}
	return true
}

// defaultListener returns the listener `port` and `bind_address` configure
// (and options written before any `listener` line), created on first use.
func (p *confParser) defaultListener() *ConfListener {
	if p.def == nil {
		p.def = &ConfListener{Port: 1883, Default: true}
		p.c.Listeners = append([]*ConfListener{p.def}, p.c.Listeners...)
	}
	return p.def
}

var bridgeKeys = map[string]bool{
	"address": true, "addresses": true, "topic": true, "cleansession": true, "clientid": true,
	"remote_clientid": true, "local_clientid": true, "remote_username": true, "remote_password": true,
	"local_username": true, "local_password": true, "try_private": true, "notifications": true,
	"notification_topic": true, "notifications_local_only": true, "keepalive_interval": true,
	"restart_timeout": true, "round_robin": true, "start_type": true, "threshold": true, "idle_timeout": true,
	"username": true, "password": true,
}

// bridgeOption handles an option inside a connection block; it reports
// whether key was a bridge option.
func (p *confParser) bridgeOption(pos Pos, text, key, v string) bool {
	b := p.bridge
	if b == nil || (!bridgeKeys[key] && !strings.HasPrefix(key, "bridge_")) {
		return false
	}
	set := &Setting{Pos: pos, Value: v}
	other := func(format string, args ...any) {
		b.Other = append(b.Other, Finding{Pos: pos, Kind: NotCarried, Text: text, Reason: fmt.Sprintf(format, args...)})
	}
	switch key {
	case "address", "addresses":
		f := strings.Fields(v)
		if len(f) == 0 {
			p.invalid(pos, text, "%s: want HOST[:PORT] ...", key)
			return true
		}
		for _, a := range f {
			b.Addresses = append(b.Addresses, Setting{Pos: pos, Value: a})
		}
	case "topic":
		p.bridgeTopic(b, pos, text, v)
	case "bridge_cafile":
		b.CAFile = set
	case "bridge_capath":
		b.CAPath = set
	case "bridge_certfile":
		b.CertFile = set
	case "bridge_keyfile":
		b.KeyFile = set
	case "remote_clientid", "clientid":
		b.RemoteClientID = set
	case "keepalive_interval":
		b.Keepalive = set
	case "remote_username", "username":
		other("edgegw authenticates upstream with the gateway's certificate (bridge.tls), not a user name")
	case "remote_password", "password":
		b.Other = append(b.Other, Finding{Pos: pos, Kind: NotCarried, Text: key + " (value not shown)",
			Reason: "edgegw authenticates upstream with the gateway's certificate (bridge.tls), not a password; the password is not copied"})
	case "bridge_protocol_version":
		if v == "mqttv50" {
			return true
		}
		other("edgegw speaks MQTT 5 upstream; check that the upstream accepts MQTT 5 (Mosquitto 2, AWS IoT Core, EMQX and HiveMQ do)")
	case "cleansession":
		other("edgegw's bridge keeps every outbound message in its own durable queue until the upstream acknowledges it; the upstream session setting is edgegw's own")
	case "try_private", "bridge_attempt_unsubscribe", "notifications", "notification_topic", "notifications_local_only":
		other("Mosquitto-to-Mosquitto bridge signalling; edgegw reports the bridge state in `edgegw status` and its metrics instead")
	case "round_robin":
		if v == "true" {
			other("edgegw tries upstreams in order (failover), always starting from the first; it does not round-robin")
		}
	case "bridge_insecure":
		if v == "true" {
			other("edgegw always verifies the upstream's certificate and host name; set bridge.upstreams[].server_name if the name differs")
		}
	case "local_clientid", "local_username", "local_password":
		other("edgegw's bridge is part of the broker and needs no local client identity")
	case "start_type", "restart_timeout", "idle_timeout", "threshold":
		other("edgegw's bridge always runs and reconnects with bridge.backoff (min/max delay)")
	case "bridge_tls_version", "bridge_alpn", "bridge_identity", "bridge_psk", "bridge_require_ocsp",
		"bridge_outgoing_retain", "bridge_max_packet_size", "bridge_bind_address", "bridge_reload_type":
		other("no edgegw equivalent (edgegw uses TLS 1.2 or later with certificates; see bridge in edgegw.yaml)")
	default:
		other("bridge option %q is unknown to the importer", key)
	}
	return true
}

var directions = map[string]bool{"out": true, "in": true, "both": true}

// bridgeTopic parses `topic PATTERN [out|in|both] [QOS] [LOCAL] [REMOTE]`,
// where "" is an empty value.
func (p *confParser) bridgeTopic(b *Connection, pos Pos, text, v string) {
	f := strings.Fields(v)
	for i := range f {
		if f[i] == `""` {
			f[i] = ""
		}
	}
	if len(f) == 0 || len(f) > 5 {
		p.invalid(pos, text, "topic: want PATTERN [out|in|both] [QOS] [LOCAL-PREFIX] [REMOTE-PREFIX]")
		return
	}
	t := BridgeTopic{Pos: pos, Pattern: f[0], Direction: "out"}
	if len(f) > 1 {
		if !directions[f[1]] {
			p.invalid(pos, text, "topic: direction %q: want out, in or both", f[1])
			return
		}
		t.Direction = f[1]
	}
	if len(f) > 2 {
		q, err := strconv.Atoi(f[2])
		if err != nil || q < 0 || q > 2 {
			p.invalid(pos, text, "topic: QoS %q: want 0, 1 or 2", f[2])
			return
		}
		t.QoS = q
	}
	if len(f) > 3 {
		t.LocalPrefix = f[3]
	}
	if len(f) > 4 {
		t.RemotePrefix = f[4]
	}
	b.Topics = append(b.Topics, t)
}

func securityReasons(key string) string {
	switch key {
	case "psk_file", "psk_hint":
		return "edgegw does not accept TLS-PSK; every device has its own certificate"
	case "plugin", "auth_plugin", "plugin_opt", "auth_opt":
		return "Mosquitto plugins do not run in edgegw; authorization is by policies (policies/) and devices.yaml"
	case "allow_zero_length_clientid", "auto_id_prefix":
		return "edgegw requires the client ID to be the thing name, so no client ID is generated"
	}
	return "no edgegw equivalent"
}

func listenerReasons(key string) string {
	switch key {
	case "ciphers", "ciphers_tls1.3", "dhparamfile", "ecdh_curve":
		return "edgegw uses Go's TLS cipher suites for TLS 1.2 and 1.3 (no weak suites); not configurable"
	case "max_connections":
		return "edgegw limits clients for the whole broker: limits.max_clients"
	case "mount_point":
		return "edgegw has no mount points; use policies with a topic prefix, or route prefixes"
	case "use_username_as_clientid":
		return "edgegw requires the client ID to be the thing name"
	}
	return "no edgegw equivalent for this listener option"
}

// globalReasons are options whose job edgegw does differently (or needs
// not be told).
var globalReasons = map[string]string{
	"pid_file":                       "edgegw runs under systemd (Type=notify); no pid file",
	"user":                           "the edgegw package runs the daemon as its own user",
	"persistence":                    "edgegw's queue is always durable (store.dir); retained messages and sessions are edgegw's own",
	"persistence_location":           "edgegw keeps its queue in store.dir (default /var/lib/edgegw/queue)",
	"persistence_file":               "edgegw keeps its queue in store.dir (default /var/lib/edgegw/queue)",
	"autosave_interval":              "edgegw syncs every acknowledged message to disk before its PUBACK",
	"autosave_on_changes":            "edgegw syncs every acknowledged message to disk before its PUBACK",
	"log_dest":                       "edgegw logs to stderr (journald under systemd) and writes an audit log (audit.file)",
	"log_type":                       "edgegw's log level is log.level (debug, info, warn, error)",
	"log_timestamp":                  "journald timestamps edgegw's log lines",
	"log_timestamp_format":           "journald timestamps edgegw's log lines",
	"connection_messages":            "edgegw writes every connect and refusal to its audit log",
	"websockets_log_level":           "edgegw has no websockets listener",
	"sys_interval":                   "edgegw publishes its state as Prometheus metrics (metrics.address) and `edgegw status`",
	"max_inflight_messages":          "edgegw's per-client limit is limits.receive_maximum",
	"max_inflight_bytes":             "edgegw's per-client limit is limits.receive_maximum",
	"max_queued_messages":            "edgegw's per-client limit is limits.client_write_queue",
	"max_queued_bytes":               "edgegw's per-client limit is limits.client_write_queue",
	"max_packet_size":                "edgegw's limit is limits.max_packet_size (default 256KiB)",
	"message_size_limit":             "edgegw's limit is limits.max_packet_size (default 256KiB)",
	"max_keepalive":                  "edgegw accepts the client's keepalive",
	"persistent_client_expiration":   "edgegw's limit is limits.session_expiry_max (default 24h)",
	"retain_available":               "edgegw keeps retained messages within limits.retained_max_messages and retained_max_bytes",
	"set_tcp_nodelay":                "edgegw sets TCP_NODELAY itself",
	"upgrade_outgoing_qos":           "no edgegw equivalent",
	"queue_qos0_messages":            "edgegw queues QoS 0 for offline sessions by its own rules; bridge routes have queue_qos0",
	"check_retain_source":            "edgegw checks iot:RetainPublish on every retained PUBLISH",
	"memory_limit":                   "edgegw's memory bound is limits.memory_limit",
	"clientid_prefixes":              "edgegw requires the client ID to be the thing name; use policies",
	"allow_duplicate_messages":       "no edgegw equivalent",
	"password_file_uses_ssl_hashing": "no edgegw equivalent",
}
