package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// logSyncer makes a committed badger transaction durable with one
// fdatasync: of the write-ahead log (the memtable's ".mem" file), plus the
// value log (".vlog") when the transaction put a value there.
//
// Why not SyncWrites: badger v4.9.6 then syncs the WAL once per transaction
// AND the current value-log file once per write group, even when nothing was
// written to it (value.go: valueLog.write's deferred curlf.Sync). With values
// below ValueThreshold the second sync is pure cost: a flush of the device
// cache, about half a dirty fdatasync. db.Sync() does the same two syncs.
//
// Why not SyncWrites=false plus db.Sync(): db.Sync syncs only the CURRENT
// memtable's WAL and value-log file. If the memtable (or value log) rotated
// between the commit and the sync, the part of the transaction in the
// previous file is never synced (rotation does not sync without SyncWrites)
// until that memtable is flushed to an SST: a power cut then loses acked
// messages. So the syncer tracks file ids: badger numbers .mem files
// "%05d.mem" from one counter (memtable.go: nextMemFid) and .vlog files
// "%06d.vlog" (value.go: maxFid+1), both consecutive. A transaction lands in
// files with ids from the newest known before the commit up to the newest
// existing after it; each of them is fdatasynced. A file that has gone
// meanwhile was flushed to a synced SST (or value-log GC rewrote it) before
// badger deleted it. fdatasync on the file covers pages written through
// badger's shared mmap (Linux: msync(MS_SYNC) is the same vfs_fsync_range).
// TestLogSyncerFollowsBadger pins the naming; re-check on a badger upgrade.
//
// Why a blocking fdatasync(2) and not io_uring: with GOMAXPROCS=1 (what
// `edgegw run` sets on 2 cores) the runtime's monitor retakes the P of a
// goroutine blocked in a syscall after 20 µs and hands it to another
// thread, once per commit. IORING_OP_FSYNC (IORING_FSYNC_DATASYNC),
// submitted without waiting and completed through an eventfd in the
// netpoller, avoids that, and was built and measured (branch
// exp/uring-fdatasync): it did not pay. Paho harness, interleaved with this
// fdatasync, two runs of 3 rounds, median CPU per message: +1.9 µs at 1
// publisher (Receive Maximum 20), -2.0 at 4, -1.2 at 16; +0.7, +0.5, -0.5
// at 100, against a 2 to 4 µs spread between rounds; context switches per
// message 0.54 against 0.51 at 1 publisher. Per sync the ring wakes an
// io-wq worker and the netpoller, and the kernel drops its reference to
// the synced file in task work on the submitting thread (any thread, in
// Go): a queue's file stayed referenced after Close, and TestPowerCut's
// unmount failed "target is busy" in 2 runs of 4. The monitor's other
// wake-up (the first syscall after every P was idle resets it to polling
// every 20 µs) is not the fdatasync's and stays either way.
type logSyncer struct {
	dir  string
	ext  string
	cur  int64 // newest id known: no transaction lands in an older file
	fd   *os.File
	fdID int64
}

func newLogSyncer(dir, ext string) (*logSyncer, error) {
	s := &logSyncer{dir: dir, ext: ext, cur: -1}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if id, ok := s.parse(e.Name()); ok {
			s.cur = max(s.cur, id)
		}
	}
	if s.cur < 0 {
		return nil, fmt.Errorf("no %s file in %s: badger's file layout is not what this store was written for", ext, dir)
	}
	return s, nil
}

// newLogSyncers opens the syncers of both logs of the queue in dir: the
// write-ahead log and the value log. On error neither stays open.
func newLogSyncers(dir string) (wal, vlog *logSyncer, err error) {
	if wal, err = newLogSyncer(dir, ".mem"); err != nil {
		return nil, nil, err
	}
	if vlog, err = newLogSyncer(dir, ".vlog"); err != nil {
		wal.close()
		return nil, nil, err
	}
	return wal, vlog, nil
}

func (s *logSyncer) parse(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, s.ext)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(stem, 10, 64)
	return id, err == nil
}

func (s *logSyncer) name(id int64) string {
	if s.ext == ".mem" {
		return filepath.Join(s.dir, fmt.Sprintf("%05d%s", id, s.ext))
	}
	return filepath.Join(s.dir, fmt.Sprintf("%06d%s", id, s.ext))
}

// sync fdatasyncs every file from the newest known before the commit to the
// newest existing now.
func (s *logSyncer) sync() error {
	newest := s.cur
	for {
		if _, err := os.Stat(s.name(newest + 1)); err != nil {
			break
		}
		newest++
	}
	for id := s.cur; id <= newest; id++ {
		if err := s.syncOne(id, id == newest); err != nil {
			return err
		}
	}
	s.cur = newest
	return nil
}

func (s *logSyncer) syncOne(id int64, keep bool) error {
	f := s.fd
	if f == nil || s.fdID != id {
		var err error
		f, err = os.OpenFile(s.name(id), os.O_RDONLY, 0)
		if os.IsNotExist(err) {
			return nil // flushed to a synced SST (or rewritten by GC), then deleted
		}
		if err != nil {
			return err
		}
		if keep {
			s.close()
			s.fd, s.fdID = f, id
		} else {
			defer f.Close()
		}
	}
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}

func (s *logSyncer) close() {
	if s.fd != nil {
		s.fd.Close()
		s.fd = nil
	}
}
