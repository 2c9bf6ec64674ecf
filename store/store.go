// Package store is edgegw's durable offline queue: messages a sensor got a
// PUBACK for live here, synced to disk, until the upstream broker acknowledges
// them (or a configured limit drops them, counted).
//
// It is the only package that imports badger, and it imports nothing from
// this module (the gateway translates its config into Options/RouteLimits).
//
// Layout in badger (all integers big-endian, so keys sort numerically):
//
//	"g" route-id(4) last(8) first(8) -> messages a segment: one route's messages of one commit (segment.go)
//	"d" route-id(4) seq(8)  -> ""                a message removed out of order (until the head passes it)
//	"m" route-id(4) seq(8)  -> message           the old format, one entry per message: migrated at Open
//	"x" route-id(4) seq(8)  -> reason + message  dead letters
//	"c" route-id(4)         -> meta              head seq, last seq, count, bytes, dead count, dead bytes
//	"r" route-name          -> route-id          route registry
//	"s"                     -> seq               sequence high-water mark (reserved in blocks)
//	"h" route-id(4)         -> seq               head cursor of queues written before the meta (read once)
//
// Open repairs the states a crash leaves in badger v4.9.6's files that badger
// refuses or mishandles (repair.go explains each) and salvages a queue it
// cannot read (salvage.go); the value log is synced before the write-ahead
// log, by the committer and every KV handle alike (logorder.go), so that no
// durable WAL entry points past the value log's end (badger v4.9.6 reads
// such a value back as empty, with no error).
//
// Badger's compactions are driven by the store (compact.go), not by
// badger's own compactor goroutines, which tick every 50 ms for ever: with
// NumCompactors 0 badger v4.9.6 compacts nothing by itself, DB.Flatten is
// the one exported way to compact, and a memtable flush would wait for
// ever once level 0 reaches NumLevelZeroTablesStall, so that threshold is
// out of reach and the store keeps level 0 short after writes instead.
//
// Beside the directory, "<dir>.seq" repeats the sequence high-water mark
// outside badger (seqfile.go): a queue moved aside as corrupt, or removed,
// is followed by one whose sequence numbers continue above the old ones.
//
// Every commit is one synced badger transaction that carries, with the
// messages it adds (one segment per route) and removes (a head moved, a
// marker), the meta of the routes it changes: after a crash the meta agrees
// with the data, and Open reads O(routes) records, not the messages
// (segment.go; a queue of the old one-entry-per-message format is migrated
// by Open first). In memory a route keeps only its forwarding window (read
// ahead, handed out and unacked, deletes not yet committed), bounded by the
// bridge's in-flight window. Next reads ahead from a cursor; seeks start at
// the persisted head, so they do not walk the tombstones of acked messages.
// The segments the committer writes are remembered per route (at most
// segTrackMax), so a head's move deletes the ones it passed without reading
// badger; what lies below them (written before Open, or brought back by
// value-log GC) is looked up with an iterator as before.
// Order comes from sequence numbers only; message times are advisory and
// used for max-age only when the clock is sane.
package store

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Message is one queued MQTT publication.
type Message struct {
	Route   string // route name (config), the queue it lives in
	Topic   string // local topic as published
	Payload []byte
	QoS     byte
	Retain  bool
	Device  string // publisher thing name
	Seq     uint64 // assigned by Enqueue, monotonically increasing across restarts
	Time    int64  // unix nanoseconds at enqueue (advisory: age checks only when the clock is sane)
}

// Overflow is what a route does when a new message would exceed its limits.
type Overflow int

const (
	// DropOldest drops the oldest messages of the route to make room (counted
	// with reason "overflow-count" or "overflow-bytes"). The default.
	DropOldest Overflow = iota
	// Reject refuses the new message with ErrQuota (the sensor gets no PUBACK).
	Reject
)

func (o Overflow) String() string {
	if o == Reject {
		return "reject"
	}
	return "drop-oldest"
}

// RouteLimits are the per-route limits. Zero means unlimited.
type RouteLimits struct {
	Name        string
	MaxBytes    int64
	MaxMessages int64
	MaxAge      time.Duration
	Overflow    Overflow
	Priority    int // higher drains first
}

// ReasonDamaged is the dead-letter reason of a queued message whose record
// does not read (Next moves it aside and goes on; DeadLetters returns its
// bytes as the payload).
const ReasonDamaged = "damaged-record"

// Drop reasons passed to OnDrop and counted in Stats.
const (
	ReasonOverflowBytes = "overflow-bytes"
	ReasonOverflowCount = "overflow-count"
	ReasonMaxAge        = "max-age"
	ReasonPurged        = "purged"
)

