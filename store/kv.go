package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The key-value spaces: small named key spaces in the queue's database, for
// state that must live and die with the queue (device shadows and their sync
// outbox). They share the queue's badger, hence its encryption key, and are
// kept apart from the queue by their own first byte:
//
//	"k" space 0x00 key -> value   one key of a KV space
//
// The queue never reads or writes "k" keys (its prefixes are m x c r s h),
// and a space name holds no NUL, so two spaces cannot overlap. Values do not
// count towards Options.MaxBytes or the route limits: a space's owner bounds
// its own data (a shadow is at most a few KiB; an offline MQTT session's
// messages, session_max_bytes). The disk's free-space reserve applies: a
// Write that sets a value is refused with ErrFull below it (badger dies
// with SIGBUS on a full disk), as new messages are; deletes go through.
const pKV = 'k'

// ErrKeyNotFound is returned by KV.Get for a key that holds no value.
var ErrKeyNotFound = errors.New("key not found")

// KVOp is one write of a KV batch: Value nil deletes Key.
type KVOp struct {
	Key   string
	Value []byte
}

// KV is one named key space in the queue's database. Write is atomic and
// durable when it returns (one badger transaction, then fdatasync of the
// value log when a value went there, and of the write-ahead log, as the
// queue's own commits: logsync.go, logorder.go). Concurrent Writes commit side by side
// and share their fdatasync: a sync that starts after a commit has returned
// covers it. Get and List see every Write that has returned. Safe for
// concurrent use. Stop using a KV before closing its Queue: after Close its
// methods return ErrClosed.
type KV struct {
	q      *Queue
	prefix []byte

	committed atomic.Uint64 // Writes committed (not yet synced, maybe)

	mu        sync.Mutex // one sync at a time: the log syncers are not shared
	synced    uint64     // Writes made durable: those committed when a sync began
	wal, vlog *logSyncer

	afterCommit func() // tests: runs between a Write's commit and its sync
}

// KV returns the key space named space (1 to 64 bytes, no NUL). Every call
// returns a new handle on the same data.
func (q *Queue) KV(space string) (*KV, error) {
	if space == "" || len(space) > 64 || strings.IndexByte(space, 0) >= 0 {
		return nil, fmt.Errorf("key space %q: %w: want 1 to 64 bytes without NUL", space, ErrInvalid)
	}
	if q.closed.Load() {
		return nil, ErrClosed
	}
	kv := &KV{q: q, prefix: append([]byte{pKV}, space+"\x00"...)}
	var err error
	if kv.wal, kv.vlog, err = newLogSyncers(q.dir); err != nil {
		return nil, fmt.Errorf("key space %q in %q: %w", space, q.dir, err)
	}
	return kv, nil
}

func (kv *KV) key(k string) []byte {
	return append(append(make([]byte, 0, len(kv.prefix)+len(k)), kv.prefix...), k...)
}

// Get returns a copy of the value of key, or an error wrapping ErrKeyNotFound.
func (kv *KV) Get(ctx context.Context, key string) ([]byte, error) {
	if err := kv.check(ctx); err != nil {
		return nil, err
	}
	var v []byte
	err := kv.q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(kv.key(key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("getting %q: %w", key, ErrKeyNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// List returns the keys that start with prefix, in byte order.
func (kv *KV) List(ctx context.Context, prefix string) ([]string, error) {
	if err := kv.check(ctx); err != nil {
		return nil, err
	}
	var keys []string
	pfx := kv.key(prefix)
	err := kv.q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
		defer it.Close()
		for it.Seek(pfx); it.Valid(); it.Next() {
			keys = append(keys, string(it.Item().Key()[len(kv.prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing keys under %q: %w", prefix, err)
	}
	return keys, nil
}

// Write applies ops in order (a later op on the same key wins), all or none,
// and returns once they are durable.
func (kv *KV) Write(ctx context.Context, ops []KVOp) error {
	if err := kv.check(ctx); err != nil {
		return err
	}
	for _, o := range ops {
		if o.Value == nil {
			continue
		}
		if free, err := kv.q.statfs(kv.q.dir); err == nil && free < kv.q.minFree {
			return fmt.Errorf("writing %d keys: %w: %d bytes free in %s, below the reserve of %d; free disk space", len(ops), ErrFull, free, kv.q.dir, kv.q.minFree)
		}
		break
	}
	big := false
	txn := kv.q.db.NewTransaction(true)
	defer txn.Discard()
	for _, o := range ops {
		var err error
		if o.Value == nil {
			err = txn.Delete(kv.key(o.Key))
		} else {
			big = big || len(o.Value) >= valueThreshold
			err = txn.Set(kv.key(o.Key), append([]byte(nil), o.Value...))
		}
		if err != nil {
			return fmt.Errorf("writing %d keys: %w", len(ops), err)
		}
	}
	commit := txn.Commit
	if big {
		commit = func() error { return kv.q.logs.bigCommit(txn.Commit) }
	}
	if err := commit(); err != nil {
		return fmt.Errorf("committing %d keys: %w", len(ops), err)
	}
	if kv.afterCommit != nil {
		kv.afterCommit()
	}
	n := kv.committed.Add(1)
	took, synced, err := kv.syncUpTo(n)
	if synced && kv.q.opts.OnSync != nil {
		kv.q.opts.OnSync(took) // outside kv.mu
	}
	if err != nil {
		return fmt.Errorf("syncing %d keys: %w", len(ops), err)
	}
	return nil
}

// syncUpTo makes Write number n durable: nothing to do when a sync that
// began after its commit covered it, else one sync of the logs covering
// every Write committed so far. It reports whether it synced and how long
// that took.
func (kv *KV) syncUpTo(n uint64) (took time.Duration, synced bool, err error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.synced >= n {
		return 0, false, nil // a sync that began after our commit covered it
	}
	upto := kv.committed.Load()
	start := time.Now()
	// The value log first when a value went there since its last sync, then
	// the WAL; the queue's committer syncs in the same order (logorder.go).
	if err := kv.q.logs.syncWAL(kv.wal, kv.vlog); err != nil {
		return time.Since(start), true, err
	}
	kv.synced = upto
	return time.Since(start), true, nil
}

// Close releases the handle's open log files. The data stays.
func (kv *KV) Close() {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.wal.close()
	kv.vlog.close()
}

func (kv *KV) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if kv.q.closed.Load() {
		return ErrClosed
	}
	return nil
}
