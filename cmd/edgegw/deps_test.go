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

// checkImports applies the import direction of DESIGN.md to the packages of
// this module and returns one line per violation:
//   - store, hw, gateway/authz import nothing from this module (transitively);
//   - bridge imports only store from this module; gateway/pki only hw;
//   - only gateway/broker and gateway/gatewaytest import mochi-mqtt;
//   - only store imports badger;
//   - only cmd/... (and gateway/gatewaytest) import gateway;
//   - gateway/gatewaytest is imported by tests only.
func checkImports(pkgs []pkgImports) []string {
	var bad []string
	for _, p := range pkgs {
		name := rel(p.ImportPath)
		if name == "" {
			continue
		}
		// Transitive rules: which packages of the module may be under p.
		allowed := map[string][]string{
			"store":         nil,
			"hw":            nil,
			"gateway/authz": nil,
			"bridge":        {"store"},
			"gateway/pki":   {"hw"},
		}
		if ok, ruled := allowed[name]; ruled {
			for _, d := range p.Deps {
				dn := rel(d)
				if dn == "" || dn == name {
					continue
				}
				if !contains(ok, dn) {
					bad = append(bad, fmt.Sprintf("%s imports %s (via its dependencies); allowed from this module: %s", name, dn, list(ok)))
				}
			}
		}
		// Direct rules, on the non-test imports of every package.
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, "github.com/mochi-mqtt/") && name != "gateway/broker" && name != "gateway/gatewaytest":
				bad = append(bad, fmt.Sprintf("%s imports %s; only gateway/broker may import mochi-mqtt", name, imp))
			case strings.HasPrefix(imp, "github.com/prometheus/") && name != "gateway/observe":
				bad = append(bad, fmt.Sprintf("%s imports %s; only gateway/observe may import prometheus", name, imp))
			case strings.HasPrefix(imp, "github.com/dgraph-io/badger") && name != "store":
				bad = append(bad, fmt.Sprintf("%s imports %s; only store may import badger", name, imp))
			case rel(imp) == "gateway" && !underAny(name, "cmd") && name != "gateway/gatewaytest":
				bad = append(bad, fmt.Sprintf("%s imports gateway; only cmd/... may import gateway", name))
			case rel(imp) == "gateway/gatewaytest":
				bad = append(bad, fmt.Sprintf("%s imports gateway/gatewaytest outside its tests; it is a test helper", name))
			}
		}
	}
	sort.Strings(bad)
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
	// The checker must at least see this package and gateway, or it checks nothing.
	for _, must := range []string{"cmd/edgegw", "gateway"} {
		if !contains(names, must) {
			t.Fatalf("go list found %v; want it to include %s", names, must)
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
	tests := []struct {
		name string
		pkg  pkgImports
		want []string
	}{
		{"store importing hw", pkgImports{ImportPath: m("store"), Imports: []string{m("hw")}, Deps: []string{m("hw")}},
			[]string{"store imports hw (via its dependencies); allowed from this module: nothing"}},
		{"authz importing gateway transitively", pkgImports{ImportPath: m("gateway/authz"), Deps: []string{m("gateway"), "fmt"}},
			[]string{"gateway/authz imports gateway (via its dependencies); allowed from this module: nothing"}},
		{"bridge importing gateway", pkgImports{ImportPath: m("bridge"), Imports: []string{m("gateway")}, Deps: []string{m("gateway"), m("store")}},
			[]string{"bridge imports gateway (via its dependencies); allowed from this module: store", "bridge imports gateway; only cmd/... may import gateway"}},
		{"bridge importing store is fine", pkgImports{ImportPath: m("bridge"), Imports: []string{m("store")}, Deps: []string{m("store"), badger}}, nil},
		{"pki importing hw is fine", pkgImports{ImportPath: m("gateway/pki"), Imports: []string{m("hw")}, Deps: []string{m("hw")}}, nil},
		{"pki importing store", pkgImports{ImportPath: m("gateway/pki"), Deps: []string{m("hw"), m("store")}},
			[]string{"gateway/pki imports store (via its dependencies); allowed from this module: hw"}},
		{"bridge importing mochi", pkgImports{ImportPath: m("bridge"), Imports: []string{mochi}},
			[]string{"bridge imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"cmd importing mochi", pkgImports{ImportPath: m("cmd/edgegw"), Imports: []string{mochi + "/packets"}},
			[]string{"cmd/edgegw imports github.com/mochi-mqtt/server/v2/packets; only gateway/broker may import mochi-mqtt"}},
		{"gateway importing mochi", pkgImports{ImportPath: m("gateway"), Imports: []string{mochi}},
			[]string{"gateway imports github.com/mochi-mqtt/server/v2; only gateway/broker may import mochi-mqtt"}},
		{"gateway/broker importing mochi is fine", pkgImports{ImportPath: m("gateway/broker"), Imports: []string{mochi}}, nil},
		{"gatewaytest importing mochi and gateway is fine", pkgImports{ImportPath: m("gateway/gatewaytest"), Imports: []string{mochi, m("gateway")}}, nil},
		{"gateway importing badger", pkgImports{ImportPath: m("gateway"), Imports: []string{badger}},
			[]string{"gateway imports github.com/dgraph-io/badger/v4; only store may import badger"}},
		{"store importing badger is fine", pkgImports{ImportPath: m("store"), Imports: []string{badger}, Deps: []string{badger}}, nil},
		{"hw importing gateway", pkgImports{ImportPath: m("hw"), Imports: []string{m("gateway")}, Deps: []string{m("gateway")}},
			[]string{"hw imports gateway (via its dependencies); allowed from this module: nothing", "hw imports gateway; only cmd/... may import gateway"}},
		{"a new package importing gatewaytest", pkgImports{ImportPath: m("tools/x"), Imports: []string{m("gateway/gatewaytest")}},
			[]string{"tools/x imports gateway/gatewaytest outside its tests; it is a test helper"}},
		{"tests may import gatewaytest and gateway", pkgImports{ImportPath: m("bridge"), TestImports: []string{m("gateway/gatewaytest"), m("gateway")}}, nil},
		{"cmd importing gateway is fine", pkgImports{ImportPath: m("cmd/edgegw"), Imports: []string{m("gateway")}}, nil},
		{"packages outside the module are ignored", pkgImports{ImportPath: "example.com/x", Imports: []string{mochi, badger}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkImports([]pkgImports{tt.pkg})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}