// Options configure Open. Only Dir is required.
type Options struct {
	Dir    string
	Routes []RouteLimits
	// MaxBytes caps the whole queue (live messages and dead letters); 0 = no cap.
	MaxBytes int64
	// MinFreeBytes is the fixed free-space reserve (statfs): new messages get
	// ErrFull below it plus 1.5 x the size of badger's tables (see
	// badgerReserve: a full disk kills the process with SIGBUS inside badger).
	// It is never less than what badger may write on its own: 29 MiB with
	// this store's badger options (36.5 MiB on 32-bit; badgerReserve).
	MinFreeBytes uint64
	// EncryptionKey, when set, must be 32 bytes (AES-256).
	EncryptionKey []byte
	Logger        *slog.Logger
	// OnDrop is called (outside any lock) for every drop, n messages at a time.
	OnDrop func(route, reason string, n int)
	// OnSync, when set, is called with the duration of every group-commit
	// fdatasync: of a commit that stored messages (a commit of deletes
	// alone is not synced) and of a KV Write. It is called outside any lock
	// of the queue, from the committer or the KV writer, before the callers
	// that waited for that sync return; it must be quick and safe for
	// concurrent use (a histogram's Observe). A failed sync is reported too:
	// its latency is as telling as a good one's.
	OnSync func(time.Duration)
	// Clock defaults to time.Now. Message ages are judged only when it returns
	// a time after SaneAfter.
	Clock func() time.Time
	// Statfs returns the bytes available to us on the filesystem holding dir;
	// defaults to statfs(2). Tests inject it.
	Statfs func(dir string) (uint64, error)
	// EnforceInterval is how often max-age and lowered limits are applied
	// (default 5s). GCInterval is the value-log GC period (default 5m).
	EnforceInterval time.Duration
	GCInterval      time.Duration
	// MaxBatch bounds the messages written per synced commit (default 4096).
	MaxBatch int
	// KeepCorrupt makes Open return the error of a damaged queue instead of
	// moving it aside and salvaging it (inspection tools must not move what
	// they inspect). The crash repairs (repair.go) are still made: without
	// them badger cannot read the files at all, and badger's own Open
	// changes them too (it cuts torn log tails, starts a value-log file).
	KeepCorrupt bool
}

// reopenDelay: the pause before the second attempt to open a queue that
// looked damaged.
var reopenDelay = 500 * time.Millisecond

// MinReserve is the least free-space reserve, whatever the options say; the
// reserve in effect is also never below what badger may write on its own
// (badgerReserve).
const MinReserve = 16 << 20

// The disk-full guard. Badger writes through mmapped files: when the
// filesystem fills, the write faults and the process dies with SIGBUS (in a
// compaction, a memtable flush, value-log GC), no error to handle. So the
// queue keeps enough free space for everything badger may write after the
// last message it accepted:
//
//   - the fixed reserve (badgerReserve, from the actual options): the active
//     write-ahead log filling up and a flush of every memtable, each SST no
//     larger than its memtable: (NumMemtables+2) x MemTableSize; value-log
//     GC, which rewrites up to one value-log file before it deletes one;
//     the output tables of the running compactions; the DISCARD file, a
//     MANIFEST rewrite, the key registry and directory blocks;
//   - 1.5 x the SSTs' bytes (lsmSize): a compaction writes its output
//     before it deletes its input, and in the worst case its input is a
//     whole level (a table from level n spanning every key overlaps all of
//     level n+1); compactions running together have disjoint inputs, so
//     all of them together rewrite at most the whole tree. The half on top
//     is for what tombstones add (acks keep writing) and table overheads.
//
// New messages are refused (ErrFull) below the watermark: fixed reserve +
// 1.5 x SSTs + 2 x the batch. Below the fixed reserve alone, deletes and
// dead letters wait in memory and value-log GC is skipped.
func badgerReserve(o badger.Options) uint64 {
	return uint64(o.NumMemtables+2)*uint64(o.MemTableSize) +
		uint64(o.ValueLogFileSize) +
		uint64(max(o.NumCompactors, 1))*uint64(o.BaseTableSize) + // compact.go flattens with one worker
		8<<20
}

// MaxMessageBytes bounds one encoded message.
const MaxMessageBytes = 4 << 20

// SaneAfter: a clock before this is not trusted to judge ages (a Pi without
// RTC boots in 1970). Tests may lower it.
var SaneAfter = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	// ErrFull: the disk watermark or the queue byte cap is reached.
	ErrFull = errors.New("queue full")
	// ErrQuota: the route is at its limit and its overflow policy is reject.
	ErrQuota = errors.New("route quota exceeded")
	// ErrClosed: the queue is closed.
	ErrClosed = errors.New("queue closed")
	// ErrLocked: another process (the daemon) has the queue open.
	ErrLocked = errors.New("queue is locked by another process")
	// ErrWrongKey: the encryption key does not match the queue on disk (or the
	// queue is encrypted and no key was given, or the other way round).
	ErrWrongKey = errors.New("queue encryption key does not match")
	// ErrInvalid: the message or options are unusable.
	ErrInvalid = errors.New("invalid")
)

