package store

import (
	"sync"
	"sync/atomic"
)

// logOrder keeps one rule for every writer of the database (the queue's
// committer, each KV handle, and value-log GC: runValueLogGC): no fdatasync
// of the write-ahead log makes an entry durable whose value is in the value
// log and not yet synced.
//
// badger writes a transaction's large values to the value log, then its
// entries, with pointers into the value log, to the WAL. Without SyncWrites
// nothing syncs either; each writer syncs the logs itself (logSyncer). But
// fdatasync of the WAL covers every entry in it, other writers' included:
// the queue's sync after an enqueue makes durable the entry of a KV Write
// that has committed and not yet synced its value log, and the sync of any
// commit makes durable a dead letter the committer wrote without a sync (a
// commit that accepts no message is not synced). A power cut then keeps a
// WAL entry pointing past the value log's end (badger cuts the last
// value-log file at its last whole entry on open): badger v4.9.6 reads that
// value as empty, with no error. So:
//
//   - a commit that may put a value in the value log (one of at least
//     valueThreshold bytes) runs under bigCommit: a read lock, and the
//     dirty mark set once its value is written;
//   - every WAL sync runs under syncWAL: the write lock (no such commit is
//     half done), the value log synced first when the mark is set, then the
//     WAL.
//
// Commits of small values only never wait. Syncs take turns; they were
// fdatasyncs of the same files anyway. TestPowerCutDeadLetterValueLog,
// TestPowerCutKVValueLog and TestPowerCutValueLogGC are the power cuts this
// prevents.
type logOrder struct {
	mu    sync.RWMutex // read: a commit with a value-log value; write: a WAL sync
	dirty atomic.Bool  // a value went to the value log since its last sync
}

// bigCommit runs commit, which may write to the value log.
func (o *logOrder) bigCommit(commit func() error) error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	// Even a commit that fails may have written its values.
	defer o.dirty.Store(true)
	return commit()
}

// syncWAL fdatasyncs the WAL files through wal, after the value-log files
// through vlog when a value went there since the last sync.
func (o *logOrder) syncWAL(wal, vlog *logSyncer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dirty.Load() {
		if err := vlog.sync(); err != nil {
			return err
		}
		o.dirty.Store(false)
	}
	return wal.sync()
}
