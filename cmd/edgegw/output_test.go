package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/store"
)

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// conventionProblems walks a JSON document and lists what breaks the
// output convention (output.go): non-snake_case keys, nulls, zero times,
// nanosecond durations.
func conventionProblems(path string, v any) []string {
	var out []string
	switch x := v.(type) {
	case nil:
		out = append(out, path+": null (want [] or {} or the key left out)")
	case map[string]any:
		for k, e := range x {
			// Map keys that are data (route names, drop reasons, causes) are
			// lower case by construction; field keys must be snake_case.
			if !snakeKey.MatchString(k) && !strings.Contains(path, ".drops") && !strings.Contains(path, ".counts") {
				out = append(out, fmt.Sprintf("%s: key %q is not snake_case", path, k))
			}
			if strings.HasSuffix(k, "_ns") || strings.HasSuffix(k, "_nanoseconds") {
				out = append(out, fmt.Sprintf("%s.%s: nanoseconds (want seconds)", path, k))
			}
			out = append(out, conventionProblems(path+"."+k, e)...)
		}
	case []any:
		for i, e := range x {
			out = append(out, conventionProblems(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
	case string:
		if strings.HasPrefix(x, "0001-01-01") {
			out = append(out, path+": zero time (want the key left out)")
		}
	}
	return out
}

// TestJSONConvention runs every command with -o json on real state and
// checks one convention across them: snake_case keys, no nulls (empty lists
// are []), no zero times, and the keys each schema promises.
func TestJSONConvention(t *testing.T) {
	qdir := filepath.Join(t.TempDir(), "queue")
	fillQueue(t, store.Options{Dir: qdir})
	emptyQ := filepath.Join(t.TempDir(), "empty")
	q, err := store.Open(store.Options{Dir: emptyQ})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	pkiConf, _, _ := pkiSite(t)
	mustRun(t, "pki", "init", "-c", pkiConf, "--host", "localhost")

	cfg, mqttAddr, _ := presenceSite(t)
	runInProcess(t, cfg)
	connectThing(t, mqttAddr, "sensor-01")

	localOnly := localOnlyConfig(t)
	_, policyCfg := policyConfig(t)
	tests := []struct {
		name string
		args []string
		keys []string // top-level keys the schema promises
		code int      // the exit status (check refuses with 1 and still prints the document)
	}{
		{name: "version", args: []string{"version", "-o", "json"}, keys: []string{"version", "commit", "go_version", "os", "arch"}},
		{name: "version --json alias", args: []string{"version", "--json"}, keys: []string{"version"}},
		{name: "queue stats", args: []string{"queue", "stats", "--dir", qdir, "-o", "json"}, keys: []string{"depth", "bytes", "dead_letters", "routes"}},
		{name: "queue stats, empty queue", args: []string{"queue", "stats", "--dir", emptyQ, "-o", "json"}, keys: []string{"routes"}},
		{name: "queue peek", args: []string{"queue", "peek", "--dir", qdir, "-o", "json"}, keys: []string{"dead", "messages"}},
		{name: "queue peek, dead letters", args: []string{"queue", "peek", "--dir", qdir, "--dead", "-o", "json"}, keys: []string{"messages"}},
		{name: "queue replay, nothing selected", args: []string{"queue", "replay", "--dir", qdir, "--reason", "0x97", "-o", "json"}, keys: []string{"operation", "count", "routes", "kept", "skipped", "filter"}},
		{name: "queue purge", args: []string{"queue", "purge", "--dir", qdir, "--route", "alarms", "-o", "json"}, keys: []string{"operation", "count", "routes", "skipped"}},
		{name: "pki list, none issued", args: []string{"pki", "list", "-c", pkiConf, "-o", "json"}},
		{name: "devices", args: []string{"devices", "-c", cfg, "-o", "json"}, keys: []string{"count", "devices"}},
		{name: "devices, none match", args: []string{"devices", "-c", cfg, "--type", "nothing", "-o", "json"}, keys: []string{"count", "devices"}},
		{name: "check", args: []string{"check", "-c", localOnly, "-o", "json"}, keys: []string{"ok", "config", "summary", "counts", "problems", "warnings"}},
		{name: "check, refused", args: []string{"check", "-c", filepath.Join("..", "..", "configs", "edgegw.yaml"), "-o", "json"}, keys: []string{"ok", "config", "problems", "warnings"}, code: 1},
		{name: "policy test", args: []string{"policy", "test", "-c", policyCfg, "--thing", "temp-f01-001", "--action", "connect", "-o", "json"}, keys: []string{"allowed", "decision", "action", "resource", "policies", "decider", "matched", "not_applied", "variables", "notes"}},
		{name: "policy test, refused at connect", args: []string{"policy", "test", "-c", policyCfg, "--thing", "off", "--action", "connect", "-o", "json"}, keys: []string{"allowed", "refused_at_connect", "policies", "matched"}, code: 1},
		{name: "rule test", args: []string{"rule", "test", "--sql", "SELECT temp FROM 'a/+'", "--topic", "a/b", "--payload", `{"temp": 1}`, "-o", "json"}, keys: []string{"fires", "topic_matches", "where_held", "output", "output_json"}},
		{name: "status", args: []string{"status", "-c", cfg, "-o", "json"}, keys: []string{"site", "uptime_seconds", "devices", "presence", "recent_denials", "certificates"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := edgegw(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d; want %d\nstderr: %s", code, tt.code, errOut)
			}
			var doc any
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("output is not one JSON document: %v\n%s", err, out)
			}
			for _, p := range conventionProblems("$", doc) {
				t.Errorf("%s", p)
			}
			m, _ := doc.(map[string]any)
			for _, k := range tt.keys {
				if _, ok := m[k]; !ok {
					t.Errorf("key %q: got none; want it (schema in output.go)\n%s", k, out)
				}
			}
		})
	}
	if code, _, errOut := edgegw(t, "version", "-o", "yaml"); code != 2 || !strings.Contains(errOut, `-o "yaml": want table or json`) {
		t.Errorf("version -o yaml: exit %d, stderr %q; want 2 and the formats named", code, errOut)
	}
}

func TestConventionProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want int
	}{
		{"clean", `{"a_b": [], "c": {"d_seconds": 1.5}, "t": "2026-12-01T08:00:00Z"}`, 0},
		{"null list", `{"routes": null}`, 1},
		{"Go field name", `{"DeadLetters": 0}`, 1},
		{"zero time", `{"since": "0001-01-01T00:00:00Z"}`, 1},
		{"nanoseconds", `{"age_ns": 5}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc any
			if err := json.Unmarshal([]byte(tt.doc), &doc); err != nil {
				t.Fatal(err)
			}
			if got := conventionProblems("$", doc); len(got) != tt.want {
				t.Errorf("got %d problems %q; want %d", len(got), got, tt.want)
			}
		})
	}
}