// Queue is the durable queue. All methods are safe for concurrent use.
type Queue struct {
	opts    Options
	dir     string
	db      *badger.DB
	log     *slog.Logger
	clock   func() time.Time
	statfs  func(string) (uint64, error)
	minFree uint64     // the fixed reserve: max(MinFreeBytes, badgerReserve)
	compact *compactor // drives badger's compactions (compact.go)

	reqs       chan *pending
	kick       chan struct{}
	opsWait    chan struct{} // a write was queued for the next commit (queueOp): arm the ack flush
	ackFlushes atomic.Uint64 // ack flushes the committer's timer made (tests: none while idle)
	lingers    atomic.Uint64 // commits that waited for company (gather)
	closing    chan struct{}
	stopped    chan struct{}
	gcDone     chan struct{}
	closeOnce  sync.Once
	closed     atomic.Bool
	dbClosed   atomic.Bool
	closeErr   error

	mu        sync.Mutex
	routes    map[string]*route
	byID      map[uint32]*route
	order     []*route // priority desc, id asc
	nextID    uint32
	nextSeq   uint64
	hwm       uint64
	visible   uint64 // highest seq synced and visible to Next
	readBack  uint64 // messages fillLocked read back from badger (tests)
	opsHint   int    // ops the last commit took: the next queue's capacity
	spareOps  []op   // the array of a committed commit's ops, for queueOp to reuse
	segBuf    []byte // the committer's segment values, reused
	bytes     int64  // live + dead letters
	ops       []op   // writes (acks, purges, drops) waiting for the committer
	wake      chan struct{}
	drops     []dropEvent
	rejected  map[string]uint64
	free      uint64
	watermark uint64 // at the last commit: minFree + 1.5 x lsm
	holdAt    time.Time
	fullAt    time.Time
	fullSupp  int
	movedTo   string
	report    OpenReport // what Open repaired and salvaged
	writeErr  error      // of the last commit that failed; nil after one succeeds
	failErr   error      // the last commit's write or sync error (Err); nil after one succeeds

	failWrite atomic.Pointer[error] // tests: while set, every commit's write fails with it

	purgeMu sync.Mutex // one Purge at a time (its scan and its deletes)

	// badger's SST bytes (lsmSize), the committer's
	lsmBytes, lsmSince uint64
	lsmAt              time.Time

	// committer scratch, reused between commits
	pre, sets []op
	arena     []byte
	// walSync, vlogSync: the committer's fdatasync of badger's logs
	walSync, vlogSync *logSyncer
	// logs: the value log before the WAL, across the committer and the
	// KV handles (logorder.go)
	logs logOrder
}

type route struct {
	id         uint32
	name       string
	lim        RouteLimits
	configured bool

	// The in-memory view: ahead of disk by the deletes not yet committed.
	depth, bytes    int64
	dead, deadBytes int64
	last            uint64 // highest seq enqueued (0: none)

	// disk is the meta as badger holds it after the committed transactions.
	disk      meta
	metaDirty bool      // write the meta with the next commit
	passMore  bool      // the head passed more markers or segments than a commit deletes
	passFrom  uint64    // no segment with a lower last seq is left (0: look from the start)
	segs      []segSpan // the segments written since trackFrom, not yet deleted, in seq order
	trackFrom uint64    // every segment with a last seq from it on is in segs (noTrack: none)
	touched   bool      // in the transaction being built

	// The forwarding window, bounded by the bridge's in-flight window and
	// pushMax: never one entry per queued message. Every message below
	// cursor is read ahead, handed out (inflight) or removed.
	cursor    uint64              // next seq to read from badger
	ahead     []aheadMsg          // read ahead, not handed out, seq order
	aheadArr  []aheadMsg          // ahead's array from its start (appendAhead)
	aheadSize int                 // bytes of the values in ahead
	inflight  []flight            // handed out, not acked, seq order
	flightArr []flight            // inflight's array from its start (handOut)
	names     names               // topics and devices Next handed out (interned)
	deleting  map[uint64]struct{} // deletes queued, not committed: reads skip them
	marks     []uint64            // removal markers on disk, seq order (segment.go)
	rdr       *segReader          // the segment fillLocked reads from
	delPeak   int
	delMax    uint64 // no seq above it is in deleting

	// lifetime counters (Stats), ahead of meta.life by what is not committed
	enqueued, acked        uint64
	deadLettered, rejected uint64
	drops                  map[string]uint64
}

type aheadMsg struct {
	seq uint64
	val []byte
}

type flight struct {
	seq  uint64
	size int64
}

func newRoute(name string, lim RouteLimits) *route {
	return &route{name: name, lim: lim, drops: map[string]uint64{}, deleting: map[uint64]struct{}{}, trackFrom: noTrack}
}

// segSpan is a segment's first and last seq (its key: segKey).
type segSpan struct{ first, last uint64 }

// noTrack: a route's segments are not tracked (trackFrom); segTrackMax
// bounds how many are (a backlog of single-message commits would otherwise
// keep one per message in memory).
const (
	noTrack     = ^uint64(0)
	segTrackMax = 1024
)

