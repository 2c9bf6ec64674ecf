package store

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The store drives badger's compactions itself (badgerOptions: NumCompactors
// 0), so that an idle queue does not wake. Badger v4.9.6's own compactors
// (levels.go runCompactor) each tick every 50 ms for the life of the
// database, whether or not anything was written: two of them were about 40
// wakeups a second of an idle daemon.
//
// What this relies on in badger v4.9.6:
//   - NumCompactors 0 is allowed (1 is refused): Open starts no compactor
//     goroutine, and nothing compacts unless asked.
//   - DB.Flatten(workers) is the one exported way to ask: it stops the
//     compactors (none here), compacts the lowest non-empty level into the
//     next until one level holds everything and that level is within its
//     size target, then starts the compactors again (none). It compacts
//     level 0 whole: every level-0 table is merged into the base level.
//   - A memtable flush waits (the "L0 stall", levels.go addLevel0Table)
//     while level 0 holds NumLevelZeroTablesStall tables or more, and only a
//     compaction ends that wait. With no compactor of badger's own, a wait
//     begun while this driver sleeps would never end; so the stall threshold
//     is set out of reach (l0StallNever) and level 0 is kept short by this
//     driver instead: a flush never waits.
//
// The driver is armed by the work: every synced commit (Options.OnSync,
// queue and KV alike) arms it; armed, it looks at level 0 every
// compactEvery and flattens when it is due (dueL0); it disarms after
// compactQuiet checks with no commit and nothing due. At open it starts
// armed, for what a salvage or an earlier run left. After it disarms, only
// memtables that were already full can still be flushed (NumMemtables in
// badger's flush queue and one being flushed): nothing else writes without
// a commit, and the next commit arms it again. Level 0 is so bounded by
// what is due plus what a flatten's duration lets arrive, never by a wait.
type compactor struct {
	db *badger.DB
	l0 int // NumLevelZeroTables: flatten at this many level-0 tables

	every time.Duration // checks while armed
	quiet int           // checks with no commit before it disarms

	wrote atomic.Bool // a commit since the last check
	armed atomic.Bool
	kick  chan struct{} // cap 1: arm a disarmed driver
	stop  chan struct{}
	done  chan struct{}

	flattening sync.Mutex // one Flatten at a time: badger's is not safe to run twice at once

	checks   atomic.Int64 // level-0 checks made (tests: an idle queue makes none)
	flattens atomic.Int64 // Flatten calls that succeeded
	log      *slog.Logger
}

const (
	compactEvery = 50 * time.Millisecond // as often as badger's own compactors look
	compactQuiet = 20                    // a second without a commit
	// l0StallNever: badger's L0 stall threshold, out of reach (see above).
	l0StallNever = 1 << 30
	// flattenRatio: see dueL0.
	flattenRatio = 2
)

// startCompactor starts the driver on db, armed.
func startCompactor(db *badger.DB, l0 int, log *slog.Logger) *compactor {
	c := &compactor{db: db, l0: l0, every: compactEvery, quiet: compactQuiet,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), log: log}
	c.armed.Store(true)
	go c.run()
	return c
}

// committed tells the driver that a write was committed: it arms it.
func (c *compactor) committed() {
	c.wrote.Store(true)
	if !c.armed.Load() {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// onSync returns an Options.OnSync that arms the driver, then calls next.
func (c *compactor) onSync(next func(time.Duration)) func(time.Duration) {
	return func(d time.Duration) {
		c.committed()
		if next != nil {
			next(d)
		}
	}
}

func (c *compactor) run() {
	defer close(c.done)
	t := time.NewTimer(0)
	defer t.Stop()
	quiet := 0
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
			if c.armed.Load() {
				continue
			}
			c.armed.Store(true)
			quiet = 0
			t.Reset(c.every)
			continue
		case <-t.C:
		}
		if c.wrote.Swap(false) {
			quiet = 0
		} else {
			quiet++
		}
		due := c.check()
		if quiet >= c.quiet && !due {
			c.armed.Store(false)
			// A commit between the Swap above and the Store saw armed true
			// and did not kick: look again.
			if !c.wrote.Load() {
				continue
			}
			c.armed.Store(true)
		}
		t.Reset(c.every)
	}
}

// check flattens when it is due (dueL0) and reports whether it was.
func (c *compactor) check() (due bool) {
	c.checks.Add(1)
	lv := c.db.Levels()
	if !dueL0(lv, c.l0) {
		return false
	}
	if err := c.flatten(1); err != nil {
		c.log.Warn("compacting the queue's level 0 failed; trying again", "tables", lv[0].NumTables, "err", err)
		return true
	}
	c.flattens.Add(1)
	return true
}

// dueL0: level 0 holds at least l0 tables (NumLevelZeroTables) and at
// least 1/flattenRatio of the bytes of the levels below it. Flatten merges
// level 0 into the last level, rewriting it whole (every level-0 table spans
// the queue's meta keys, so it overlaps everything); waiting until level 0
// is that big bounds what a flushed byte costs in rewrites (at most
// flattenRatio+1 times its size) as the queue grows. A 1M-message backlog of
// 100-byte messages wrote 946 bytes per message to storage this way, against
// 1,569 with badger's own two compactors and 1,861 flattening at every two
// tables (BenchmarkStorageCost-like run, encrypted).
func dueL0(lv []badger.LevelInfo, l0 int) bool {
	var below int64
	for _, l := range lv[1:] {
		below += l.Size
	}
	if below == 0 {
		// Flatten leaves a lone level 0 alone unless it is over its
		// target: more than l0 tables (its score above 1).
		return lv[0].NumTables > l0
	}
	return lv[0].NumTables >= l0 && lv[0].Size*flattenRatio >= below
}

// flatten is DB.Flatten, one at a time (badger v4.9.6's Flatten restarts
// the compactors unguarded: two at once race).
func (c *compactor) flatten(workers int) error {
	c.flattening.Lock()
	defer c.flattening.Unlock()
	return c.db.Flatten(workers)
}

// close stops the driver and waits for a running compaction; before the
// database is closed.
func (c *compactor) close() {
	close(c.stop)
	<-c.done
}
