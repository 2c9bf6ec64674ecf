package queuecmd

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQueueSmoke(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "queue.key")
	key := make([]byte, 32) // AES-256
	rand.Read(key)
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plain", nil, "queue smoke: ok: 300 messages enqueued, reopened, drained in order and acked, empty after reopen (linux/"},
		{"encrypted", []string{"--encryption-key", "file:" + keyFile}, ", encrypted true, "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "queue") // missing: created
			code, out, errOut := run(t, append([]string{"--log-level", "warn", "queue", "smoke", "--dir", dir, "-n", "300"}, tc.args...)...)
			if code != 0 || !strings.Contains(out, tc.want) || strings.Count(out, "\n") != 1 {
				t.Fatalf("got exit %d, stdout %q, stderr %q; want exit 0 and one line containing %q", code, out, errOut, tc.want)
			}
			// The directory now holds a (drained) queue: a second run refuses it.
			code, _, errOut = run(t, "queue", "smoke", "--dir", dir, "-n", "1")
			if code != 1 || !strings.Contains(errOut, "is not empty") {
				t.Errorf("second run on %s: exit %d, stderr %q; want exit 1, \"is not empty\"", dir, code, errOut)
			}
		})
	}
}

func TestQueueSmokeUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no dir", []string{"queue", "smoke"}, "--dir is required"},
		{"zero messages", []string{"queue", "smoke", "--dir", t.TempDir(), "-n", "0"}, "-n 0: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("got exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
		})
	}
	// Hidden: not in the help of `edgegw queue`.
	if _, out, _ := run(t, "queue", "--help"); strings.Contains(out, "smoke") {
		t.Errorf("edgegw queue --help lists the hidden smoke command:\n%s", out)
	}
}