// trackSeg notes segment key, just committed, in rt.segs. A route's
// segments are committed in seq order, and only by the committer once the
// queue is open, so tracking may start at any commit (the segments written
// before it have lower seqs); passedLocked reads badger for what lies
// below trackFrom. Over segTrackMax tracking stops, and starts again with
// the next commit: rt.segs is dropped, and what is below the new trackFrom
// is read from badger when the head passes it.
func (rt *route) trackSeg(key []byte) {
	_, first, last, ok := parseSegKey(key)
	if !ok {
		return
	}
	if rt.trackFrom == noTrack {
		rt.trackFrom, rt.segs = first, rt.segs[:0]
	}
	if len(rt.segs) >= segTrackMax {
		rt.trackFrom, rt.segs = noTrack, nil
		return
	}
	rt.segs = append(rt.segs, segSpan{first, last})
}

// segsBelow is how many of rt.segs have a last seq below head: the first
// ones (rt.segs is in seq order).
func (rt *route) segsBelow(head uint64) int {
	k := 0
	for k < len(rt.segs) && rt.segs[k].last < head {
		k++
	}
	return k
}

// dropSegs takes the segments with a last seq below head out of rt.segs
// (deleted with the commit just written).
func (rt *route) dropSegs(head uint64) {
	if k := rt.segsBelow(head); k > 0 {
		rt.segs = append(rt.segs[:0], rt.segs[k:]...)
	}
}

// headSeq: no live message of rt has a lower seq.
func (rt *route) headSeq() uint64 {
	h := rt.cursor
	if len(rt.ahead) > 0 {
		h = min(h, rt.ahead[0].seq)
	}
	if len(rt.inflight) > 0 {
		h = min(h, rt.inflight[0].seq)
	}
	return h
}

func (rt *route) findInflight(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(rt.inflight, seq, func(f flight, s uint64) int { return cmp.Compare(f.seq, s) })
}

// handOut adds seq to the window. Acks slice the window's front off
// (dropInflight), so its array fills up from the back: once the window is at
// most half of the array it moves back to the array's start (a copy of the
// window) instead of growing a new array, so a steady window allocates
// nothing (it allocated about once per message with a window of one).
func (rt *route) handOut(seq uint64, size int64) {
	i, ok := rt.findInflight(seq)
	if ok {
		return
	}
	if n := len(rt.inflight); n == cap(rt.inflight) && n <= cap(rt.flightArr)/2 {
		rt.inflight = append(rt.flightArr[:0], rt.inflight...) // memmove: the window lies behind the start
	}
	rt.inflight = slices.Insert(rt.inflight, i, flight{seq, size})
	if !sameEnd(rt.inflight, rt.flightArr) {
		rt.flightArr = rt.inflight[:0] // a new array, the window at its start
	}
}

// sameEnd says whether a and b end at the same element of the same array
// (a slice of the other's front cut off does).
func sameEnd[T any](a, b []T) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:cap(a)][cap(a)-1] == &b[:cap(b)][cap(b)-1]
}

// dropInflight takes seq out of the window. Acks come mostly in order: the
// oldest is sliced off the front (no copy; append reuses or regrows the
// array), any other is deleted in place.
func (rt *route) dropInflight(seq uint64) {
	i, ok := rt.findInflight(seq)
	switch {
	case !ok:
	case i == 0:
		rt.inflight = rt.inflight[1:]
	default:
		rt.inflight = slices.Delete(rt.inflight, i, i+1)
	}
}

func (rt *route) findAhead(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(rt.ahead, seq, func(a aheadMsg, s uint64) int { return cmp.Compare(a.seq, s) })
}

// appendAhead adds a to the read-ahead, keeping aheadArr on its array.
func (rt *route) appendAhead(a aheadMsg) {
	rt.ahead = append(rt.ahead, a)
	if !sameEnd(rt.ahead, rt.aheadArr) {
		rt.aheadArr = rt.ahead[:0] // a new array, the read-ahead at its start
	}
}

// emptyAhead: Next took the last message read ahead (slicing each off the
// front). The next commit's messages go to the array's start again rather
// than into a new array grown from nothing (several allocations a commit);
// an array grown by a backlog (up to pushMax) is let go.
func (rt *route) emptyAhead() {
	if cap(rt.aheadArr) <= aheadKeep {
		rt.ahead = rt.aheadArr[:0]
	} else {
		rt.ahead, rt.aheadArr = nil, nil
	}
}

// aheadKeep is the largest read-ahead array emptyAhead keeps.
const aheadKeep = 256

func (rt *route) dropAhead(seq uint64) {
	i, ok := rt.findAhead(seq)
	switch {
	case !ok:
		return
	case i == 0: // a drop-oldest: no copy of up to pushMax entries
		rt.aheadSize -= len(rt.ahead[0].val)
		rt.ahead[0] = aheadMsg{}
		rt.ahead = rt.ahead[1:]
	default:
		rt.aheadSize -= len(rt.ahead[i].val)
		rt.ahead = slices.Delete(rt.ahead, i, i+1)
	}
}

