package queuecmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/cmd/edgegw/queuecmd/queuetest"
	"github.com/edgegw/edgegw/store"
)

func TestQueueCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	queuetest.Fill(t, store.Options{Dir: dir})

	code, out, errOut := run(t, "queue", "stats", "--dir", dir)
	if code != 0 || !strings.Contains(out, "4 messages") || !strings.Contains(out, "1 dead letters") ||
		!strings.Contains(out, "telemetry") || !strings.Contains(out, "alarms") {
		t.Fatalf("stats: code %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "queue", "stats", "--dir", dir, "--json")
	var st store.Stats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Depth != 4 {
		t.Fatalf("stats --json: code %d: %s", code, out)
	}

	code, out, errOut = run(t, "queue", "peek", "--dir", dir, "--route", "telemetry", "-n", "2")
	if code != 0 || !strings.Contains(out, `"temp=20"`) || !strings.Contains(out, `"temp=21"`) || strings.Contains(out, "temp=22") {
		t.Fatalf("peek: code %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "queue", "peek", "--dir", dir, "--dead")
	if code != 0 || !strings.Contains(out, "upstream refused") {
		t.Fatalf("peek --dead: code %d\n%s", code, out)
	}

	code, out, _ = run(t, "queue", "export", "--dir", dir, "--route", "telemetry")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first struct {
		Seq     uint64
		Payload []byte
		Route   string
	}
	if code != 0 || len(lines) != 3 || json.Unmarshal([]byte(lines[0]), &first) != nil || string(first.Payload) != "temp=20" || first.Route != "telemetry" {
		t.Fatalf("export: code %d\n%s", code, out)
	}
	code, out, _ = run(t, "queue", "export", "--dir", dir, "--dead")
	if code != 0 || !strings.Contains(out, `"reason":"upstream refused"`) {
		t.Fatalf("export --dead: code %d\n%s", code, out)
	}

	if code, _, errOut = run(t, "queue", "purge", "--dir", dir); code != 2 || !strings.Contains(errOut, "--route is required") {
		t.Fatalf("purge without --route: code %d: %s", code, errOut)
	}
	code, out, errOut = run(t, "queue", "purge", "--dir", dir, "--route", "telemetry")
	if code != 0 || !strings.Contains(out, "purged 3 messages") {
		t.Fatalf("purge: code %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "queue", "stats", "--dir", dir, "--json")
	if json.Unmarshal([]byte(out), &st) != nil || st.Depth != 1 {
		t.Fatalf("after purge: code %d: %s", code, out)
	}
	if code, _, errOut = run(t, "queue", "peek", "--dir", dir, "--route", "nope"); code != 1 || !strings.Contains(errOut, "no such route") {
		t.Fatalf("unknown route: code %d: %s", code, errOut)
	}
}

func TestQueueCommandRefusesWhileLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	q, err := store.Open(store.Options{Dir: dir}) // stands in for the running daemon
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, args := range [][]string{{"peek"}, {"export"}, {"purge", "--route", "r"}, {"stats"}} {
		code, _, errOut := run(t, append(append([]string{"queue"}, args...), "--dir", dir)...)
		if code != 1 || !strings.Contains(errOut, "the daemon is running (queue locked); stop it or use `edgegw status`") {
			t.Fatalf("%v: code %d: %s", args, code, errOut)
		}
	}
}

func TestQueueCommandEncrypted(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "queue")
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	keyFile := filepath.Join(tmp, "queue.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	queuetest.Fill(t, store.Options{Dir: dir, EncryptionKey: key})
	if code, out, errOut := run(t, "queue", "stats", "--dir", dir, "--encryption-key", "file:"+keyFile); code != 0 || !strings.Contains(out, "4 messages") {
		t.Fatalf("with the key: code %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := run(t, "queue", "stats", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "encryption key does not match") {
		t.Fatalf("without the key: code %d: %s", code, errOut)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("queue moved away by an inspection command: %v", err)
	}
}
