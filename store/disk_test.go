package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestEncryptionAtRest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	key := make([]byte, 32)
	rand.Read(key)
	secret := []byte("EDGEGW-CANARY-7f3a9c-plaintext-must-not-hit-disk")
	q := openT(t, Options{Dir: dir, EncryptionKey: key})
	for range 2000 { // enough to flush memtables to SSTs too
		if _, err := q.Enqueue(context.Background(), Message{Route: "r", Topic: "t", Payload: bytes.Repeat(secret, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat(secret, 2000) // > ValueThreshold: goes to the value log
	if _, err := q.Enqueue(context.Background(), Message{Route: "r", Topic: "t", Payload: big}); err != nil {
		t.Fatal(err)
	}
	grep := func(when string) {
		t.Helper()
		files := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files++
			if bytes.Contains(b, secret) || bytes.Contains(b, []byte("CANARY")) {
				t.Errorf("%s: plaintext payload found in %s", when, p)
			}
			return nil
		})
		if files < 3 {
			t.Fatalf("%s: only %d files under %s", when, files, dir)
		}
	}
	grep("while open")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	grep("after Close")

	q = openT(t, Options{Dir: dir, EncryptionKey: key})
	if m := next(t, q); !bytes.Equal(m.Payload, bytes.Repeat(secret, 3)) {
		t.Fatalf("reopened with the right key: got %q", m.Payload)
	}
	if st := q.Stats(); st.Depth != 2001 {
		t.Fatalf("depth %d; want 2001", st.Depth)
	}
	q.Close()

	wrong := make([]byte, 32)
	rand.Read(wrong)
	for name, k := range map[string][]byte{"wrong key": wrong, "no key": nil} {
		_, err := Open(Options{Dir: dir, EncryptionKey: k})
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%s: Open = %v; want ErrWrongKey", name, err)
		}
		if !strings.Contains(err.Error(), "encryption key does not match") {
			t.Fatalf("%s: unclear error %q", name, err)
		}
		if m, _ := filepath.Glob(dir + ".corrupt-*"); len(m) != 0 {
			t.Fatalf("%s: queue was moved aside: %v", name, m)
		}
	}
}

// TestDiskFull fills a real 32 MiB tmpfs until ErrFull: the process must not
// die (badger SIGBUSes on a full filesystem) and what was accepted must
// survive. Not root: the same through an injected statfs.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: proving the watermark with an injected statfs instead of a tmpfs")
		var used uint64
		q := openT(t, Options{MinFreeBytes: 20 << 20, Statfs: func(string) (uint64, error) { return 32<<20 - used, nil }})
		for i := 0; ; i++ {
			_, err := q.Enqueue(context.Background(), Message{Route: "r", Payload: make([]byte, 1024)})
			if errors.Is(err, ErrFull) {
				return
			}
			if err != nil || i > 1e6 {
				t.Fatalf("Enqueue #%d: %v", i, err)
			}
			used += 2048
		}
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "q")
	q, err := Open(Options{Dir: dir, MinFreeBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 2048)
	accepted := 0
	for i := 0; ; i++ {
		_, err := q.Enqueue(context.Background(), Message{Route: "r", Topic: "t", Payload: payload})
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil || i > 1e6 {
			t.Fatalf("Enqueue #%d: %v", i, err)
		}
		accepted++
	}
	st := q.Stats()
	t.Logf("accepted %d messages (%d bytes) before ErrFull; free %d, watermark %d", accepted, st.Bytes, st.FreeBytes, st.MinFreeBytes)
	if accepted == 0 || st.RejectedFull == 0 {
		t.Fatalf("accepted %d, rejected %d", accepted, st.RejectedFull)
	}
	// Still alive and serving: drain a little, acks work, then reopen.
	for range 10 {
		q.Ack(next(t, q).Seq)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close on a nearly full disk: %v", err)
	}
	q = openT(t, Options{Dir: dir, MinFreeBytes: 4 << 20})
	if got := q.Stats().Depth; got < int64(accepted-10) {
		t.Fatalf("after reopen depth %d; want >= %d", got, accepted-10)
	}
}