// op is one write of a transaction, and what it changes in its route's meta.
type op struct {
	rt                                *route // nil: not a route's data (registry, sequence mark, meta)
	key, val                          []byte // key nil: a message's removal, written as the head or a marker
	del                               bool
	mark                              int8 // +1 writes rt's marker seq, -1 deletes it
	cancel                            bool // a message dropped within its own batch: not written
	life                              int8 // 1 + the meta.life counter this op adds one to; 0: none
	seq                               uint64
	prev                              uint64 // a set: its route's last seq before it
	dCount, dBytes, dDead, dDeadBytes int64
}

type dropEvent struct {
	route, reason string
	n             int
}

type pending struct {
	m       Message
	size    int
	est     int  // badger's estimate of its entry
	barrier bool // no message: released when what was queued before it is written
	seq     uint64
	err     error
	done    chan struct{}
}

var pendingPool = sync.Pool{New: func() any { return &pending{done: make(chan struct{}, 1)} }}

const seqBlock = 1 << 16

// Badger sizing (see badgerOptions). valueThreshold: values this big go to
// badger's value log, smaller ones stay in the LSM tree (and its WAL).
var memTableSize, baseTableSize, blockSize, valueThreshold = badgerSizing(strconv.IntSize)

// valueLogFileSize is the size of one value-log file (the crash soak lowers
// it to rotate often).
var valueLogFileSize int64 = 16 << 20

// On 32-bit, ristretto's z.Allocator (v2.2.0 to at least v2.4.2) corrupts
// memory once a table builder outgrows its first buffer: Allocate stores
// uint64((bufIdx+1)<<32), shifted in a 32-bit int, that is 0, and hands the
// first buffer out again. The SST being built is garbled and the next read
// panics in table.(*Table).block or blockIterator.setIdx (slice bounds out of
// range), in a compaction goroutine: nothing can recover. The fix upstream is
// one line (uint64(bufIdx+1)<<32). What a builder takes from its allocator
// (TestSizingBuilderFitsFirstBuffer measures it with badger's own builder):
// a compaction's builder adds entries until ReachedCapacity, 0.95 x the
// table size counted in encrypted bytes, and every block is allocated twice
// (BlockSize + 256 bytes, then its encrypted copy), so 2.0 to 2.1 x the table
// size, plus the blocks the 2 x NumCPU encrypting goroutines have not
// counted yet (up to 6 x NumCPU blocks); a memtable flush builds the whole
// memtable into one table, whatever the capacity. The first buffer is
// NewAllocator's 2 x TableSize rounded up to a power of two: with the 8 MiB
// tables this profile had, 16 MiB for 16.2-16.6 MiB of blocks, 0.2-0.5 MiB
// to spare before any lag (about 0.8 MiB of it on a 4-core Pi under load).
// So on 32-bit the table size is 4.5 MiB: the first buffer is still 16 MiB
// (9 rounded up), a compaction's builder takes about 9.5 MiB of it and a
// flush of a 2 MiB memtable about 4.5, which leaves room for the lag of 8
// cores. Every table size equal (TableSizeMultiplier 1 in badgerOptions);
// values over 8 KiB in the value log; blocks of 16 KiB.
//
// On 64-bit the sizes are for peak memory (issue 17), where badger's table
// builders are most of the Go heap in a burst: a builder that outgrows its
// first buffer takes a second one twice its size, up to 8 + subcompactions
// of them run at once, and badger's AllocatorPool keeps up to 8 allocators,
// buffers and all, for seconds after. Memtables of 1 MiB (arenas of 1.3
// MiB, NumMemtables 2 plus the one being flushed). Tables of 1 MiB + 64
// KiB: the first buffer is 4 MiB (2.125 rounded up), and a flush's builder
// takes 2.2-3.2 MiB of it, a compaction's 2.3-4.1 (with 2 MiB tables a
// compaction's took 4.3-7.2 MiB of a 4 MiB buffer: 4 + 8 MiB each). Blocks
// of 64 KiB, the value threshold: a segment (one commit's messages of a
// route, up to the threshold) larger than a block had its block allocated
// again at twice the size (16 KiB blocks: 16 + 32.5 + 27 KiB of allocations
// for a 27 KiB segment). Measured (BenchmarkEdgegwVsMosquittoPaho's edgegw,
// 100,000 messages, rmax 20, 3 rounds; peak RSS at 1/4/16 publishers): 2 MiB
// memtables and tables, 16 KiB blocks 58-64/60-63/64-71 MiB; this 44-46/
// 47-50/52-59 MiB; 2 MiB tables 45-48/47-51/52-53, with 16 KiB blocks
// 60-67 at 16. CPU per message: within the noise of the shared machine,
// up to 1 µs more at 16 publishers. BenchmarkBacklogMemory (200,000
// queued, then drained) peak-go-MiB: 92-107 against 107-149 (2 MiB
// memtables and tables) and 137-175 (2 MiB tables). 512 KiB memtables were
// no better than 1 MiB and halve the transaction budget (txnBudget).
//
// A function, not init: txnBudget and txnMaxEntries are derived from
// memTableSize by package initialization, which runs before init.
func badgerSizing(intSize int) (memTable, baseTable int64, block, threshold int) {
	if intSize == 32 {
		return 2 << 20, 9 << 19, 16 << 10, 8 << 10
	}
	return 1 << 20, 17 << 16, 64 << 10, 64 << 10
}

