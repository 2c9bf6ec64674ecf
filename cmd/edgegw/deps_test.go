package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/edgegw/edgegw"

// pkgImports is what the import rules need from `go list -json`.
type pkgImports struct {
	ImportPath   string
	Imports      []string // direct, non-test
	Deps         []string // transitive, non-test
	TestImports  []string
	XTestImports []string
}

// rel returns the module-relative name ("store", "gateway/pki", "." for the
// root), or "" for packages outside the module.
func rel(path string) string {
	if path == module {
		return "."
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return ""
}

func underAny(p string, roots ...string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// Third-party import paths the rules name (prefixes).
const (
	mochiPath  = "github.com/mochi-mqtt/"
	badgerPath = "github.com/dgraph-io/badger"
	promPath   = "github.com/prometheus/"
	pahoPath   = "github.com/eclipse/paho.golang"
	// pahoClientPath is paho's MQTT client (its own session and in-flight
	// store), as opposed to its packets.
	pahoClientPath = pahoPath + "/paho"
)

// pureForbid are the third-party libraries the pure rooms (logic with no
// broker, store, metrics or upstream session of their own) must not import.
var pureForbid = []string{mochiPath, badgerPath, promPath, pahoPath}

// room is the import rule of one package of the module.
type room struct {
	// ours lists the module packages it may depend on, transitively; empty
	// means it depends on nothing of ours (a leaf).
	ours   []string
	forbid []string // third-party import path prefixes it must not import
	// client: it may depend on any package of ours, as package main does (a
	// room of the command line, a client of the gateway's public API); ours
	// is then not checked.
	client bool
}

// belowWiring is every package of ours the rooms between the components
// and the wiring (gateway/shadowrun...) may depend on: anything but gateway
// itself, cmd and the test helpers.
var belowWiring = []string{"store", "hw", "bridge", "bridge/topic", "bridge/wire", "bridge/proxy", "gateway/audit", "gateway/authz", "gateway/authorizer",
	"gateway/clock", "gateway/loopback", "gateway/pki", "gateway/enrol", "gateway/rules", "gateway/rules/sql", "gateway/rules/sql/lex", "gateway/rules/sql/internal/jsonscan", "gateway/rules/sql/internal/md2", "gateway/rules/timefmt", "gateway/internal/jsonq", "gateway/shadow",
	"gateway/presence", "gateway/broker", "gateway/broker/wire", "gateway/broker/listen", "gateway/config", "gateway/observe", "gateway/renew", "gateway/est"}

// uplinkOurs is what gateway/uplink may depend on: what is below the wiring
// and the two rooms beside it whose parts it opens (gateway/shadowrun for the
// first bridge's shadows, gateway/localstate for the queue-open audit).
var uplinkOurs = append(append([]string(nil), belowWiring...), "gateway/shadowrun", "gateway/localstate")

// sqlRooms are the rooms of the rules engine below it: the language, then
// its leaves (the lexer, the JSON reader, MD2, the date patterns).
var sqlRooms = []string{"gateway/rules/sql", "gateway/rules/sql/lex", "gateway/rules/sql/internal/jsonscan", "gateway/rules/sql/internal/md2", "gateway/rules/timefmt", "gateway/internal/jsonq"}

// rooms are the per-package rules. TestImportDirection fails when one of
// these packages is missing, so a rule never silently checks nothing.
var rooms = map[string]room{
	// Leaves: nothing of ours beneath them.
	"store":            {},
	"hw":               {},
	"gateway/authz":    {},
	"gateway/audit":    {},
	"gateway/clock":    {},
	"gateway/loopback": {},
	// MQTT topic syntax: the one owner of the filter and name rules.
	"bridge/topic": {forbid: pureForbid},
	// The queue self-test (edgegw queue smoke, store/internal/smoke): the store only.
	"store/selftest": {ours: []string{"store"}, forbid: []string{mochiPath, promPath, pahoPath}},
	// The power-cut tests' loop-mounted disk (a test helper): nothing of ours.
	"store/loopdisk": {forbid: pureForbid},
	// The bridge's MQTT client codec (the 3.1.1 packets, the allocation-free PUBLISH, the
	// short PUBACK): bytes only, over paho's packets; a leaf, never paho's client.
	"bridge/wire": {forbid: []string{mochiPath, badgerPath, promPath, pahoClientPath}},
	// The HTTP CONNECT tunnel the bridge dials through: the standard library only.
	"bridge/proxy": {forbid: pureForbid},
	// bridge speaks to the queue only (and topic syntax, its codec, its proxy dialer); pki needs keys and the thing-name rule.
	"bridge":      {ours: []string{"store", "bridge/topic", "bridge/wire", "bridge/proxy"}},
	"gateway/pki": {ours: []string{"hw", "gateway/authz"}},
	// config: schema and validation; key URIs are hw's, topic filters bridge/topic's, the rules'
	// schema the rules engine's (pure), the enrolment section's rules enrol's (pure: pki, authz, hw);
	// no runtime package.
	"gateway/config": {ours: configOurs},
	// AWS IoT SQL rules, pure: the engine (actions, templates, rule sets) over
	// the language (parser, evaluator, functions), over the lexer, the JSON
	// reader, MD2 and the date patterns (leaves); the corpus the tests of both
	// share.
	"gateway/rules":                       {ours: sqlRooms, forbid: pureForbid},
	"gateway/rules/sql":                   {ours: sqlRooms[1:], forbid: pureForbid},
	"gateway/rules/sql/lex":               {forbid: pureForbid},
	"gateway/rules/sql/internal/jsonscan": {forbid: pureForbid},
	"gateway/rules/sql/internal/md2":      {forbid: pureForbid},
	"gateway/rules/timefmt":               {forbid: pureForbid},
	// JSON string quoting shared by the rules language and the shadows: a leaf.
	"gateway/internal/jsonq":    {forbid: pureForbid},
	"gateway/rules/sql/sqltest": {ours: sqlRooms, forbid: pureForbid},
	// Device shadows (the thing-name rule is authz's) and their test helper.
	"gateway/shadow":            {ours: []string{"gateway/authz", "gateway/internal/jsonq"}, forbid: pureForbid},
	"gateway/shadow/shadowtest": {ours: []string{"gateway/shadow", "gateway/authz", "gateway/internal/jsonq"}, forbid: pureForbid},
	// The custom authorizer and the Mosquitto config import: policies only.
	"gateway/authorizer": {ours: []string{"gateway/authz"}, forbid: pureForbid},
	"gateway/mosqimport": {ours: []string{"gateway/authz"}, forbid: pureForbid},
	// Fleet provisioning: certificates (pki, keys in hw) for things (authz).
	"gateway/enrol": {ours: []string{"gateway/pki", "gateway/authz", "hw"}, forbid: pureForbid},
	// EST (RFC 7030): at most hw for keys.
	"gateway/est": {ours: []string{"hw"}, forbid: pureForbid},
	// Renewal of the gateway's own upstream certificate: keys (hw), the AWS
	// provisioning API's shapes (enrol, with its pki and authz), EST; the
	// bridge only through its small interfaces.
	"gateway/renew": {ours: []string{"hw", "gateway/est", "gateway/enrol", "gateway/pki", "gateway/authz"}, forbid: pureForbid},
	// Device presence (who is offline, since when): a leaf.
	"gateway/presence": {forbid: pureForbid},
	// The shadows as the daemon runs them (store, Syncer beside the bridge):
	// never the wiring, and the third-party libraries only through their owners.
	"gateway/shadowrun": {ours: belowWiring, forbid: pureForbid},
	// What the daemon keeps beside the queues (store without a bridge, offline
	// sessions, presence): the same.
	"gateway/localstate": {ours: belowWiring, forbid: pureForbid},
	// config -> broker options, rules and authorizers: the same.
	"gateway/brokerconf": {ours: belowWiring, forbid: pureForbid},
	// The durable path and the upstream links (queues, bridges, their TLS, the
	// route matcher, renewal): the same, and the shadows the first bridge
	// carries and the queue-open audit.
	"gateway/uplink": {ours: uplinkOurs, forbid: pureForbid},
	// The enrolment service as the daemon runs it (sweeper, audit, preflight): the same
	// as the rooms below the wiring.
	"gateway/enrolrun": {ours: belowWiring, forbid: pureForbid},
	// The queue commands (edgegw queue): a room of the command line, a client of the
	// gateway's API; badger is the store's, mochi the broker's, prometheus observe's.
	// Their test helper (a filled queue) needs the store only.
	"cmd/edgegw/queuecmd":           {client: true, forbid: pureForbid},
	"cmd/edgegw/queuecmd/queuetest": {ours: []string{"store"}, forbid: []string{mochiPath, promPath, pahoPath}},
	// The broker's raw MQTT byte checks: a leaf, no mochi (it sees what mochi's decoder drops).
	"gateway/broker/wire": {forbid: pureForbid},
	// The broker's front door (TLS trust and CRL, the guarded listener, fair admission,
	// certificate -> identity, password file): no mochi, and never the broker above it.
	"gateway/broker/listen": {ours: listenOurs, forbid: pureForbid},
	// What a room of the command line needs from the command line around it (the CLI
	// interface, ExitError): config for two signatures, nothing else of ours. Its test
	// double the same and cli itself.
	"cmd/edgegw/cli":         {ours: append([]string{"gateway/config"}, configOurs...), forbid: pureForbid},
	"cmd/edgegw/cli/clitest": {ours: append([]string{"cmd/edgegw/cli", "gateway/config"}, configOurs...), forbid: pureForbid},
	// The pki commands (edgegw pki): a room of the command line over the CA (pki, enrol, keys
	// in hw, the clock floor), not a client of the daemon: no gateway, broker, store or observe.
	// Their test helper (a site PKI) needs hw only.
	"cmd/edgegw/pkicmd":         {ours: append([]string{"cmd/edgegw/cli", "gateway/config", "gateway/clock"}, configOurs...), forbid: pureForbid},
	"cmd/edgegw/pkicmd/pkitest": {ours: []string{"hw", "hw/hwtest"}, forbid: pureForbid},
	// The offline evaluation commands (edgegw policy test, rule test): a room of the command
	// line, a client of the gateway's API (the broker's policy loader); their test helper (a
	// site with policies) imports nothing of ours.
	"cmd/edgegw/evalcmd":          {client: true, forbid: pureForbid},
	"cmd/edgegw/evalcmd/evaltest": {forbid: pureForbid},
	// The shadow command (edgegw shadow): a room of the command line, a client of the running
	// daemon through observe's admin socket.
	"cmd/edgegw/shadowcmd": {client: true, forbid: pureForbid},
}

// listenOurs is what gateway/broker/listen may depend on: leaves and the raw MQTT checks.
var listenOurs = []string{"gateway/audit", "gateway/authz", "gateway/clock", "hw", "gateway/broker/wire"}

// configOurs is what gateway/config may depend on (and so everything that imports config
// and nothing else of ours).
var configOurs = []string{"hw", "gateway/authz", "gateway/loopback", "bridge/topic", "gateway/rules", "gateway/rules/sql", "gateway/rules/sql/lex", "gateway/rules/sql/internal/jsonscan", "gateway/rules/sql/internal/md2", "gateway/rules/timefmt", "gateway/internal/jsonq", "gateway/enrol", "gateway/pki"}

// testHelpers are the module's test helper packages: only tests import them.
var testHelpers = []string{"gateway/gatewaytest", "gateway/shadow/shadowtest", "gateway/rules/sql/sqltest", "cmd/edgegw/queuecmd/queuetest", "cmd/edgegw/cli/clitest", "cmd/edgegw/pkicmd/pkitest", "cmd/edgegw/evalcmd/evaltest", "store/loopdisk"}

// cmdRooms are the rooms of the command line: only package main (cmd/edgegw) adds them.
var cmdRooms = []string{"cmd/edgegw/queuecmd", "cmd/edgegw/pkicmd", "cmd/edgegw/evalcmd", "cmd/edgegw/shadowcmd"}

// cmdShared is what package main shares with its rooms: only cmd/edgegw/... imports it.
var cmdShared = []string{"cmd/edgegw/cli"}

// checkImports applies the import rules to the packages of this module and
// returns one line per violation:
//   - rooms: per-package rules above (leaves, bridge, pki, config, new rooms);
//   - only gateway/broker (and gateway/gatewaytest) import mochi-mqtt;
//   - only gateway/observe imports prometheus;
//   - only store imports badger;
//   - the daemon's packages (gateway, gateway/...) do not import paho: the
//     bridge speaks MQTT upstream, the demo and tests are clients;
//   - only cmd/... (and gateway/gatewaytest) import gateway;
//   - the test helpers (testHelpers) are imported by tests only;
//   - the rooms of the command line (cmdRooms) are imported by cmd/edgegw only;
//   - what main shares with its rooms (cmdShared) is imported by cmd/edgegw/... only.
func checkImports(pkgs []pkgImports) []string {
	var bad []string
	for _, p := range pkgs {
		name := rel(p.ImportPath)
		if name == "" {
			continue
		}
		if r, ruled := rooms[name]; ruled {
			bad = append(bad, r.check(name, p)...)
		}
		// Direct rules, on the non-test imports of every package.
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, mochiPath) && name != "gateway/broker" && name != "gateway/gatewaytest":
				bad = append(bad, fmt.Sprintf("%s imports %s; only gateway/broker may import mochi-mqtt", name, imp))
			case strings.HasPrefix(imp, promPath) && name != "gateway/observe":
				bad = append(bad, fmt.Sprintf("%s imports %s; only gateway/observe may import prometheus", name, imp))
			case strings.HasPrefix(imp, badgerPath) && name != "store":
				bad = append(bad, fmt.Sprintf("%s imports %s; only store may import badger", name, imp))
			case strings.HasPrefix(imp, pahoPath) && underAny(name, "gateway") && name != "gateway/gatewaytest":
				bad = append(bad, fmt.Sprintf("%s imports %s; the daemon's packages must not import paho (the bridge speaks MQTT upstream)", name, imp))
			case rel(imp) == "gateway" && !underAny(name, "cmd") && name != "gateway/gatewaytest":
				bad = append(bad, fmt.Sprintf("%s imports gateway; only cmd/... may import gateway", name))
			case contains(testHelpers, rel(imp)):
				bad = append(bad, fmt.Sprintf("%s imports %s outside its tests; it is a test helper", name, rel(imp)))
			case contains(cmdRooms, rel(imp)) && name != "cmd/edgegw":
				bad = append(bad, fmt.Sprintf("%s imports %s; only cmd/edgegw may (a room of the command line)", name, rel(imp)))
			case contains(cmdShared, rel(imp)) && !underAny(name, "cmd/edgegw"):
				bad = append(bad, fmt.Sprintf("%s imports %s; only cmd/edgegw and its rooms may (the command line's own)", name, rel(imp)))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// check applies r to the package name with imports p.
func (r room) check(name string, p pkgImports) []string {
	var bad []string
	for _, d := range p.Deps {
		dn := rel(d)
		if dn == "" || dn == name || r.client {
			continue
		}
		if !contains(r.ours, dn) {
			bad = append(bad, fmt.Sprintf("%s imports %s (via its dependencies); allowed from this module: %s", name, dn, list(r.ours)))
		}
	}
	for _, imp := range p.Imports {
		for _, f := range r.forbid {
			if strings.HasPrefix(imp, f) {
				bad = append(bad, fmt.Sprintf("%s imports %s; it must not import %s", name, imp, f))
			}
		}
	}
	return bad
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// goList lists every package of the module with its imports. Packages that
// do not exist yet are simply absent; broken ones still list (-e).
func goList(t *testing.T) []pkgImports {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps,TestImports,XTestImports", module+"/...")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkgImports
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgImports
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	pkgs := goList(t)
	var names []string
	for _, p := range pkgs {
		names = append(names, rel(p.ImportPath))
	}
	// The checker must at least see this package and the rooms, or it checks nothing.
	must := []string{"cmd/edgegw", "gateway", "gateway/broker", "gateway/observe"}
	for r := range rooms {
		must = append(must, r)
	}
	sort.Strings(must)
	for _, p := range must {
		if !contains(names, p) {
			t.Fatalf("go list found %v; want it to include %s", names, p)
		}
	}
	t.Logf("checked %d packages: %s", len(names), strings.Join(names, " "))
	for _, v := range checkImports(pkgs) {
		t.Errorf("import rule broken: %s", v)
	}
}

// TestCheckImportsCatches feeds the checker synthetic import lists: it must
// flag each kind of violation and accept the allowed shapes.
func TestCheckImportsCatches(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	const mochi = "github.com/mochi-mqtt/server/v2"
	const badger = "github.com/dgraph-io/badger/v4"
	const prom = "github.com/prometheus/client_golang/prometheus"
	const paho = "github.com/eclipse/paho.golang/paho"
	tests := []struct {
		name string
		pkg  pkgImports
		want []string
	}{
		{"store importing hw", pkgImports{ImportPath: m("store"), Imports: []string{m("hw")}, Deps: []string{m("hw")}},
			[]string{"store imports hw (via its dependencies); allowed from this module: nothing"}},
		{"authz importing gateway transitively", pkgImports{ImportPath: m("gateway/authz"), Deps: []string{m("gateway"), "fmt"}},
			[]string{"gateway/authz imports gateway (via its dependencies); allowed from this module: nothing"}},
		{"audit importing clock", pkgImports{ImportPath: m("gateway/audit"), Imports: []string{m("gateway/clock")}, Deps: []string{m("gateway/clock")}},
			[]string{"gateway/audit imports gateway/clock (via its dependencies); allowed from this module: nothing"}},
		{"clock importing config", pkgImports{ImportPath: m("gateway/clock"), Deps: []string{m("gateway/config"), m("hw")}},
			[]string{"gateway/clock imports gateway/config (via its dependencies); allowed from this module: nothing",
				"gateway/clock imports hw (via its dependencies); allowed from this module: nothing"}},
		{"bridge importing gateway", pkgImports{ImportPath: m("bridge"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("store")}},
			[]string{"bridge imports gateway (via its dependencies); allowed from this module: store, bridge/topic, bridge/wire, bridge/proxy", "bridge imports gateway; only cmd/... may import gateway"}},
		{"bridge importing store is fine", pkgImports{ImportPath: m("bridge"), Imports: []string{m("store")}, Deps: []string{m("store"), badger}}, nil},
		{"pki importing hw and authz is fine", pkgImports{ImportPath: m("gateway/pki"), Imports: []string{m("hw"), m("gateway/authz")}, Deps: []string{m("hw"), m("gateway/authz")}}, nil},
		{"pki importing store", pkgImports{ImportPath: m("gateway/pki"), Deps: []string{m("hw"), m("store")}},
			[]string{"gateway/pki imports store (via its dependencies); allowed from this module: hw, gateway/authz"}},
		{"config importing hw is fine", pkgImports{ImportPath: m("gateway/config"), Imports: []string{m("hw")}, Deps: []string{m("hw")}}, nil},
		{"config importing a runtime package", pkgImports{ImportPath: m("gateway/config"), Imports: []string{m("bridge")}, Deps: []string{m("bridge"), m("store"), m("hw")}},
			[]string{"gateway/config imports bridge (via its dependencies); allowed from this module: hw, gateway/authz, gateway/loopback, bridge/topic, gateway/rules, gateway/rules/sql, gateway/rules/sql/lex, gateway/rules/sql/internal/jsonscan, gateway/rules/sql/internal/md2, gateway/rules/timefmt, gateway/internal/jsonq, gateway/enrol, gateway/pki",
				"gateway/config imports store (via its dependencies); allowed from this module: hw, gateway/authz, gateway/loopback, bridge/topic, gateway/rules, gateway/rules/sql, gateway/rules/sql/lex, gateway/rules/sql/internal/jsonscan, gateway/rules/sql/internal/md2, gateway/rules/timefmt, gateway/internal/jsonq, gateway/enrol, gateway/pki"}},
		{"config importing bridge/topic is fine", pkgImports{ImportPath: m("gateway/config"), Imports: []string{m("bridge/topic")}, Deps: []string{m("bridge/topic"), m("hw")}}, nil},
		{"bridge importing bridge/topic is fine", pkgImports{ImportPath: m("bridge"), Imports: []string{m("bridge/topic"), m("store")}, Deps: []string{m("bridge/topic"), m("store")}}, nil},
		{"bridge/topic importing store", pkgImports{ImportPath: m("bridge/topic"), Imports: []string{m("store")}, Deps: []string{m("store")}},
			[]string{"bridge/topic imports store (via its dependencies); allowed from this module: nothing"}},
		{"bridge importing bridge/wire is fine", pkgImports{ImportPath: m("bridge"), Imports: []string{m("bridge/wire"), m("store")}, Deps: []string{m("bridge/wire"), m("store"), pahoPath + "/packets"}}, nil},
		{"bridge/wire importing paho's packets is fine", pkgImports{ImportPath: m("bridge/wire"), Imports: []string{pahoPath + "/packets"}, Deps: []string{pahoPath + "/packets"}}, nil},
		{"bridge/wire importing the bridge", pkgImports{ImportPath: m("bridge/wire"), Imports: []string{m("bridge")}, Deps: []string{m("bridge"), m("store"), m("bridge/topic")}},
			[]string{"bridge/wire imports bridge (via its dependencies); allowed from this module: nothing",
				"bridge/wire imports bridge/topic (via its dependencies); allowed from this module: nothing",
				"bridge/wire imports store (via its dependencies); allowed from this module: nothing"}},
		{"bridge/wire importing paho's client", pkgImports{ImportPath: m("bridge/wire"), Imports: []string{paho}},
			[]string{"bridge/wire imports github.com/eclipse/paho.golang/paho; it must not import github.com/eclipse/paho.golang/paho"}},
		{"bridge/proxy importing the standard library is fine", pkgImports{ImportPath: m("bridge/proxy"), Imports: []string{"net/http"}, Deps: []string{"net/http"}}, nil},
		{"bridge/proxy importing the bridge", pkgImports{ImportPath: m("bridge/proxy"), Imports: []string{m("bridge")}, Deps: []string{m("bridge"), m("store")}},
			[]string{"bridge/proxy imports bridge (via its dependencies); allowed from this module: nothing",
				"bridge/proxy imports store (via its dependencies); allowed from this module: nothing"}},
		{"bridge/proxy importing paho", pkgImports{ImportPath: m("bridge/proxy"), Imports: []string{pahoPath + "/packets"}},
			[]string{"bridge/proxy imports github.com/eclipse/paho.golang/packets; it must not import github.com/eclipse/paho.golang"}},
		{"store/selftest importing store is fine", pkgImports{ImportPath: m("store/selftest"), Imports: []string{m("store")}, Deps: []string{m("store"), badger}}, nil},
		{"store/selftest importing gateway", pkgImports{ImportPath: m("store/selftest"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("store")}},
			[]string{"store/selftest imports gateway (via its dependencies); allowed from this module: store", "store/selftest imports gateway; only cmd/... may import gateway"}},
		{"bridge/topic importing paho", pkgImports{ImportPath: m("bridge/topic"), Imports: []string{paho}},
			[]string{"bridge/topic imports github.com/eclipse/paho.golang/paho; it must not import github.com/eclipse/paho.golang"}},
		{"bridge importing mochi", pkgImports{ImportPath: m("bridge"), Imports: []string{mochi}},
			[]string{"bridge imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"cmd importing mochi", pkgImports{ImportPath: m("cmd/edgegw"), Imports: []string{mochi + "/packets"}},
			[]string{"cmd/edgegw imports github.com/mochi-mqtt/server/v2/packets; only gateway/broker may import mochi-mqtt"}},
		{"gateway importing mochi", pkgImports{ImportPath: m("gateway"), Imports: []string{mochi}},
			[]string{"gateway imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"observe importing mochi", pkgImports{ImportPath: m("gateway/observe"), Imports: []string{mochi + "/packets"}},
			[]string{"gateway/observe imports github.com/mochi-mqtt/server/v2/packets; only gateway/broker may import mochi-mqtt"}},
		{"gateway/broker importing mochi is fine", pkgImports{ImportPath: m("gateway/broker"), Imports: []string{mochi}}, nil},
		{"gatewaytest importing mochi and gateway is fine", pkgImports{ImportPath: m("gateway/gatewaytest"), Imports: []string{mochi, m("gateway")}}, nil},
		{"gateway importing prometheus", pkgImports{ImportPath: m("gateway"), Imports: []string{prom}},
			[]string{"gateway imports github.com/prometheus/client_golang/prometheus; only gateway/observe may import prometheus"}},
		{"broker importing prometheus", pkgImports{ImportPath: m("gateway/broker"), Imports: []string{prom}},
			[]string{"gateway/broker imports github.com/prometheus/client_golang/prometheus; only gateway/observe may import prometheus"}},
		{"observe importing prometheus is fine", pkgImports{ImportPath: m("gateway/observe"), Imports: []string{prom, m("gateway/broker")}}, nil},
		{"gateway importing badger", pkgImports{ImportPath: m("gateway"), Imports: []string{badger}},
			[]string{"gateway imports github.com/dgraph-io/badger/v4; only store may import badger"}},
		{"store importing badger is fine", pkgImports{ImportPath: m("store"), Imports: []string{badger}, Deps: []string{badger}}, nil},
		{"gateway importing paho", pkgImports{ImportPath: m("gateway"), Imports: []string{paho}},
			[]string{"gateway imports github.com/eclipse/paho.golang/paho; the daemon's packages must not import paho (the bridge speaks MQTT upstream)"}},
		{"the demo importing paho and gateway is fine", pkgImports{ImportPath: m("cmd/edgegw/demo"), Imports: []string{paho, m("gateway")}}, nil},
		{"hw importing gateway", pkgImports{ImportPath: m("hw"), Imports: []string{m("gateway")}, Deps: []string{m("gateway")}},
			[]string{"hw imports gateway (via its dependencies); allowed from this module: nothing", "hw imports gateway; only cmd/... may import gateway"}},
		{"a new package importing gatewaytest", pkgImports{ImportPath: m("tools/x"), Imports: []string{m("gateway/gatewaytest")}},
			[]string{"tools/x imports gateway/gatewaytest outside its tests; it is a test helper"}},
		{"tests may import gatewaytest and gateway", pkgImports{ImportPath: m("bridge"), TestImports: []string{m("gateway/gatewaytest"), m("gateway")}}, nil},
		{"cmd importing gateway is fine", pkgImports{ImportPath: m("cmd/edgegw"), Imports: []string{m("gateway")}}, nil},
		{"packages outside the module are ignored", pkgImports{ImportPath: "example.com/x", Imports: []string{mochi, badger}}, nil},
		// The rooms that landed with the rules, shadow, authorizer, import and enrol branches.
		{"rules importing authz", pkgImports{ImportPath: m("gateway/rules"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz")}},
			[]string{"gateway/rules imports gateway/authz (via its dependencies); allowed from this module: gateway/rules/sql, gateway/rules/sql/lex, gateway/rules/sql/internal/jsonscan, gateway/rules/sql/internal/md2, gateway/rules/timefmt, gateway/internal/jsonq"}},
		{"rules importing its rooms is fine", pkgImports{ImportPath: m("gateway/rules"), Imports: []string{m("gateway/rules/sql")}, Deps: []string{m("gateway/rules/sql"), m("gateway/rules/timefmt")}}, nil},
		{"the SQL language importing the engine", pkgImports{ImportPath: m("gateway/rules/sql"), Imports: []string{m("gateway/rules")}, Deps: []string{m("gateway/rules"), m("gateway/rules/timefmt")}},
			[]string{"gateway/rules/sql imports gateway/rules (via its dependencies); allowed from this module: gateway/rules/sql/lex, gateway/rules/sql/internal/jsonscan, gateway/rules/sql/internal/md2, gateway/rules/timefmt, gateway/internal/jsonq"}},
		{"the lexer importing the language", pkgImports{ImportPath: m("gateway/rules/sql/lex"), Imports: []string{m("gateway/rules/sql")}, Deps: []string{m("gateway/rules/sql"), m("gateway/rules/timefmt")}},
			[]string{"gateway/rules/sql/lex imports gateway/rules/sql (via its dependencies); allowed from this module: nothing",
				"gateway/rules/sql/lex imports gateway/rules/timefmt (via its dependencies); allowed from this module: nothing"}},
		{"the rules engine importing the SQL corpus", pkgImports{ImportPath: m("gateway/rules"), Imports: []string{m("gateway/rules/sql/sqltest")}, Deps: []string{m("gateway/rules/sql/sqltest"), m("gateway/rules/sql"), m("gateway/rules/timefmt")}},
			[]string{"gateway/rules imports gateway/rules/sql/sqltest (via its dependencies); allowed from this module: gateway/rules/sql, gateway/rules/sql/lex, gateway/rules/sql/internal/jsonscan, gateway/rules/sql/internal/md2, gateway/rules/timefmt, gateway/internal/jsonq",
				"gateway/rules imports gateway/rules/sql/sqltest outside its tests; it is a test helper"}},
		{"the rules tests importing the SQL corpus is fine", pkgImports{ImportPath: m("gateway/rules"), TestImports: []string{m("gateway/rules/sql/sqltest")}, XTestImports: []string{m("gateway/rules/sql/sqltest")}}, nil},
		{"timefmt importing rules", pkgImports{ImportPath: m("gateway/rules/timefmt"), Imports: []string{m("gateway/rules")}, Deps: []string{m("gateway/rules"), m("gateway/rules/timefmt")}},
			[]string{"gateway/rules/timefmt imports gateway/rules (via its dependencies); allowed from this module: nothing"}},
		{"rules importing the standard library is fine", pkgImports{ImportPath: m("gateway/rules"), Imports: []string{"encoding/json"}, Deps: []string{"encoding/json"}}, nil},
		{"rules importing paho", pkgImports{ImportPath: m("gateway/rules"), Imports: []string{pahoPath + "/packets"}},
			[]string{"gateway/rules imports github.com/eclipse/paho.golang/packets; it must not import github.com/eclipse/paho.golang",
				"gateway/rules imports github.com/eclipse/paho.golang/packets; the daemon's packages must not import paho (the bridge speaks MQTT upstream)"}},
		{"shadow importing jsonq is fine", pkgImports{ImportPath: m("gateway/shadow"), Imports: []string{m("gateway/internal/jsonq")}, Deps: []string{m("gateway/internal/jsonq"), m("gateway/authz")}}, nil},
		{"jsonq importing authz", pkgImports{ImportPath: m("gateway/internal/jsonq"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz")}},
			[]string{"gateway/internal/jsonq imports gateway/authz (via its dependencies); allowed from this module: nothing"}},
		{"shadow importing authz is fine", pkgImports{ImportPath: m("gateway/shadow"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz")}}, nil},
		{"shadow importing the store", pkgImports{ImportPath: m("gateway/shadow"), Imports: []string{m("store")}, Deps: []string{m("store"), m("gateway/authz")}},
			[]string{"gateway/shadow imports store (via its dependencies); allowed from this module: gateway/authz, gateway/internal/jsonq"}},
		{"shadow importing badger", pkgImports{ImportPath: m("gateway/shadow"), Imports: []string{badger}},
			[]string{"gateway/shadow imports github.com/dgraph-io/badger/v4; it must not import github.com/dgraph-io/badger",
				"gateway/shadow imports github.com/dgraph-io/badger/v4; only store may import badger"}},
		{"shadowtest importing shadow is fine", pkgImports{ImportPath: m("gateway/shadow/shadowtest"), Imports: []string{m("gateway/shadow")}, Deps: []string{m("gateway/shadow"), m("gateway/authz")}}, nil},
		{"shadowtest importing the broker", pkgImports{ImportPath: m("gateway/shadow/shadowtest"), Imports: []string{m("gateway/broker")}, Deps: []string{m("gateway/broker"), m("gateway/shadow"), m("gateway/authz")}},
			[]string{"gateway/shadow/shadowtest imports gateway/broker (via its dependencies); allowed from this module: gateway/shadow, gateway/authz, gateway/internal/jsonq"}},
		{"a package importing shadowtest", pkgImports{ImportPath: m("gateway/broker"), Imports: []string{m("gateway/shadow/shadowtest")}},
			[]string{"gateway/broker imports gateway/shadow/shadowtest outside its tests; it is a test helper"}},
		{"authorizer importing prometheus", pkgImports{ImportPath: m("gateway/authorizer"), Imports: []string{prom}},
			[]string{"gateway/authorizer imports github.com/prometheus/client_golang/prometheus; it must not import github.com/prometheus/",
				"gateway/authorizer imports github.com/prometheus/client_golang/prometheus; only gateway/observe may import prometheus"}},
		{"authorizer importing authz is fine", pkgImports{ImportPath: m("gateway/authorizer"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz")}}, nil},
		{"authorizer importing the store", pkgImports{ImportPath: m("gateway/authorizer"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz"), m("store")}},
			[]string{"gateway/authorizer imports store (via its dependencies); allowed from this module: gateway/authz"}},
		{"mosqimport importing config", pkgImports{ImportPath: m("gateway/mosqimport"), Imports: []string{m("gateway/config")}, Deps: []string{m("gateway/config"), m("hw"), m("gateway/authz")}},
			[]string{"gateway/mosqimport imports gateway/config (via its dependencies); allowed from this module: gateway/authz",
				"gateway/mosqimport imports hw (via its dependencies); allowed from this module: gateway/authz"}},
		{"mosqimport importing authz is fine", pkgImports{ImportPath: m("gateway/mosqimport"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz")}}, nil},
		{"mosqimport importing mochi", pkgImports{ImportPath: m("gateway/mosqimport"), Imports: []string{mochi}},
			[]string{"gateway/mosqimport imports github.com/mochi-mqtt/server/v2; it must not import github.com/mochi-mqtt/",
				"gateway/mosqimport imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"enrol importing pki, authz and hw is fine", pkgImports{ImportPath: m("gateway/enrol"), Imports: []string{m("gateway/pki"), m("gateway/authz")}, Deps: []string{m("gateway/pki"), m("gateway/authz"), m("hw")}}, nil},
		{"enrol importing the broker", pkgImports{ImportPath: m("gateway/enrol"), Imports: []string{m("gateway/broker")}, Deps: []string{m("gateway/broker"), m("gateway/pki"), m("gateway/authz"), m("hw")}},
			[]string{"gateway/enrol imports gateway/broker (via its dependencies); allowed from this module: gateway/pki, gateway/authz, hw"}},
		{"enrol importing paho", pkgImports{ImportPath: m("gateway/enrol"), Imports: []string{paho}},
			[]string{"gateway/enrol imports github.com/eclipse/paho.golang/paho; it must not import github.com/eclipse/paho.golang",
				"gateway/enrol imports github.com/eclipse/paho.golang/paho; the daemon's packages must not import paho (the bridge speaks MQTT upstream)"}},
		{"listen importing its leaves is fine", pkgImports{ImportPath: m("gateway/broker/listen"), Imports: []string{m("gateway/audit"), m("gateway/broker/wire")}, Deps: []string{m("gateway/audit"), m("gateway/authz"), m("gateway/clock"), m("hw"), m("gateway/broker/wire")}}, nil},
		{"listen importing mochi", pkgImports{ImportPath: m("gateway/broker/listen"), Imports: []string{mochi}},
			[]string{"gateway/broker/listen imports github.com/mochi-mqtt/server/v2; it must not import github.com/mochi-mqtt/",
				"gateway/broker/listen imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"listen importing the broker", pkgImports{ImportPath: m("gateway/broker/listen"), Imports: []string{m("gateway/broker")}, Deps: []string{m("gateway/broker"), m("gateway/broker/listen"), m("gateway/audit")}},
			[]string{"gateway/broker/listen imports gateway/broker (via its dependencies); allowed from this module: gateway/audit, gateway/authz, gateway/clock, hw, gateway/broker/wire"}},
		{"est importing hw is fine", pkgImports{ImportPath: m("gateway/est"), Imports: []string{m("hw")}, Deps: []string{m("hw")}}, nil},
		{"est importing pki", pkgImports{ImportPath: m("gateway/est"), Imports: []string{m("gateway/pki")}, Deps: []string{m("gateway/pki"), m("hw"), m("gateway/authz")}},
			[]string{"gateway/est imports gateway/authz (via its dependencies); allowed from this module: hw",
				"gateway/est imports gateway/pki (via its dependencies); allowed from this module: hw"}},
		// The queue commands' room (issue 18).
		{"queuecmd importing gateway, config, observe and store is fine", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"),
			Imports: []string{m("gateway"), m("gateway/config"), m("gateway/observe"), m("store")}, Deps: []string{m("gateway"), m("gateway/broker"), m("store"), badger, mochi}}, nil},
		{"queuecmd importing badger", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"), Imports: []string{badger}},
			[]string{"cmd/edgegw/queuecmd imports github.com/dgraph-io/badger/v4; it must not import github.com/dgraph-io/badger",
				"cmd/edgegw/queuecmd imports github.com/dgraph-io/badger/v4; only store may import badger"}},
		{"queuecmd importing prometheus", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"), Imports: []string{prom}},
			[]string{"cmd/edgegw/queuecmd imports github.com/prometheus/client_golang/prometheus; it must not import github.com/prometheus/",
				"cmd/edgegw/queuecmd imports github.com/prometheus/client_golang/prometheus; only gateway/observe may import prometheus"}},
		{"cmd/edgegw importing queuecmd is fine", pkgImports{ImportPath: m("cmd/edgegw"), Imports: []string{m("cmd/edgegw/queuecmd")}}, nil},
		{"gateway importing queuecmd", pkgImports{ImportPath: m("gateway/observe"), Imports: []string{m("cmd/edgegw/queuecmd")}},
			[]string{"gateway/observe imports cmd/edgegw/queuecmd; only cmd/edgegw may (a room of the command line)"}},
		{"queuecmd importing its test helper", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"), Imports: []string{m("cmd/edgegw/queuecmd/queuetest")}},
			[]string{"cmd/edgegw/queuecmd imports cmd/edgegw/queuecmd/queuetest outside its tests; it is a test helper"}},
		{"queuetest importing the gateway", pkgImports{ImportPath: m("cmd/edgegw/queuecmd/queuetest"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("store")}},
			[]string{"cmd/edgegw/queuecmd/queuetest imports gateway (via its dependencies); allowed from this module: store"}},
		// The command line's shared CLI (cmd/edgegw/cli) and its test double.
		{"queuecmd importing cli is fine", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"), Imports: []string{m("cmd/edgegw/cli")}, Deps: []string{m("cmd/edgegw/cli"), m("gateway/config")}}, nil},
		{"cli importing config is fine", pkgImports{ImportPath: m("cmd/edgegw/cli"), Imports: []string{m("gateway/config")}, Deps: []string{m("gateway/config"), m("hw"), m("gateway/authz")}}, nil},
		{"cli importing the gateway", pkgImports{ImportPath: m("cmd/edgegw/cli"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("gateway/config")}},
			[]string{"cmd/edgegw/cli imports gateway (via its dependencies); allowed from this module: gateway/config, " + strings.Join(configOurs, ", ")}},
		{"cli importing paho", pkgImports{ImportPath: m("cmd/edgegw/cli"), Imports: []string{paho}},
			[]string{"cmd/edgegw/cli imports github.com/eclipse/paho.golang/paho; it must not import github.com/eclipse/paho.golang"}},
		{"a daemon package importing cli", pkgImports{ImportPath: m("gateway/observe"), Imports: []string{m("cmd/edgegw/cli")}},
			[]string{"gateway/observe imports cmd/edgegw/cli; only cmd/edgegw and its rooms may (the command line's own)"}},
		// The pki commands' room (issue 18) and its test helper.
		{"pkicmd importing cli, pki, enrol and clock is fine", pkgImports{ImportPath: m("cmd/edgegw/pkicmd"),
			Imports: []string{m("cmd/edgegw/cli"), m("gateway/pki"), m("gateway/enrol"), m("gateway/clock"), m("hw")},
			Deps:    []string{m("cmd/edgegw/cli"), m("gateway/config"), m("gateway/pki"), m("gateway/enrol"), m("gateway/clock"), m("hw"), m("gateway/authz")}}, nil},
		{"pkicmd importing the store", pkgImports{ImportPath: m("cmd/edgegw/pkicmd"), Imports: []string{m("store")}, Deps: []string{m("store"), m("gateway/pki")}},
			[]string{"cmd/edgegw/pkicmd imports store (via its dependencies); allowed from this module: cmd/edgegw/cli, gateway/config, gateway/clock, " + strings.Join(configOurs, ", ")}},
		{"pkicmd importing mochi", pkgImports{ImportPath: m("cmd/edgegw/pkicmd"), Imports: []string{mochi}},
			[]string{"cmd/edgegw/pkicmd imports github.com/mochi-mqtt/server/v2; it must not import github.com/mochi-mqtt/",
				"cmd/edgegw/pkicmd imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"cmd/edgegw importing pkicmd is fine", pkgImports{ImportPath: m("cmd/edgegw"), Imports: []string{m("cmd/edgegw/pkicmd")}}, nil},
		{"queuecmd importing pkicmd", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"), Imports: []string{m("cmd/edgegw/pkicmd")}},
			[]string{"cmd/edgegw/queuecmd imports cmd/edgegw/pkicmd; only cmd/edgegw may (a room of the command line)"}},
		{"pkicmd importing its test helper", pkgImports{ImportPath: m("cmd/edgegw/pkicmd"), Imports: []string{m("cmd/edgegw/pkicmd/pkitest")}},
			[]string{"cmd/edgegw/pkicmd imports cmd/edgegw/pkicmd/pkitest outside its tests; it is a test helper"}},
		{"pkitest importing pki", pkgImports{ImportPath: m("cmd/edgegw/pkicmd/pkitest"), Imports: []string{m("gateway/pki")}, Deps: []string{m("gateway/pki"), m("hw"), m("gateway/authz")}},
			[]string{"cmd/edgegw/pkicmd/pkitest imports gateway/authz (via its dependencies); allowed from this module: hw, hw/hwtest",
				"cmd/edgegw/pkicmd/pkitest imports gateway/pki (via its dependencies); allowed from this module: hw, hw/hwtest"}},
		// The offline evaluation commands' room (issue 18) and its test helper.
		{"evalcmd importing cli, broker, config, authz and rules is fine", pkgImports{ImportPath: m("cmd/edgegw/evalcmd"),
			Imports: []string{m("cmd/edgegw/cli"), m("gateway/broker"), m("gateway/config"), m("gateway/authz"), m("gateway/rules")},
			Deps:    []string{m("cmd/edgegw/cli"), m("gateway/broker"), m("store"), m("bridge"), m("gateway/config")}}, nil},
		{"evalcmd importing mochi", pkgImports{ImportPath: m("cmd/edgegw/evalcmd"), Imports: []string{mochi}},
			[]string{"cmd/edgegw/evalcmd imports github.com/mochi-mqtt/server/v2; it must not import github.com/mochi-mqtt/",
				"cmd/edgegw/evalcmd imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"a daemon package importing evalcmd", pkgImports{ImportPath: m("gateway/broker"), Imports: []string{m("cmd/edgegw/evalcmd")}},
			[]string{"gateway/broker imports cmd/edgegw/evalcmd; only cmd/edgegw may (a room of the command line)"}},
		{"evaltest importing authz", pkgImports{ImportPath: m("cmd/edgegw/evalcmd/evaltest"), Imports: []string{m("gateway/authz")}, Deps: []string{m("gateway/authz")}},
			[]string{"cmd/edgegw/evalcmd/evaltest imports gateway/authz (via its dependencies); allowed from this module: nothing"}},
		{"evalcmd importing its test helper", pkgImports{ImportPath: m("cmd/edgegw/evalcmd"), Imports: []string{m("cmd/edgegw/evalcmd/evaltest")}},
			[]string{"cmd/edgegw/evalcmd imports cmd/edgegw/evalcmd/evaltest outside its tests; it is a test helper"}},
		// The shadow command's room (issue 18).
		{"shadowcmd importing cli and observe is fine", pkgImports{ImportPath: m("cmd/edgegw/shadowcmd"),
			Imports: []string{m("cmd/edgegw/cli"), m("gateway/observe")}, Deps: []string{m("cmd/edgegw/cli"), m("gateway/observe"), m("gateway/broker"), m("store")}}, nil},
		{"shadowcmd importing prometheus", pkgImports{ImportPath: m("cmd/edgegw/shadowcmd"), Imports: []string{prom}},
			[]string{"cmd/edgegw/shadowcmd imports github.com/prometheus/client_golang/prometheus; it must not import github.com/prometheus/",
				"cmd/edgegw/shadowcmd imports github.com/prometheus/client_golang/prometheus; only gateway/observe may import prometheus"}},
		{"a room importing shadowcmd", pkgImports{ImportPath: m("cmd/edgegw/evalcmd"), Imports: []string{m("cmd/edgegw/shadowcmd")}},
			[]string{"cmd/edgegw/evalcmd imports cmd/edgegw/shadowcmd; only cmd/edgegw may (a room of the command line)"}},
		{"a room importing clitest outside its tests", pkgImports{ImportPath: m("cmd/edgegw/queuecmd"), Imports: []string{m("cmd/edgegw/cli/clitest")}},
			[]string{"cmd/edgegw/queuecmd imports cmd/edgegw/cli/clitest outside its tests; it is a test helper"}},
	}
	// The rooms that left package gateway (the wiring) for their own.
	tests = append(tests, []struct {
		name string
		pkg  pkgImports
		want []string
	}{
		{"shadowrun importing the broker, store and bridge is fine", pkgImports{ImportPath: m("gateway/shadowrun"), Imports: []string{m("gateway/broker"), m("store"), m("bridge")},
			Deps: []string{m("gateway/broker"), m("store"), m("bridge"), m("gateway/shadow")}}, nil},
		{"shadowrun importing gateway", pkgImports{ImportPath: m("gateway/shadowrun"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("store")}},
			[]string{"gateway/shadowrun imports gateway (via its dependencies); allowed from this module: " + strings.Join(belowWiring, ", "),
				"gateway/shadowrun imports gateway; only cmd/... may import gateway"}},
		{"shadowrun importing badger", pkgImports{ImportPath: m("gateway/shadowrun"), Imports: []string{badger}},
			[]string{"gateway/shadowrun imports github.com/dgraph-io/badger/v4; it must not import github.com/dgraph-io/badger",
				"gateway/shadowrun imports github.com/dgraph-io/badger/v4; only store may import badger"}},
		{"localstate importing the broker, store and presence is fine", pkgImports{ImportPath: m("gateway/localstate"), Imports: []string{m("gateway/broker"), m("store"), m("gateway/presence")},
			Deps: []string{m("gateway/broker"), m("store"), m("gateway/presence")}}, nil},
		{"localstate importing gateway", pkgImports{ImportPath: m("gateway/localstate"), Imports: []string{m("gateway")}, Deps: []string{m("gateway")}},
			[]string{"gateway/localstate imports gateway (via its dependencies); allowed from this module: " + strings.Join(belowWiring, ", "),
				"gateway/localstate imports gateway; only cmd/... may import gateway"}},
		{"localstate importing mochi", pkgImports{ImportPath: m("gateway/localstate"), Imports: []string{mochi}},
			[]string{"gateway/localstate imports github.com/mochi-mqtt/server/v2; it must not import github.com/mochi-mqtt/",
				"gateway/localstate imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"brokerconf importing config, broker, rules and hw is fine", pkgImports{ImportPath: m("gateway/brokerconf"), Imports: []string{m("gateway/config"), m("gateway/broker"), m("gateway/rules"), m("hw")},
			Deps: []string{m("gateway/config"), m("gateway/broker"), m("gateway/rules"), m("hw")}}, nil},
		{"brokerconf importing gateway", pkgImports{ImportPath: m("gateway/brokerconf"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("gateway/config")}},
			[]string{"gateway/brokerconf imports gateway (via its dependencies); allowed from this module: " + strings.Join(belowWiring, ", "),
				"gateway/brokerconf imports gateway; only cmd/... may import gateway"}},
		{"brokerconf importing prometheus", pkgImports{ImportPath: m("gateway/brokerconf"), Imports: []string{prom}},
			[]string{"gateway/brokerconf imports github.com/prometheus/client_golang/prometheus; it must not import github.com/prometheus/",
				"gateway/brokerconf imports github.com/prometheus/client_golang/prometheus; only gateway/observe may import prometheus"}},
		{"uplink importing the broker, store, bridge, shadowrun and localstate is fine", pkgImports{ImportPath: m("gateway/uplink"),
			Imports: []string{m("gateway/broker"), m("store"), m("bridge"), m("gateway/shadowrun"), m("gateway/localstate")},
			Deps:    []string{m("gateway/broker"), m("store"), m("bridge"), m("gateway/shadowrun"), m("gateway/localstate"), m("gateway/renew")}}, nil},
		{"uplink importing gateway", pkgImports{ImportPath: m("gateway/uplink"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("store")}},
			[]string{"gateway/uplink imports gateway (via its dependencies); allowed from this module: " + strings.Join(uplinkOurs, ", "),
				"gateway/uplink imports gateway; only cmd/... may import gateway"}},
		{"uplink importing paho", pkgImports{ImportPath: m("gateway/uplink"), Imports: []string{paho}},
			[]string{"gateway/uplink imports " + paho + "; it must not import github.com/eclipse/paho.golang",
				"gateway/uplink imports " + paho + "; the daemon's packages must not import paho (the bridge speaks MQTT upstream)"}},
		{"uplink importing badger", pkgImports{ImportPath: m("gateway/uplink"), Imports: []string{badger}},
			[]string{"gateway/uplink imports github.com/dgraph-io/badger/v4; it must not import github.com/dgraph-io/badger",
				"gateway/uplink imports github.com/dgraph-io/badger/v4; only store may import badger"}},
		{"shadowrun importing uplink", pkgImports{ImportPath: m("gateway/shadowrun"), Imports: []string{m("gateway/uplink")}, Deps: []string{m("gateway/uplink")}},
			[]string{"gateway/shadowrun imports gateway/uplink (via its dependencies); allowed from this module: " + strings.Join(belowWiring, ", ")}},
		{"enrolrun importing enrol, pki, broker and config is fine", pkgImports{ImportPath: m("gateway/enrolrun"),
			Imports: []string{m("gateway/enrol"), m("gateway/pki"), m("gateway/broker"), m("gateway/config")},
			Deps:    []string{m("gateway/enrol"), m("gateway/pki"), m("gateway/broker"), m("gateway/config"), m("hw")}}, nil},
		{"enrolrun importing gateway", pkgImports{ImportPath: m("gateway/enrolrun"), Imports: []string{m("gateway")}, Deps: []string{m("gateway")}},
			[]string{"gateway/enrolrun imports gateway (via its dependencies); allowed from this module: " + strings.Join(belowWiring, ", "),
				"gateway/enrolrun imports gateway; only cmd/... may import gateway"}},
		{"enrolrun importing uplink", pkgImports{ImportPath: m("gateway/enrolrun"), Imports: []string{m("gateway/uplink")}, Deps: []string{m("gateway/uplink")}},
			[]string{"gateway/enrolrun imports gateway/uplink (via its dependencies); allowed from this module: " + strings.Join(belowWiring, ", ")}},
		{"enrolrun importing mochi", pkgImports{ImportPath: m("gateway/enrolrun"), Imports: []string{mochi}},
			[]string{"gateway/enrolrun imports github.com/mochi-mqtt/server/v2; it must not import github.com/mochi-mqtt/",
				"gateway/enrolrun imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkImports([]pkgImports{tt.pkg})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}
