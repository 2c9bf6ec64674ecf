package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/store/loopdisk"
)

// The power-cut test (make powercut): the queue lives on ext4 in an image
// file attached to a loop device with direct I/O (losetup --direct-io=on:
// a write the file system completes is in the image file, none is held in
// the host's page cache), so the image holds what the "disk" holds, and
// nothing that is only in the guest file system's page cache. While the
// soak child (soak_test.go) enqueues, acks, dead-letters, flushes memtables,
// compacts and rotates value logs, the test stops it (SIGSTOP) at a random
// moment, waits until the loop device has no write in flight, copies the
// image (sparse: its data extents), checks that the device wrote nothing
// during the copy (else it copies again), and lets the child go on. The copy
// is the disk at one instant: what a power cut leaves, on a device without
// a volatile write cache. Each copy is then mounted (ext4 replays its
// journal) and the queue opened with no help: every message acknowledged
// (Enqueue returned, after fdatasync) before the stop must be there, in
// order per route, unless the consumer had taken it; every key-space
// document whose Write had returned must be there at least as new, whole
// (kvcrash_test.go).
//
// EDGEGW_POWERCUT_COPIES sets the number of copies (make powercut: 200); go
// test takes 20. It needs root and a free loop device, and skips saying so
// without them (store/loopdisk: the image, the stop and the still copy).
// Phase 2, the whole daemon on such a disk, is cmd/edgegw's
// TestPowerCutDaemon.

// lineLog collects the child's stdout lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	eof   chan struct{}
}

func (l *lineLog) read(r io.Reader) {
	defer close(l.eof)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
	}
}

func (l *lineLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// expected: the messages acknowledged and not consumed in lines, by seq.
func expected(lines []string) map[uint64]string {
	want := map[uint64]string{}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "E" && f[1] != "capped" {
			seq, _ := strconv.ParseUint(f[2], 10, 64)
			want[seq] = f[1]
		}
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 2 && (f[0] == "A" || f[0] == "D") {
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			delete(want, seq)
		}
	}
	return want
}

func TestPowerCut(t *testing.T) {
	loopdisk.Setup(t)
	copies := envCount(t, "EDGEGW_POWERCUT_COPIES", "copies", 20)
	seed := crashSeed()
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("seed %d, %d copies", seed, copies)
	work := t.TempDir()
	img, mnt, dev := loopdisk.NewImage(t, work, "1G")

	var tot struct{ expected, kvDocs, flushing, tables, rotated, repaired, retaken int }
	start := time.Now()
	for phase, key := range []string{"", "powercut"} { // plain, then encrypted
		n := copies / 2
		if phase == 1 {
			n = copies - copies/2
		}
		dir := filepath.Join(mnt, "q"+strconv.Itoa(phase))
		cmd, out, stderr := startHelper(t, true, crashDirEnv+"="+dir, soakEnv+"=1", soakKeyEnv+"="+key, soakKeepEnv+"=1")
		ll := &lineLog{eof: make(chan struct{})}
		go ll.read(out)
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
		}
		t.Cleanup(stop) // before the unmount: a stopped child keeps its files open
		for deadline := time.Now().Add(60 * time.Second); ll.len() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("phase %d: the child acknowledged nothing in 60s: %s", phase, stderr.String())
			}
		}
		prevSST, prevVlog := 0, 0
		for i := range n {
			time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond)
			lines, retaken := stopAndCopy(t, cmd, ll, dev, img, filepath.Join(work, "copy.img"))
			tot.retaken += retaken
			mems, sst, vlog := countFiles(dir)
			if mems > 1 {
				tot.flushing++
			}
			if sst > prevSST {
				tot.tables++
			}
			if vlog > prevVlog && i > 0 {
				tot.rotated++
			}
			prevSST, prevVlog = sst, vlog
			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			want := expected(lines)
			tot.expected += len(want)
			kv := map[int]kvAck{}
			kvAcked(lines, kv)
			reps, docs, err := checkCopy(t, filepath.Join(work, "copy.img"), filepath.Base(dir), key, want, kv)
			tot.kvDocs += docs
			if err != nil {
				stop()
				t.Fatalf("phase %d copy %d (after %d lines; %d expected): %v\nchild's stderr:\n%s", phase, i, len(lines), len(want), err, stderr.String())
			}
			tot.repaired += len(reps)
			if len(reps) > 0 {
				t.Logf("phase %d copy %d: repaired %v", phase, i, reps)
			}
		}
		stop()
	}
	t.Logf("%d power-cut copies in %v: 0 failures; %d acknowledged messages checked, %d acknowledged key-space documents checked; copies with a memtable waiting for its flush %d, "+
		"new tables since the previous copy %d, a value-log rotation since the previous copy %d; repairs at open %d; copies retaken because the device wrote during the copy %d",
		copies, time.Since(start).Round(time.Second), tot.expected, tot.kvDocs, tot.flushing, tot.tables, tot.rotated, tot.repaired, tot.retaken)
}

