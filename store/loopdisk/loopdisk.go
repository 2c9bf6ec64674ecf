// Package loopdisk is the power-cut tests' disk: an ext4 file system in an
// image file, attached to a loop device with direct I/O (losetup
// --direct-io=on: a write the file system completes is in the image file,
// none is held in the host's page cache), so that the image holds what the
// "disk" holds. A process writing to it is stopped (SIGSTOP) at a random
// moment, the device is let go still, and the image is copied: the disk at
// one instant, what a power cut leaves on a device without a volatile write
// cache. A copy is then mounted (ext4 replays its journal) and opened.
//
// Tests only (store's power-cut test, phase 1; cmd/edgegw's daemon power
// cut, phase 2). It needs root, a free loop device, mkfs.ext4, mount and
// umount; Setup skips the test saying so when root or the loop device is
// missing, and fails with the install command when a tool is. It imports
// nothing of this module.
package loopdisk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Setup skips the test when the machine cannot attach loop devices.
func Setup(t testing.TB) {
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

// Run runs a command and fails the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// NewImage makes a sparse image file of size (truncate's syntax, "1G") with
// a fresh ext4 in it, attaches it with direct I/O and mounts it; both are
// undone at cleanup. It returns the image, the mount point and the loop
// device's name ("loop3").
func NewImage(t testing.TB, dir, size string) (img, mnt, dev string) {
	t.Helper()
	img = filepath.Join(dir, "disk.img")
	Run(t, "truncate", "-s", size, img)
	Run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img)
	mnt, dev = Mount(t, img)
	return img, mnt, dev
}

// Mount attaches img to a loop device with direct I/O and mounts it at a
// new directory; both are undone at cleanup. It returns the mount point and
// the loop device's name ("loop3").
func Mount(t testing.TB, img string) (string, string) {
	t.Helper()
	mnt := t.TempDir()
	dev := Run(t, "losetup", "-f", "--show", "--direct-io=on", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	Run(t, "mount", "-t", "ext4", dev, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt, filepath.Base(dev)
}

// MountCopy attaches a copy of an image and mounts it at mnt (ext4 replays
// its journal); unmount undoes both.
func MountCopy(copyImg, mnt string) (unmount func() error, err error) {
	out, err := exec.Command("losetup", "-f", "--show", copyImg).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %v: %s", copyImg, err, out)
	}
	dev := strings.TrimSpace(string(out))
	if out, err := exec.Command("mount", "-t", "ext4", dev, mnt).CombinedOutput(); err != nil {
		exec.Command("losetup", "-d", dev).Run()
		return nil, fmt.Errorf("mounting the copy (ext4 journal replay): %v: %s", err, out)
	}
	return func() error {
		defer exec.Command("losetup", "-d", dev).Run()
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("umount %s: %v: %s", mnt, err, out)
		}
		return nil
	}, nil
}

// Stat returns the loop device's completed writes, discards and flushes,
// and its I/Os in flight (/sys/block/NAME/stat).
func Stat(t testing.TB, dev string) (done [3]uint64, inFlight uint64) {
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

// Stop sends pid SIGSTOP and waits (at most 30 s) until every thread of it
// is stopped.
func Stop(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, running := Stopped(pid)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not stop within 30s; threads still running (tid state wchan): %s", pid, running)
		}
		time.Sleep(time.Millisecond)
	}
}

// Stopped says whether every thread of pid is stopped (state T), gone, or
// inside the kernel (state D: it stops on its way out; a write it is doing
// shows in the device's counters, which CopyStill checks); else it names
// the threads still running.
func Stopped(pid int) (bool, string) {
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

// CopyStill copies img to dst once the loop device dev has no write in
// flight, and again while the device wrote during the copy; it returns how
// many copies were retaken. The writer must be stopped (Stop).
func CopyStill(t testing.TB, dev, img, dst string) int {
	t.Helper()
	retaken := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		before, inFlight := Stat(t, dev)
		if inFlight != 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err := CopySparse(img, dst); err != nil {
			t.Fatal(err)
		}
		if after, inFlight := Stat(t, dev); after == before && inFlight == 0 {
			return retaken
		}
		retaken++
	}
	t.Fatalf("the loop device kept writing while its writer was stopped: no still copy in 30s (%d tries)", retaken)
	return 0
}

// CopySparse copies the data extents of from into a new file to.
func CopySparse(from, to string) error {
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
