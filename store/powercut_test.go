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
// without them.

// loopSetup skips the test when the machine cannot attach loop devices.
func loopSetup(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the power-cut test mounts ext4 images through loop devices: it needs root (CI runs it as root; make powercut)")
	}
	if out, err := exec.Command("losetup", "-f").CombinedOutput(); err != nil {
		t.Skipf("the power-cut test needs a free loop device; losetup -f: %v: %s", err, out)
	}
	for _, tool := range []string{"mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y e2fsprogs mount", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// mountImage attaches img to a loop device with direct I/O and mounts it at
// a new directory; both are undone at cleanup. It returns the mount point
// and the loop device's name ("loop3").
func mountImage(t *testing.T, img string) (string, string) {
	t.Helper()
	mnt := t.TempDir()
	dev := run(t, "losetup", "-f", "--show", "--direct-io=on", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	run(t, "mount", "-t", "ext4", dev, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt, filepath.Base(dev)
}

// loopStat returns the loop device's completed writes, discards and
// flushes, and its I/Os in flight (/sys/block/NAME/stat).
func loopStat(t *testing.T, dev string) (done [3]uint64, inFlight uint64) {
	t.Helper()
	b, err := os.ReadFile("/sys/block/" + dev + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	u := func(i int) uint64 {
		if i >= len(f) {
			return 0
		}
		v, _ := strconv.ParseUint(f[i], 10, 64)
		return v
	}
	return [3]uint64{u(4), u(11), u(15)}, u(8)
}

// stopped says whether every thread of pid is stopped (state T), gone, or inside
// the kernel (state D: it stops on its way out; a write it is doing shows in
// the device's counters, which stopAndCopy checks); else it names the
// threads still running.
func stopped(pid int) (bool, string) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	var running []string
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // gone
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			continue
		}
		if st := b[i+2]; !strings.ContainsRune("TtDZX", rune(st)) { // Z, X: a thread that exited
			wchan, _ := os.ReadFile(filepath.Join(filepath.Dir(task), "wchan"))
			running = append(running, fmt.Sprintf("%s %c %s", filepath.Base(filepath.Dir(task)), st, wchan))
		}
	}
	return len(tasks) > 0 && len(running) == 0, strings.Join(running, ", ")
}

// copySparse copies the data extents of from into a new file to.
func copySparse(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	defer dst.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	if err := dst.Truncate(info.Size()); err != nil {
		return err
	}
	const seekData, seekHole = 3, 4
	buf := make([]byte, 4<<20)
	for off := int64(0); off < info.Size(); {
		data, err := src.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return err
		}
		hole, err := src.Seek(data, seekHole)
		if err != nil {
			return err
		}
		if _, err := src.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := dst.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(dst, io.LimitReader(src, hole-data), buf); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

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
	loopSetup(t)
	copies := envCount(t, "EDGEGW_POWERCUT_COPIES", "copies", 20)
	seed := crashSeed()
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("seed %d, %d copies", seed, copies)
	work := t.TempDir()
	img := filepath.Join(work, "disk.img")
	run(t, "truncate", "-s", "1G", img)
	run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img)
	mnt, dev := mountImage(t, img)

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
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, running := stopped(cmd.Process.Pid)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child did not stop within 30s; threads still running (tid state wchan): %s", running)
		}
		time.Sleep(time.Millisecond)
	}
	// Everything it printed before it stopped is read once the pipe is empty
	// and the reader has nothing new for a while.
	for n := -1; n != ll.len(); {
		n = ll.len()
		time.Sleep(30 * time.Millisecond)
	}
	ll.mu.Lock()
	lines := slices.Clone(ll.lines)
	ll.mu.Unlock()
	retaken := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		before, inFlight := loopStat(t, dev)
		if inFlight != 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err := copySparse(img, dst); err != nil {
			t.Fatal(err)
		}
		if after, inFlight := loopStat(t, dev); after == before && inFlight == 0 {
			return lines, retaken
		}
		retaken++
	}
	t.Fatalf("the loop device kept writing while the child was stopped: no still copy in 30s (%d tries)", retaken)
	return nil, 0
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
	out, err := exec.Command("losetup", "-f", "--show", copyImg).CombinedOutput()
	if err != nil {
		return nil, 0, fmt.Errorf("losetup %s: %v: %s", copyImg, err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	if out, err := exec.Command("mount", "-t", "ext4", dev, mnt).CombinedOutput(); err != nil {
		return nil, 0, fmt.Errorf("mounting the copy (ext4 journal replay): %v: %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
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
