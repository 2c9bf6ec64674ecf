package store

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgegw/edgegw/store/loopdisk"
)

// Power cuts between a value-log write and its fdatasync, with another
// writer's WAL sync in between (logorder.go). Each test opens a queue on a
// loop-mounted ext4 image (powercut_test.go), makes badger write a value to
// the value log without syncing it, lets another commit fdatasync the WAL,
// copies the image at that instant (the power cut) and opens the copy.
// Before the log order was kept across writers, the WAL in the copy held an
// entry pointing past the value log's end (badger cuts the last value-log
// file at its last whole entry on open): a dead letter, a key-space
// document, or a message value-log GC had moved, that could not be read
// any more.

// cutNow copies the image of the mounted queue to dst once the loop device
// has nothing in flight and wrote nothing during the copy.
func cutNow(t *testing.T, dev, img, dst string) {
	t.Helper()
	loopdisk.CopyStill(t, dev, img, dst)
}

// openCopy mounts the image copy and opens the queue in it (directory qdir)
// with no help; both are undone at cleanup.
func openCopy(t *testing.T, copyImg, qdir string) *Queue {
	t.Helper()
	mnt := t.TempDir()
	unmount, err := loopdisk.MountCopy(copyImg, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Error(err)
		}
	})
	q, err := Open(Options{Dir: filepath.Join(mnt, qdir), EncryptionKey: testKey32, KeepCorrupt: true})
	if err != nil {
		t.Fatalf("opening the queue in the power-cut copy: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

var testKey32 = bytes.Repeat([]byte{7}, 32)

// cutSetup: an ext4 image on a loop device, a queue in it, and where the
// copy goes.
func cutSetup(t *testing.T) (q *Queue, dev, img, copyImg string) {
	t.Helper()
	loopdisk.Setup(t)
	work := t.TempDir()
	img, copyImg = filepath.Join(work, "disk.img"), filepath.Join(work, "copy.img")
	loopdisk.Run(t, "truncate", "-s", "256M", img)
	loopdisk.Run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img)
	mnt, dev := loopdisk.Mount(t, img)
	q, err := Open(Options{Dir: filepath.Join(mnt, "q"), EncryptionKey: testKey32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() }) // before the unmount (cleanups run last first)
	return q, dev, img, copyImg
}

// TestPowerCutDeadLetterValueLog: a big message is dead-lettered (its dead
// letter goes to the value log; the committer does not sync a commit that
// accepts no message), then a small message is enqueued (its commit syncs
// the WAL, which holds the dead letter's entry). A power cut right then must
// leave the message readable: still queued, or a whole dead letter.
func TestPowerCutDeadLetterValueLog(t *testing.T) {
	q, dev, img, copyImg := cutSetup(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte{'b'}, valueThreshold+1000)
	seq, err := q.Enqueue(ctx, Message{Route: "r", Topic: "t", Payload: big, QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := q.Next(ctx); err != nil || m.Seq != seq {
		t.Fatalf("Next = %d, %v; want %d", m.Seq, err, seq)
	}
	if err := q.DeadLetter(seq, "test"); err != nil {
		t.Fatal(err)
	}
	if err := q.sync(); err != nil { // the dead letter is committed, not synced
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, Message{Route: "r", Topic: "t", Payload: []byte("small"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	cutNow(t, dev, img, copyImg)

	c := openCopy(t, copyImg, "q")
	dead, err := c.DeadLetters("r", 0)
	if err != nil {
		t.Fatalf("after the power cut, the dead letters do not read: %v", err)
	}
	if len(dead) == 1 && dead[0].Seq == seq && bytes.Equal(dead[0].Payload, big) {
		return
	}
	m, err := available(c)
	if err != nil || m.Seq != seq || !bytes.Equal(m.Payload, big) {
		t.Fatalf("after the power cut, message %d is neither a whole dead letter (%d dead letters) nor queued (Next: seq %d, %d bytes, %v)",
			seq, len(dead), m.Seq, len(m.Payload), err)
	}
}

// TestPowerCutKVValueLog: a key-space Write of a value for the value log
// has committed and not yet synced when the queue's committer syncs the
// WAL for an enqueue. A power cut right then must leave the key readable:
// its old value or its new one.
func TestPowerCutKVValueLog(t *testing.T) {
	q, dev, img, copyImg := cutSetup(t)
	ctx := context.Background()
	kv, err := q.KV("doc")
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	old := []byte("version 1")
	if err := kv.Write(ctx, []KVOp{{Key: "d", Value: old}}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{'2'}, valueThreshold+1000)
	cut := false
	kv.afterCommit = func() {
		kv.afterCommit = nil
		if _, err := q.Enqueue(ctx, Message{Route: "r", Topic: "t", Payload: []byte("small"), QoS: 1}); err != nil {
			t.Error(err)
			return
		}
		cutNow(t, dev, img, copyImg)
		cut = true
	}
	if err := kv.Write(ctx, []KVOp{{Key: "d", Value: big}}); err != nil {
		t.Fatal(err)
	}
	if !cut {
		t.Fatal("the Write's afterCommit hook did not run")
	}

	c := openCopy(t, copyImg, "q")
	ckv, err := c.KV("doc")
	if err != nil {
		t.Fatal(err)
	}
	defer ckv.Close()
	v, err := ckv.Get(ctx, "d")
	if err != nil {
		t.Fatalf("after the power cut, the document does not read: %v", err)
	}
	if !bytes.Equal(v, old) && !bytes.Equal(v, big) {
		t.Fatalf("after the power cut, the document is %d bytes %.20q; want its old or its new value", len(v), v)
	}
}

// TestPowerCutValueLogGC: value-log GC moves the live values of a value-log
// file into the current one (written, not synced: badger runs without
// SyncWrites) and deletes the file. The next enqueue's WAL sync then makes
// the moved entries durable. A power cut right then must leave every queued
// message readable.
func TestPowerCutValueLogGC(t *testing.T) {
	defer func(n int64) { valueLogFileSize = n }(valueLogFileSize)
	valueLogFileSize = 1 << 20 // badger's least: a few big values fill a file
	q, dev, img, copyImg := cutSetup(t)
	ctx := context.Background()
	kept := map[uint64][]byte{}
	for i := range 48 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, valueThreshold+1000*i)
		seq, err := q.Enqueue(ctx, Message{Route: "r", Topic: "t", Payload: p, QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			kept[seq] = p
		}
	}
	for range 48 {
		m, err := available(q)
		if err != nil {
			t.Fatal(err)
		}
		if kept[m.Seq] == nil {
			if err := q.Ack(m.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.sync(); err != nil {
		t.Fatal(err)
	}
	// The acked messages' values become garbage once a compaction drops
	// their keys: the memtable to a table at each Close, three tables in
	// level 0, compacted by Flatten.
	dir := q.dir
	for i := range 3 {
		if i > 0 {
			if _, err := q.Enqueue(ctx, Message{Route: "s", Topic: "t", Payload: []byte("small"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		var err error
		if q, err = Open(Options{Dir: dir, EncryptionKey: testKey32}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
	}
	if err := q.compact.flatten(1); err != nil {
		t.Fatal(err)
	}
	if n := q.runValueLogGC(1); n == 0 { // one file: its values fit in the current one, no rotation (which syncs)
		t.Fatal("value-log GC rewrote no file: the test no longer reaches what it tests")
	}
	if _, err := q.Enqueue(ctx, Message{Route: "s", Topic: "t", Payload: []byte("small"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	cutNow(t, dev, img, copyImg)

	c := openCopy(t, copyImg, "q")
	for {
		m, err := available(c)
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			t.Fatalf("after the power cut: Next: %v", err)
		}
		if m.Route == "s" {
			continue
		}
		if want, ok := kept[m.Seq]; !ok || !bytes.Equal(m.Payload, want) {
			t.Fatalf("after the power cut: seq %d, %d bytes (%q...); want one of the kept messages whole", m.Seq, len(m.Payload), m.Payload[:min(8, len(m.Payload))])
		}
		delete(kept, m.Seq)
	}
	if len(kept) > 0 {
		out, _ := exec.Command("ls", "-ls", c.dir).CombinedOutput()
		t.Fatalf("after the power cut: %d kept messages missing (dead letters: %d); the queue's files:\n%s", len(kept), c.Stats().DeadLetters, out)
	}
}