// Open opens (or creates) the queue in opts.Dir. First it repairs, with no
// help, what a crash (kill -9 or a power cut) can leave in badger's files
// that badger itself refuses (repair.go): each repair is logged at Warn and
// listed by OpenReport. A queue that badger still cannot open, or whose
// index records do not read, is moved aside to "<dir>.corrupt-<n>", logged at
// Error, and every readable message and dead letter is copied into a fresh
// queue in its place with its route, sequence number and order (salvage.go;
// OpenReport().Salvage counts them, Stats().CorruptMovedTo says where). Its
// sequence numbers continue above the old queue's ("<dir>.seq"). A lock held
// by another process (ErrLocked) and a wrong key (ErrWrongKey) are returned
// as errors: they are not corruption. With KeepCorrupt the repairs are still
// made (they are what badger needs to read the files at all) but nothing is
// moved aside: the error is returned.
func Open(opts Options) (*Queue, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("opening queue: %w: no directory", ErrInvalid)
	}
	if n := len(opts.EncryptionKey); n != 0 && n != 32 {
		return nil, fmt.Errorf("opening queue %q: %w: encryption key is %d bytes, want 32 (AES-256)", opts.Dir, ErrInvalid, n)
	}
	q := newQueue(opts)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening queue %q: %w", opts.Dir, err)
	}
	// The sequence mark beside the queue: read before anything may move the
	// queue aside (seqfile.go).
	seqFloor, serr := readSeqFile(seqPath(opts.Dir))
	if serr != nil {
		q.log.Error("sequence mark beside the queue is unreadable; using the queue's own", "err", serr)
	}
	if err := q.openDB(seqFloor); err != nil {
		return nil, fmt.Errorf("opening queue %q: %w", opts.Dir, err)
	}
	if seqFloor > q.nextSeq {
		q.nextSeq, q.hwm, q.visible = seqFloor, seqFloor, seqFloor-1
	}
	q.SetRoutes(opts.Routes)
	if free, err := q.statfs(q.dir); err == nil {
		q.free = free
	}
	q.compact = startCompactor(q.db, q.badgerOptions().NumLevelZeroTables, q.log)
	q.opts.OnSync = q.compact.onSync(q.opts.OnSync) // a commit arms the compactions
	go q.run()
	go q.gc()
	q.log.Info("queue opened", "dir", opts.Dir, "messages", q.depthLocked(), "next_seq", q.nextSeq,
		"encrypted", len(opts.EncryptionKey) > 0)
	return q, nil
}

