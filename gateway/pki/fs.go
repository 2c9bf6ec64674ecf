package pki

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive flock(2) on DIR/.lock, polling until ctx is done. flock locks
// belong to the open file description, so two goroutines of one process exclude each other too.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	delay := 2 * time.Millisecond
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s (another `edgegw pki` command is running): %w", dir, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// txn stages whole files as fsynced temporary files next to their targets and renames them
// into place on commit. Nothing visible changes before commit; abort removes the temporaries.
type txn struct {
	staged []stagedFile
	unsync []*os.File // written, not yet fsynced (big batches: one syncfs instead)
}

// syncEach is the batch size up to which every staged file gets its own fsync; larger batches
// (2,000 device bundles) are flushed with one syncfs(2) per directory before any rename.
const syncEach = 16

type stagedFile struct {
	tmp, path string
}

// put stages data for path with the given mode. Errors (missing directory, disk full) surface
// here, before anything is renamed.
func (t *txn) put(path string, data []byte, mode os.FileMode) error {
	return t.putOwned(path, data, mode, nil)
}

// putOwned is put for a file that owner (when not nil) owns: the temporary file is chowned
// before it is renamed, so path never exists with the wrong owner.
func (t *txn) putOwned(path string, data []byte, mode os.FileMode, owner *Owner) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if len(t.staged) < syncEach {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
		if err := f.Close(); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("writing %s: %w", path, err)
		}
	} else {
		t.unsync = append(t.unsync, f) // closed by flush or abort
	}
	t.staged = append(t.staged, stagedFile{tmp: tmp, path: path})
	return nil
}

// abort removes every staged temporary file.
func (t *txn) abort() {
	t.closeUnsynced()
	for _, s := range t.staged {
		_ = os.Remove(s.tmp)
	}
	t.staged = nil
}

// commit renames the staged files in the order they were put, then fsyncs their directories.
func (t *txn) commit() error {
	if err := t.flush(); err != nil {
		t.abort()
		return err
	}
	dirs := map[string]bool{}
	for i, s := range t.staged {
		if err := os.Rename(s.tmp, s.path); err != nil {
			for _, r := range t.staged[i:] {
				_ = os.Remove(r.tmp)
			}
			t.staged = nil
			return fmt.Errorf("replacing %s: %w", s.path, err)
		}
		dirs[filepath.Dir(s.path)] = true
	}
	t.staged = nil
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// flush makes the unsynced staged files durable: one syncfs(2) per file system they are on
// (checked through each file), then closes them.
func (t *txn) flush() error {
	defer t.closeUnsynced()
	done := map[uint64]bool{}
	for _, f := range t.unsync {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return fmt.Errorf("writing %s: %w", f.Name(), err)
		}
		if done[st.Dev] {
			continue
		}
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return fmt.Errorf("syncing %s: %w", filepath.Dir(f.Name()), err)
		}
		done[st.Dev] = true
	}
	return nil
}

func (t *txn) closeUnsynced() {
	for _, f := range t.unsync {
		_ = f.Close()
	}
	t.unsync = nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