// stopAndCopy stops the child, waits for its lines and the device to be
// still, copies the image to dst (again while the device wrote during the
// copy) and returns the lines printed before the stop. The child stays
// stopped.
func stopAndCopy(t *testing.T, cmd *exec.Cmd, ll *lineLog, dev, img, dst string) ([]string, int) {
	t.Helper()
	loopdisk.Stop(t, cmd.Process.Pid)
	// Everything it printed before it stopped is read once the pipe is empty
	// and the reader has nothing new for a while.
	for n := -1; n != ll.len(); {
		n = ll.len()
		time.Sleep(30 * time.Millisecond)
	}
	ll.mu.Lock()
	lines := slices.Clone(ll.lines)
	ll.mu.Unlock()
	return lines, loopdisk.CopyStill(t, dev, img, dst)
}

// checkCopy mounts the image copy, opens the queue in it with no help and
// checks that every message of want is there, in order per route, and that
// every key-space document of kv is there at least as new and whole
// (checkKV). It returns Open's repairs and the number of documents checked.
func checkCopy(t *testing.T, copyImg, qdir, key string, want map[uint64]string, kv map[int]kvAck) ([]Repair, int, error) {
	t.Helper()
	mnt, err := os.MkdirTemp(filepath.Dir(copyImg), "copy-mnt")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(mnt)
	unmount, err := loopdisk.MountCopy(copyImg, mnt)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err := unmount(); err != nil {
			t.Error(err)
		}
	}()
	dir := filepath.Join(mnt, qdir)
	var k []byte
	if key != "" {
		s := sha256.Sum256([]byte(key))
		k = s[:]
	}
	var errs bytes.Buffer
	q, err := Open(Options{Dir: dir, Routes: soakRoutes, EncryptionKey: k,
		Logger: slog.New(slog.NewTextHandler(&errs, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return nil, 0, fmt.Errorf("open: %v", err)
	}
	defer q.Close()
	rep := q.OpenReport()
	if rep.MovedTo != "" || errs.Len() > 0 {
		return nil, 0, fmt.Errorf("open moved the queue aside (%+v) or logged errors: %s", rep, errs.String())
	}
	got := map[string][]uint64{}
	present := map[uint64]bool{}
	for {
		m, err := available(q)
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("Next: %v", err)
		}
		if s := got[m.Route]; len(s) > 0 && m.Seq <= s[len(s)-1] {
			return nil, 0, fmt.Errorf("route %s: seq %d after %d", m.Route, m.Seq, s[len(s)-1])
		}
		got[m.Route] = append(got[m.Route], m.Seq)
		present[m.Seq] = true
	}
	var lost []uint64
	for seq := range want {
		if !present[seq] {
			lost = append(lost, seq)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return nil, 0, fmt.Errorf("%d of %d acknowledged messages lost, first %v", len(lost), len(want), lost[:min(10, len(lost))])
	}
	docs, err := checkKV(q, kv)
	if err != nil {
		return nil, 0, err
	}
	return rep.Repairs, docs, nil
}