// newQueue is a Queue for opts with every default filled in, nothing
// opened yet.
func newQueue(opts Options) *Queue {
	q := &Queue{
		opts:     opts,
		dir:      opts.Dir,
		log:      opts.Logger,
		clock:    opts.Clock,
		statfs:   opts.Statfs,
		reqs:     make(chan *pending, 4096),
		kick:     make(chan struct{}, 1),
		opsWait:  make(chan struct{}, 1),
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
		gcDone:   make(chan struct{}),
		routes:   map[string]*route{},
		byID:     map[uint32]*route{},
		wake:     make(chan struct{}),
		rejected: map[string]uint64{},
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	q.log = q.log.With("component", "store")
	if q.clock == nil {
		q.clock = time.Now
	}
	if q.statfs == nil {
		q.statfs = statfs
	}
	if q.opts.EnforceInterval <= 0 {
		q.opts.EnforceInterval = 5 * time.Second
	}
	if q.opts.GCInterval <= 0 {
		q.opts.GCInterval = 5 * time.Minute
	}
	if q.opts.MaxBatch <= 0 {
		q.opts.MaxBatch = 4096
	}
	q.minFree = max(opts.MinFreeBytes, MinReserve, badgerReserve(q.badgerOptions()))
	q.watermark = q.minFree
	return q
}

// openDB opens badger (repairing what a crash left), the log syncers, and
// reads the index, salvaging the queue into a new one when badger reads a
// registry or sequence record we cannot. On error nothing stays open.
func (q *Queue) openDB(seqFloor uint64) error {
	db, err := q.openBadger(seqFloor)
	if err != nil {
		return classify(err)
	}
	q.db = db
	if err := q.openSyncers(); err != nil {
		db.Close()
		return err
	}
	err = q.load()
	if err == nil {
		if err = q.migrate(); err != nil {
			db.Close()
			return err
		}
		return nil
	}
	db.Close()
	if q.opts.KeepCorrupt || !errors.Is(err, errBadRecord) {
		return fmt.Errorf("reading index: %w", err)
	}
	// A registry or sequence record badger reads but we cannot: salvage.
	q.resetIndex()
	if db, err = q.salvageInto(seqFloor, fmt.Errorf("reading index: %w", err)); err == nil {
		q.db = db
		// The syncers still follow the moved queue's files; the new queue
		// numbers its own from the start, and commits must sync those.
		if err = q.openSyncers(); err == nil {
			if err = q.load(); err == nil {
				err = q.migrate()
			}
		}
	}
	if err != nil && db != nil {
		db.Close()
	}
	return err
}

// openSyncers (re)opens the log syncers on the queue's current files.
func (q *Queue) openSyncers() error {
	for _, s := range []*logSyncer{q.walSync, q.vlogSync} {
		if s != nil {
			s.close()
		}
	}
	var err error
	q.walSync, q.vlogSync, err = newLogSyncers(q.dir)
	return err
}

// openBadger repairs what a crash can leave in the queue's files
// (repair.go) and opens badger on them. A queue that still cannot be opened
// is tried once more, then moved aside and salvaged into a new one
// (salvageInto); with KeepCorrupt its error is returned instead.
func (q *Queue) openBadger(seqFloor uint64) (*badger.DB, error) {
	db, err := q.repairAndOpen()
	if err != nil && !q.opts.KeepCorrupt && isCorrupt(err) {
		// A second attempt before giving up on the data: an error that goes
		// away (memory, an interrupted call, a file badger was still
		// closing) is not damage.
		q.log.Warn("queue could not be opened; trying once more before moving it aside", "dir", q.dir, "err", err)
		time.Sleep(reopenDelay)
		db, err = q.repairAndOpen()
	}
	if err != nil && !q.opts.KeepCorrupt && isCorrupt(err) {
		return q.salvageInto(seqFloor, err)
	}
	return db, err
}

func (q *Queue) repairAndOpen() (*badger.DB, error) {
	reps, err := repairDir(q.dir)
	for _, r := range reps {
		q.log.Warn("queue file repaired after a crash", "dir", q.dir, "kind", string(r.Kind), "file", r.File,
			"size", r.Size, "did", r.Did)
	}
	q.report.Repairs = append(q.report.Repairs, reps...)
	if err != nil {
		return nil, err
	}
	return openDB(q.badgerOptions())
}

// salvageInto moves the queue that cannot be read (why) aside, opens a new
// one in its place and copies every readable record into it (salvage.go).
func (q *Queue) salvageInto(seqFloor uint64, why error) (*badger.DB, error) {
	moved, err := moveAside(q.dir)
	if err != nil {
		return nil, fmt.Errorf("%w (and moving it aside failed: %v)", why, err)
	}
	q.report.MovedTo, q.movedTo = moved, moved
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return nil, err
	}
	db, err := openDB(q.badgerOptions())
	if err != nil {
		return nil, err
	}
	rep, err := salvage(db, moved, q.badgerOptions())
	q.report.Salvage = rep
	if err != nil {
		db.Close()
		return nil, err
	}
	q.log.Error("queue could not be read; moved aside, its readable messages salvaged into a new queue",
		"dir", q.dir, "moved_to", moved, "err", why, "salvaged", rep.Messages, "dead_letters", rep.DeadLetters,
		"lost", rep.Lost, "salvage_err", rep.Err, "next_seq_at_least", seqFloor)
	return db, nil
}

// resetIndex forgets what a failed load read.
func (q *Queue) resetIndex() {
	q.routes, q.byID, q.order = map[string]*route{}, map[uint32]*route{}, nil
	q.nextID, q.nextSeq, q.hwm, q.visible, q.bytes = 0, 0, 0, 0, 0
}

// OpenReport says what Open repaired, moved aside and salvaged (the same
// for the life of the Queue).
func (q *Queue) OpenReport() OpenReport {
	r := q.report
	r.Repairs = slices.Clone(r.Repairs)
	return r
}

func (q *Queue) badgerOptions() badger.Options {
	o := badger.DefaultOptions(q.dir).
		WithSyncWrites(false). // the committer fdatasyncs the logs itself, once per group commit (logsync.go)
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(l0StallNever). // the store compacts, not badger (compact.go)
		WithBaseTableSize(baseTableSize).
		WithBlockSize(blockSize).
		WithBaseLevelSize(8 << 20).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(int64(valueThreshold)).
		WithBlockCacheSize(1 << 20). // decrypted blocks: 16 of 64 KiB (64 of 16 KiB on 32-bit), plenty for reads that follow the queue's heads
		WithIndexCacheSize(2 << 20). // required with encryption, or the second open panics
		WithNumCompactors(0).        // compact.go drives them: no 50 ms ticks while idle
		WithCompression(options.None).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithEncryptionKey(q.opts.EncryptionKey).
		WithLogger(badgerLogger{q.log}) // Warn and up; WithLoggingLevel would replace it
	// Every table the same size: a compaction's table builders hold about
	// 2 x BaseTableSize each (the default multiplier 2 doubles it per level:
	// 140 MiB of builders at the end of a 1M-message fill), and on 32-bit a
	// builder must never outgrow its first buffer (see init).
	o.TableSizeMultiplier = 1
	return o
}

