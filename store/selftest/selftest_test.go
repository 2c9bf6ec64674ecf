package selftest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/store"
)

func TestRun(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	tests := []struct {
		name       string
		opts       func(dir string) store.Options
		n, writers int
	}{
		{"plain, default writers", func(dir string) store.Options { return store.Options{Dir: dir} }, 300, 0},
		{"encrypted, 64 writers", func(dir string) store.Options { return store.Options{Dir: dir, EncryptionKey: key} }, 500, 64},
		{"one message, more writers than messages", func(dir string) store.Options { return store.Options{Dir: dir} }, 1, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "queue") // missing: created
			if err := Run(context.Background(), tt.opts(dir), tt.n, tt.writers); err != nil {
				t.Fatalf("got %v; want nil", err)
			}
			// The directory now holds a (drained) queue: a second run refuses it.
			err := Run(context.Background(), tt.opts(dir), 1, 1)
			if err == nil || !strings.Contains(err.Error(), "is not empty") {
				t.Errorf("second run: got %v; want \"is not empty\"", err)
			}
		})
	}
}

func TestRunRefuses(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "MANIFEST"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		n    int
		want string
	}{
		{"not empty", full, 10, full + " is not empty: give a new directory"},
		{"no messages", filepath.Join(t.TempDir(), "q"), 0, "0 messages: want at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), store.Options{Dir: tt.dir}, tt.n, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPayloadDistinct(t *testing.T) {
	seen := map[string]int{}
	for i := range 2000 {
		p := string(Payload(i))
		if j, dup := seen[p]; dup {
			t.Fatalf("Payload(%d) == Payload(%d); want distinct", i, j)
		}
		if len(p) < 15 || len(p) > 526 {
			t.Fatalf("len(Payload(%d)) = %d; want 15..526", i, len(p))
		}
		seen[p] = i
	}
}
