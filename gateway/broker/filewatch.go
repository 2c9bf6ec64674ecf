package broker

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// dirWatch tells of changes in the directories of the reloadable files by
// inotify, so an idle gateway does not poll them (startWatch). It watches
// directories, not files: an editor or `edgegw pki revoke` that replaces a
// file by rename gives a new inode that a watch on the old file would miss.
//
// A directory's events count only for the names wanted in it (the watched
// files' base names; every name in the policy directory), so a busy
// neighbour (an audit log beside devices.yaml) does not wake the broker; a
// directory reached through a symlink counts every event (a symlink swap,
// as configuration managers do it, renames a name nobody watches).
type dirWatch struct {
	f       *os.File // the inotify descriptor, non-blocking: reads park in the netpoller
	fd      int      // f's descriptor (f.Fd would put f in blocking mode, and Close could not end a Read)
	changed chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	byWD  map[int32]string           // watch descriptor -> directory
	dirs  map[string]int32           // directory -> watch descriptor
	names map[string]map[string]bool // directory -> wanted names; nil map: every name
}

const dirWatchMask = unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// inotifyInit is unix.InotifyInit1 (tests replace it to take the polling
// fallback).
var inotifyInit = unix.InotifyInit1

func newDirWatch() (*dirWatch, error) {
	fd, err := inotifyInit(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, changed: make(chan struct{}, 1), done: make(chan struct{}),
		byWD: map[int32]string{}, dirs: map[string]int32{}, names: map[string]map[string]bool{}}
	go w.read()
	return w, nil
}

// watchFor watches the directories of files (and, for a directory in
// dirsWhole, every name in it). Watches already in place stay; a
// directory whose watch went away (removed, renamed) is watched again.
func (w *dirWatch) watchFor(files, dirsWhole []string) error {
	want := map[string]map[string]bool{}
	every := map[string]bool{}
	addName := func(dir, name string) {
		if want[dir] == nil {
			want[dir] = map[string]bool{}
		}
		want[dir][name] = true
	}
	for _, p := range files {
		p = filepath.Clean(p)
		addName(filepath.Dir(p), filepath.Base(p))
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			every[filepath.Dir(p)] = true
			every[filepath.Dir(real)] = true
		}
	}
	for _, d := range dirsWhole {
		every[filepath.Clean(d)] = true
	}
	for d := range every {
		want[d] = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for dir, names := range want {
		if _, ok := w.dirs[dir]; !ok {
			wd, err := unix.InotifyAddWatch(w.fd, dir, dirWatchMask)
			if err != nil {
				return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
			}
			w.dirs[dir], w.byWD[int32(wd)] = int32(wd), dir
		}
		w.names[dir] = names
	}
	return nil
}

// read turns events into a signal on changed until the descriptor is
// closed.
func (w *dirWatch) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			w.signal() // unknown trouble: have the files looked at
			return
		}
		if w.relevant(buf[:n]) {
			w.signal()
		}
	}
}

// relevant reports whether any event in buf (struct inotify_event records)
// concerns a wanted name, and forgets watches the kernel dropped.
func (w *dirWatch) relevant(buf []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	any := false
	for len(buf) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(buf[0:]))
		mask := binary.NativeEndian.Uint32(buf[4:])
		nameLen := int(binary.NativeEndian.Uint32(buf[12:]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(buf) {
			return true
		}
		name := string(buf[unix.SizeofInotifyEvent:end])
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		buf = buf[end:]
		dir := w.byWD[wd]
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			any = true
		case mask&unix.IN_IGNORED != 0: // the directory went away: watch it again on the next look
			delete(w.byWD, wd)
			if w.dirs[dir] == wd {
				delete(w.dirs, dir)
			}
			any = true
		case mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			any = true
		case dir != "":
			names := w.names[dir]
			any = any || names == nil || names[name]
		}
	}
	return any
}

func (w *dirWatch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// close stops the reader and releases the descriptor.
func (w *dirWatch) close() {
	_ = w.f.Close()
	<-w.done
}