// openDB opens badger with o, turning its panics on damaged files into
// errors. Write-ahead logs (".mem") left by a crash of a build with larger
// memtables (a queue before an upgrade: 2 MiB memtables before 1 MiB, 8
// before 2) are first replayed at the size that wrote them: badger v4.9.6
// replays a WAL into an arena of the current MemTableSize (memtable.go
// openMemTable, db.go arenaSize), and a fuller one fails an assertion in
// skl/arena.go that exits the process (y.AssertTruef: log.Fatalf), which
// no recover catches. A WAL file is 2 x the MemTableSize that made it
// (logFile.open), so the largest on disk tells; opened at that size and
// closed, badger flushes them to tables, and the queue opens at its own.
func openDB(o badger.Options) (*badger.DB, error) {
	if n := walMemTableSize(o.Dir); n > o.MemTableSize {
		db, err := openBadgerOnce(o.WithMemTableSize(n))
		if err != nil {
			return nil, err
		}
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("flushing write-ahead logs of %d-byte memtables: %w", n, err)
		}
	}
	return openBadgerOnce(o)
}

// walMemTableSize is the memtable size the largest write-ahead log in dir
// was made for (half its size), 0 when there is none.
func walMemTableSize(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n = max(n, fi.Size()/2)
		}
	}
	return n
}

// openBadgerOnce is badger.Open with its panics turned into errors.
func openBadgerOnce(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked: %v", r)
		}
	}()
	return badger.Open(o)
}

func isLockErr(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) ||
		strings.Contains(err.Error(), "Cannot acquire directory lock")
}

func isKeyErr(err error) bool {
	return errors.Is(err, badger.ErrEncryptionKeyMismatch) || errors.Is(err, badger.ErrInvalidEncryptionKey)
}

func classify(err error) error {
	switch {
	case isLockErr(err):
		return fmt.Errorf("%w: %v", ErrLocked, err)
	case isKeyErr(err):
		return fmt.Errorf("%w: %v", ErrWrongKey, err)
	}
	return err
}

// isCorrupt says whether an Open error means damaged files. A held lock, a
// wrong key and environmental failures (permissions, full or read-only disk,
// I/O errors, memory) are not: moving the queue aside would lose data.
func isCorrupt(err error) bool {
	if isLockErr(err) || isKeyErr(err) {
		return false
	}
	for _, e := range []error{fs.ErrPermission, fs.ErrNotExist, syscall.ENOSPC, syscall.EROFS,
		syscall.EIO, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE, syscall.ENOTDIR, syscall.EINTR,
		syscall.EBUSY, syscall.EDQUOT, syscall.EFBIG, syscall.ENODEV} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

func moveAside(dir string) (string, error) {
	dir = strings.TrimRight(dir, "/")
	for n := 1; n < 1000; n++ {
		to := fmt.Sprintf("%s.corrupt-%d", dir, n)
		if _, err := os.Lstat(to); err == nil {
			continue
		}
		return to, os.Rename(dir, to)
	}
	return "", errors.New("too many corrupt queues beside it; remove some")
}

func statfs(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}

// SetRoutes installs new limits (a reload). A route that is no longer listed
// keeps its backlog and its last limits and priority: Next still hands its
// messages out (they were acknowledged to a sensor), until they are acked or
// purged; Stats shows it with Configured false. Lowered limits are applied by
// the next enforcement tick (drop-oldest routes drop, counted).
func (q *Queue) SetRoutes(lims []RouteLimits) {
	q.mu.Lock()
	defer q.mu.Unlock()
	seen := map[string]bool{}
	for _, l := range lims {
		seen[l.Name] = true
		if rt := q.routes[l.Name]; rt != nil {
			rt.lim, rt.configured = l, true
			continue
		}
		rt := newRoute(l.Name, l)
		rt.configured = true
		q.routes[l.Name] = rt
	}
	for name, rt := range q.routes {
		if !seen[name] {
			rt.configured = false
		}
	}
	q.sortLocked()
	q.signalLocked()
}

func (q *Queue) sortLocked() {
	q.order = q.order[:0]
	for _, rt := range q.routes {
		q.order = append(q.order, rt)
	}
	sort.Slice(q.order, func(i, j int) bool {
		a, b := q.order[i], q.order[j]
		if a.lim.Priority != b.lim.Priority {
			return a.lim.Priority > b.lim.Priority
		}
		return a.name < b.name
	})
}

func (q *Queue) signalLocked() {
	close(q.wake)
	q.wake = make(chan struct{})
}

func (q *Queue) depthLocked() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var n int64
	for _, rt := range q.routes {
		n += rt.depth
	}
	return n
}

// Close stops the committer (committing what was already submitted) and
// closes badger. Blocked Next calls return ErrClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.closed.Store(true)
		close(q.closing)
		<-q.stopped
		<-q.gcDone
		q.flushOps() // deletes queued by Acks that raced with Close
		q.mu.Lock()
		q.signalLocked()
		q.mu.Unlock()
		q.mu.Lock()
		q.dbClosed.Store(true)
		q.mu.Unlock()
		q.compact.close()
		q.closeErr = q.db.Close()
		q.walSync.close()
		q.vlogSync.close()
		q.log.Info("queue closed", "dir", q.dir)
	})
	return q.closeErr
}
