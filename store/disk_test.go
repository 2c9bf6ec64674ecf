package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

// TestDiskFull fills a real tmpfs until ErrFull, then makes badger do the
// most it may write on its own at the watermark: acks (tombstones), dead
// letters, a reopen (memtable replay and flush), a compaction of the whole
// tree (Flatten) and value-log GC. The process must not die (badger SIGBUSes
// on a full filesystem) and what was accepted must survive. The tmpfs holds
// the reserve computed from the badger options and 48 MiB more. Not root:
// the watermark through an injected statfs instead.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: proving the watermark with an injected statfs instead of a tmpfs")
		var used uint64
		q := openT(t, Options{Statfs: func(string) (uint64, error) { return 128<<20 - used, nil }})
		for i := 0; ; i++ {
			_, err := q.Enqueue(context.Background(), Message{Route: "r", Payload: make([]byte, 1024)})
			if errors.Is(err, ErrFull) {
				if i == 0 {
					t.Fatal("refused the first message")
				}
				return
			}
			if err != nil || i > 1e6 {
				t.Fatalf("Enqueue #%d: %v", i, err)
			}
			used += 2048
		}
	}
	reserve := badgerReserve((&Queue{dir: "unused"}).badgerOptions())
	mnt := t.TempDir()
	size := fmt.Sprintf("size=%dm", reserve>>20+48)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "q")
	fill := func(q *Queue) int {
		t.Helper()
		accepted := 0
		for i := 0; ; i++ {
			payload := make([]byte, 2048)
			if i%100 == 99 {
				payload = make([]byte, 100<<10) // to the value log
			}
			_, err := q.Enqueue(context.Background(), Message{Route: "r", Topic: "t", Payload: payload})
			if errors.Is(err, ErrFull) {
				return accepted
			}
			if err != nil || i > 1e6 {
				t.Fatalf("Enqueue #%d: %v", i, err)
			}
			accepted++
		}
	}
	churn := func(q *Queue, when string) {
		t.Helper()
		if err := q.compact.flatten(2); err != nil {
			t.Logf("%s: Flatten: %v", when, err)
		}
		for range 4 {
			if err := q.db.RunValueLogGC(0.01); err != nil {
				break
			}
		}
	}
	q, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	accepted := fill(q)
	st := q.Stats()
	t.Logf("%s tmpfs: accepted %d messages (%d bytes) before ErrFull; free %d, watermark %d, reserve %d",
		size, accepted, st.Bytes, st.FreeBytes, st.MinFreeBytes, reserve)
	if accepted == 0 || st.RejectedFull == 0 {
		t.Fatalf("accepted %d, rejected %d", accepted, st.RejectedFull)
	}
	// Still alive and serving at the watermark: acks, dead letters, a
	// compaction of everything, value-log GC.
	for i := range accepted / 2 {
		m := next(t, q)
		if i%50 == 0 {
			q.DeadLetter(m.Seq, "test")
		} else {
			q.Ack(m.Seq)
		}
	}
	if err := q.sync(); err != nil {
		t.Fatal(err)
	}
	churn(q, "after acks")
	if err := q.Close(); err != nil {
		t.Fatalf("Close on a nearly full disk: %v", err)
	}
	q = openT(t, Options{Dir: dir})
	left := q.Stats().Depth
	if left < int64(accepted-accepted/2) {
		t.Fatalf("after reopen depth %d; want >= %d", left, accepted-accepted/2)
	}
	more := fill(q)
	churn(q, "after refilling")
	st = q.Stats()
	t.Logf("refilled %d more; free %d, watermark %d", more, st.FreeBytes, st.MinFreeBytes)
}
