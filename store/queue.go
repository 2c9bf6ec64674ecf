package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/skl"
)

// --- keys and encoding ---

const (
	pMsg  = 'm'
	pDead = 'x'
	pHead = 'h'
	pReg  = 'r'
	pMeta = 'c'
)

var hwmKey = []byte{'s'}

func msgKey(prefix byte, rid uint32, seq uint64) []byte {
	k := make([]byte, 13)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:], rid)
	binary.BigEndian.PutUint64(k[5:], seq)
	return k
}

func routePrefix(prefix byte, rid uint32) []byte {
	k := make([]byte, 5)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:], rid)
	return k
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

const encVersion = 1

func encodedLen(m *Message) int {
	return 3 + 8 + uvarintLen(len(m.Topic)) + len(m.Topic) + uvarintLen(len(m.Device)) + len(m.Device) + len(m.Payload)
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

func appendMessage(b []byte, m *Message) []byte {
	var flags byte
	if m.Retain {
		flags |= 1
	}
	b = append(b, encVersion, flags, m.QoS)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time))
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	b = binary.AppendUvarint(b, uint64(len(m.Device)))
	b = append(b, m.Device...)
	return append(b, m.Payload...)
}

var errBadRecord = errors.New("damaged record")

func decodeMessage(b []byte, m *Message) error {
	return (*names)(nil).decode(b, m)
}

// names interns the topics and device names of the messages Next decodes
// (a route's messages come from a few publishers, under a few topics): a
// message handed out allocates no strings once its topic and device were
// seen. At most namesMax are kept; then the set starts over. A nil *names
// interns nothing (decodeMessage).
type names map[string]string

const namesMax = 256

// decode is decodeMessage, its strings interned in n.
func (n *names) decode(b []byte, m *Message) error {
	flags, qos, t, topic, device, payload, ok := splitMessage(b)
	if !ok {
		return errBadRecord
	}
	m.Retain, m.QoS, m.Time = flags&1 != 0, qos, t
	m.Topic, m.Device, m.Payload = n.intern(topic), n.intern(device), payload
	return nil
}

func (n *names) intern(b []byte) string {
	if n == nil {
		return string(b)
	}
	if s, ok := (*n)[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if *n == nil || len(*n) >= namesMax {
		*n = make(names)
	}
	s := string(b)
	(*n)[s] = s
	return s
}

// splitMessage splits the per-message encoding (appendMessage) into its
// fields, without copying; ok is false when it does not parse.
func splitMessage(b []byte) (flags, qos byte, t int64, topic, device, payload []byte, ok bool) {
	if len(b) < 11 || b[0] != encVersion {
		return
	}
	flags, qos, t = b[1], b[2], int64(binary.BigEndian.Uint64(b[3:]))
	b = b[11:]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return
	}
	topic, b = b[k:k+int(n)], b[k+int(n):]
	n, k = binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return
	}
	return flags, qos, t, topic, b[k : k+int(n)], b[k+int(n):], true
}

// dead letter value: uvarint len(reason) reason, int64 time, message
func appendDead(b []byte, reason string, at int64, msgVal []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(reason)))
	b = append(b, reason...)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, msgVal...)
}

// decodeDead reads a dead letter. One of reason ReasonDamaged holds a
// message that did not read: its bytes are returned as the payload.
func decodeDead(b []byte, d *DeadLetter) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n+8 {
		return errBadRecord
	}
	d.Reason = string(b[k : k+int(n)])
	b = b[k+int(n):]
	d.At = int64(binary.BigEndian.Uint64(b))
	err := decodeMessage(b[8:], &d.Message)
	if err != nil && d.Reason == ReasonDamaged {
		d.Message, err = Message{Payload: b[8:]}, nil
	}
	return err
}

// --- per-route meta ---

// meta is what badger holds about one route. It is written in the same
// transaction as every change it describes, so after a crash it agrees with
// the messages on disk and Open needs no scan: O(routes), not O(messages).
type meta struct {
	head            uint64 // no live message of the route has a lower seq
	last            uint64 // highest seq ever written to the route
	count, bytes    int64  // live messages
	dead, deadBytes int64  // dead letters
	// Lifetime counters, since the route's queue was created: each written
	// with the change it counts, so they survive kill -9 and agree with the
	// data (a drop on disk is a drop counted).
	life [lifeN]uint64
}

// Indexes of meta.life.
const (
	lifeEnqueued = iota
	lifeAcked
	lifeDeadLettered
	lifeRejected // ErrQuota (overflow reject)
	lifeDrops    // + the index of the reason in dropReasons
	lifeN        = lifeDrops + len(dropReasons)
)

var dropReasons = [...]string{ReasonOverflowBytes, ReasonOverflowCount, ReasonMaxAge, ReasonPurged}

// lifeDrop is the life index counting drops for reason.
func lifeDrop(reason string) int {
	for i, r := range dropReasons {
		if r == reason {
			return lifeDrops + i
		}
	}
	panic("store: unknown drop reason " + reason)
}

// The meta record: 6 fields, then (since the lifetime counters) lifeN more.
// A record of the first form reads with the counters at zero.
const (
	metaLen1 = 48
	metaLen  = metaLen1 + 8*lifeN
)

func (m *meta) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.head)
	b = binary.BigEndian.AppendUint64(b, m.last)
	b = binary.BigEndian.AppendUint64(b, uint64(m.count))
	b = binary.BigEndian.AppendUint64(b, uint64(m.bytes))
	b = binary.BigEndian.AppendUint64(b, uint64(m.dead))
	b = binary.BigEndian.AppendUint64(b, uint64(m.deadBytes))
	for _, v := range m.life {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != metaLen && len(b) != metaLen1 {
		return meta{}, errBadRecord
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	m := meta{head: u(0), last: u(1), count: int64(u(2)), bytes: int64(u(3)), dead: int64(u(4)), deadBytes: int64(u(5))}
	if m.count < 0 || m.bytes < 0 || m.dead < 0 || m.deadBytes < 0 {
		return meta{}, errBadRecord
	}
	if len(b) == metaLen {
		for i := range m.life {
			m.life[i] = u(6 + i)
		}
	}
	return m, nil
}

// valueSize is the exact length of item's value. Values of at least
// valueThreshold live in the value log, where badger only estimates it.
func valueSize(item *badger.Item) (int64, error) {
	n := item.ValueSize()
	if n < int64(valueThreshold)-64 {
		return n, nil
	}
	err := item.Value(func(v []byte) error { n = int64(len(v)); return nil })
	return n, err
}

// scanMeta walks the messages of route rid from its head (the larger of
// from and the head its meta holds in txn) in its segments and in the old
// format's keys, skipping the marked ones, and its dead letters: what the
// meta must say. Open uses it once for a queue written before the meta
// existed; tests use it as the ground truth.
func scanMeta(txn *badger.Txn, rid uint32, from uint64) (meta, error) {
	if v, err := getValue(txn, routePrefix(pMeta, rid)); err == nil {
		if d, err := decodeMeta(v); err == nil {
			from = max(from, d.head)
		}
	}
	m := meta{head: from}
	marks := readMarks(txn, rid)
	err := forSegments(txn, rid, from, func(s uint64) bool { return isMarked(marks, s) }, func(seq uint64, val []byte, _ bool) (bool, error) {
		m.last = max(m.last, seq)
		m.count++
		m.bytes += int64(len(val))
		return true, nil
	})
	if err != nil {
		return m, err
	}
	for _, prefix := range []byte{pMsg, pDead} {
		pfx := routePrefix(prefix, rid)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		start := pfx
		if prefix == pMsg {
			start = msgKey(pMsg, rid, from)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			size, err := valueSize(item)
			if err != nil {
				it.Close()
				return m, err
			}
			seq := binary.BigEndian.Uint64(item.Key()[5:])
			m.last = max(m.last, seq)
			if prefix == pMsg {
				m.count++
				m.bytes += size
			} else {
				m.dead++
				m.deadBytes += size
			}
		}
		it.Close()
	}
	return m, nil
}

// --- loading ---

// load reads the route registry, the sequence mark and one meta record per
// route. No message is read: the forwarding window is filled lazily by Next.
func (q *Queue) load() error {
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{pReg}})
		for it.Seek([]byte{pReg}); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 4 {
				it.Close()
				return fmt.Errorf("route registry entry %q: %w", item.Key(), errBadRecord)
			}
			rt := newRoute(string(item.Key()[1:]), RouteLimits{Name: string(item.Key()[1:])})
			rt.id = binary.BigEndian.Uint32(v)
			q.routes[rt.name], q.byID[rt.id] = rt, rt
			q.nextID = max(q.nextID, rt.id)
		}
		it.Close()
		v, err := getValue(txn, hwmKey)
		switch {
		case err == nil && len(v) == 8:
			q.nextSeq = binary.BigEndian.Uint64(v)
		case err == nil:
			return fmt.Errorf("sequence high-water mark: %w", errBadRecord)
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		q.nextSeq = max(q.nextSeq, 1)
		for _, rt := range q.byID {
			v, err := getValue(txn, routePrefix(pMeta, rt.id))
			if err == nil {
				var derr error
				if rt.disk, derr = decodeMeta(v); derr != nil {
					// Count the route from its messages instead of refusing to
					// start; its lifetime counters start again at zero.
					q.log.Error("queue route meta is damaged; counting the route from its messages",
						"route", rt.name, "meta", fmt.Sprintf("%x", v), "err", derr)
					err = badger.ErrKeyNotFound
				}
			}
			switch {
			case err == nil:
			case errors.Is(err, badger.ErrKeyNotFound):
				// Written before the meta existed: count once, persist it with
				// the next commit.
				var head uint64
				if v, err := getValue(txn, routePrefix(pHead, rt.id)); err == nil && len(v) == 8 {
					head = binary.BigEndian.Uint64(v)
				}
				if rt.disk, err = scanMeta(txn, rt.id, head); err != nil {
					return fmt.Errorf("counting route %q: %w", rt.name, err)
				}
				rt.metaDirty = true
				q.log.Info("queue route counted once (no meta record yet)", "route", rt.name, "messages", rt.disk.count)
			default:
				return err
			}
			d := rt.disk
			rt.depth, rt.bytes, rt.dead, rt.deadBytes = d.count, d.bytes, d.dead, d.deadBytes
			rt.enqueued, rt.acked = d.life[lifeEnqueued], d.life[lifeAcked]
			rt.deadLettered, rt.rejected = d.life[lifeDeadLettered], d.life[lifeRejected]
			for i, r := range dropReasons {
				if n := d.life[lifeDrops+i]; n > 0 {
					rt.drops[r] = n
				}
			}
			rt.last, rt.cursor = d.last, d.head
			rt.marks = readMarks(txn, rt.id)
			q.bytes += d.bytes + d.deadBytes
			q.nextSeq = max(q.nextSeq, d.last+1)
		}
		q.hwm = q.nextSeq // the first commit reserves a new block
		q.visible = q.nextSeq - 1
		return nil
	})
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// --- the committer ---

// Acks are deletes that need no sync of their own (a crash may bring an
// acked message back: a duplicate, never a loss). They ride along with the
// next enqueue batch, or go out ackFlush after the first of them was queued,
// or at ackBatch acks. The flush is a timer armed only while writes wait: an
// idle queue's committer does not wake (a ticker woke it 20 times a second
// for nothing, on a Pi that sits idle most of the day).
const (
	ackBatch = 512
	ackFlush = 50 * time.Millisecond
)

// One commit is one badger transaction, never split, so a route's meta is
// always in the transaction that changes its messages. txnBudget keeps it at
// half of badger's limits (15% of the memtable in bytes, that divided by the
// largest skiplist node in entries; db.go: maxBatchSize, maxBatchCount).
var (
	txnBudget     = int(memTableSize * 15 / 100 / 2)
	txnMaxEntries = int(memTableSize*15/100) / skl.MaxNodeSize / 2 // 6553 here, 1638 on 32-bit
)

// est is badger's size estimate of one entry (key, value or value pointer,
// meta, version).
func est(key, val []byte) int {
	if len(val) >= valueThreshold {
		return len(key) + 12 + 10
	}
	return len(key) + len(val) + 10
}

func (q *Queue) run() {
	defer close(q.stopped)
	batch := make([]*pending, 0, q.opts.MaxBatch)
	var carry *pending
	last := 0                  // messages in the last group commit
	var lastSync time.Duration // its fdatasync (of the last commit that synced)
	var ended time.Time        // when the last commit of messages ended
	maxMsgs := min(cap(batch), txnMaxEntries/2)
	tick := time.NewTicker(q.opts.EnforceInterval)
	defer tick.Stop()
	flush := time.NewTimer(ackFlush)
	flush.Stop()
	defer flush.Stop()
	linger := time.NewTimer(lingerMax)
	linger.Stop()
	armed := false
	arm := func() {
		if !armed {
			flush.Reset(ackFlush)
			armed = true
		}
	}
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case p := <-q.reqs:
				batch = append(batch, p)
				if last > 0 && time.Since(ended) > lingerStale {
					last = 0 // its writers are not coming back: no company to wait for
				}
			case <-q.kick:
			case <-q.opsWait:
				arm()
				continue
			case <-tick.C:
				q.enforce()
				continue
			case <-flush.C:
				armed = false
				q.ackFlushes.Add(1)
				if !q.opsWaiting() {
					continue
				}
			case <-q.closing:
				q.drainOnClose()
				return
			}
		}
		batch, carry = q.gather(batch, last, maxMsgs, lastSync, linger)
		last = len(batch)
		if took := q.commit(batch); took > 0 {
			lastSync = took
		}
		if len(batch) > 0 {
			ended = time.Now()
		}
		// Writes this commit did not take (over its budget, or held below
		// the disk reserve) go out at the latest ackFlush from now.
		if q.opsWaiting() {
			arm()
		}
	}
}

// gather takes what is queued into batch (which holds the request that woke
// the committer, if any) within the transaction budget; a request over the
// budget is returned as carry, for the next commit.
//
// The writers released by the last commit (last messages) are still
// re-submitting, and how long they take decides how full this commit is.
// In-process writers are back within a few yields of the processor: while
// fewer than last time have arrived it yields (lingerSpins). A publisher
// behind a network is back a round trip later, its messages trickling in
// over tens to hundreds of microseconds (each PUBACK frees one publish): a
// commit started on the first of them syncs a handful and leaves the rest to
// wait a whole fdatasync, and a lockstep publisher's window then splits
// into commits that rarely merge again. So while fewer than last time have
// arrived, it lingers on: it waits for each next arrival, for at most
// lingerShare of the last fdatasync (lingerMax at most), so that a commit
// waits at most that fraction of what it then spends syncing. A lone
// message (last was one) never lingers: a sensor publishing once a second
// gets its PUBACK after one fdatasync, and so does the first message after
// a burst when the committer has been idle for lingerStale: the writers
// released by the last commit would have been back by then.
func (q *Queue) gather(batch []*pending, last, maxMsgs int, lastSync time.Duration, linger *time.Timer) ([]*pending, *pending) {
	budget := txnBudget
	add := func(p *pending) bool {
		if p.est > budget {
			return false
		}
		batch = append(batch, p)
		budget -= p.est
		return true
	}
	for _, p := range batch {
		budget -= p.est
	}
	take := func() (carry *pending) {
		for len(batch) < maxMsgs {
			select {
			case p := <-q.reqs:
				if !add(p) {
					return p
				}
			default:
				return nil
			}
		}
		return nil
	}
	for spins := 0; ; spins++ {
		if carry := take(); carry != nil {
			return batch, carry
		}
		if len(batch) >= last || len(batch) >= maxMsgs {
			return batch, nil
		}
		if spins >= lingerSpins {
			break
		}
		runtime.Gosched()
	}
	wait := min(time.Duration(float64(lastSync)*lingerShare), lingerMax)
	if wait <= 0 || len(batch) == 0 { // a commit of deletes alone waits for no one
		return batch, nil
	}
	q.lingers.Add(1)
	linger.Reset(wait)
	defer linger.Stop()
	for len(batch) < last && len(batch) < maxMsgs {
		select {
		case p := <-q.reqs:
			if !add(p) {
				return batch, p
			}
			if carry := take(); carry != nil {
				return batch, carry
			}
		case <-linger.C:
			return batch, nil
		case <-q.closing:
			return batch, nil
		}
	}
	return batch, nil
}

// lingerSpins bounds the yields of one group commit before it lingers (a
// few microseconds).
var lingerSpins = 4

// lingerShare is the fraction of the last fdatasync a commit may wait for
// the company the last commit had (gather); lingerMax caps it whatever that
// sync took (one held up by other writers to the disk takes tens of
// milliseconds). The wait is a Go timer, woken at once by each arrival; its
// expiry is late by up to a millisecond in an idle process (the runtime
// (1.26) sleeps in epoll_wait, whose timeout is in milliseconds), which
// delays only a commit whose company did not come.
var (
	lingerShare = 0.5
	lingerMax   = 2 * time.Millisecond
	lingerStale = 10 * time.Millisecond // a round trip is back well before (about 1 ms here)
)

// opsWaiting reports whether deletes or other writes wait for a commit.
func (q *Queue) opsWaiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ops) > 0
}

func (q *Queue) drainOnClose() {
	var batch []*pending
	budget := txnBudget
	for {
		select {
		case p := <-q.reqs:
			if (p.est > budget || len(batch) >= txnMaxEntries/2) && len(batch) > 0 {
				q.commit(batch)
				batch, budget = batch[:0], txnBudget
			}
			batch = append(batch, p)
			budget -= p.est
			continue
		default:
		}
		break
	}
	q.commit(batch)
	q.flushOps()
}

// flushOps commits the queued deletes, as many commits as they need, while
// they make progress (a failing write leaves them for the next Open: acked
// messages come back as duplicates, never lost).
func (q *Queue) flushOps() {
	for prev := -1; ; {
		q.mu.Lock()
		n := len(q.ops)
		q.mu.Unlock()
		if n == 0 || n == prev {
			return
		}
		prev = n
		q.commit(nil)
	}
}

// commit admits batch under the limits and writes it, with the queued
// deletes and the meta of every route they touch, as one synced badger
// transaction; then the waiters are released. Only the committer goroutine
// calls it (and Close, after the committer stopped), so one transaction is
// in flight at a time: while it syncs, the next Enqueues queue up and go
// together into the next one (group commit, batch size adapting to the sync
// latency). Badger with SyncWrites syncs the WAL once per transaction and
// the value log once per write group; more transactions in flight would only
// add WAL syncs. It returns how long the fdatasync took (0: none, a commit of
// deletes alone is not synced).
func (q *Queue) commit(batch []*pending) (synced time.Duration) {
	// Every commit looks at the disk: deletes and dead letters write too.
	free, freeErr := q.statfs(q.dir)
	c := commitTxn{batch: batch, pre: q.pre[:0], sets: q.sets[:0], arena: q.arena[:0], segBuf: q.segBuf[:0], lsm: q.lsmSize()}
	q.mu.Lock()
	q.admitLocked(&c, free, freeErr)
	// Below the fixed reserve even deletes wait (in memory; acked messages
	// come back as duplicates after a crash): every write, a tombstone too,
	// may end in a flush or a compaction that needs the reserve.
	hold := freeErr == nil && free < q.minFree && len(q.ops) > 0
	if hold {
		q.holdLocked(free)
	}
	c.ops = q.takeOpsLocked(&c, hold)
	q.metaLocked(&c)
	q.segmentsLocked(&c)
	q.mu.Unlock()

	err, syncErr := q.persist(&c)
	if c.synced && q.opts.OnSync != nil {
		q.opts.OnSync(c.syncTook) // no lock held; before the waiters return, so they see it counted
	}

	q.mu.Lock()
	for _, u := range c.undo {
		u.rt.touched = false
	}
	q.writeErr = err
	if q.failErr = err; err == nil && c.accepted > 0 {
		q.failErr = syncErr
	}
	if err == nil {
		q.committedLocked(&c, syncErr)
		if n := cap(c.ops); n > 0 && n <= spareOpsMax {
			clear(c.ops) // no references to routes or values kept
			q.spareOps = c.ops[:0]
		}
	} else {
		q.undoLocked(&c, err)
	}
	q.mu.Unlock()
	q.flushDrops() // audited before the enqueuers that caused them return
	if c.more && err == nil {
		q.kickCommitter()
	}
	for _, p := range batch {
		p.done <- struct{}{}
	}
	clear(c.sets) // no references to the routes or the arena kept
	q.pre, q.sets, q.arena, q.segBuf = c.pre[:0], c.sets[:0], c.arena[:0], c.segBuf[:0]
	return c.syncTook
}

// commitTxn is one commit being built: the messages it admits (sets), the
// queued writes it takes (ops), the registry, sequence-mark and meta
// records (pre), and what restores the routes' meta if its write fails.
type commitTxn struct {
	batch      []*pending
	pre, sets  []op
	ops        []op
	segs       []op // the segments of sets, one per route (segment.go)
	derived    []op // markers, and the markers and segments the heads passed
	arena      []byte
	segBuf     []byte
	more       bool // a head left markers or segments to delete: commit again
	passLeft   int  // deletes behind the heads this commit may still take
	passed     []passed
	undo       []savedMeta
	lsm        uint64
	accepted   int
	lastSeq    uint64 // of the last message admitted
	reserved   uint64 // a new sequence block's mark to write first; 0: none
	batchBytes uint64
	synced     bool          // persist ran syncLogs (successfully or not)
	syncTook   time.Duration // how long syncLogs took, for Options.OnSync
}

type savedMeta struct {
	rt *route
	m  meta
}

// admitLocked admits the batch's messages under the disk watermark, the
// queue's byte cap and their routes' limits, gives each its seq and encodes
// it into the arena (c.sets).
func (q *Queue) admitLocked(c *commitTxn, free uint64, freeErr error) {
	wm := q.minFree + c.lsm + c.lsm/2 // see watermark in store.go
	if freeErr == nil {
		q.free, q.watermark = free, wm
	}
	now := q.clock().UnixNano()
	for _, p := range c.batch {
		if p.barrier {
			continue
		}
		size := p.size
		switch {
		case freeErr == nil && free < wm+2*(c.batchBytes+uint64(size)):
			p.err = q.fullLocked("disk free space below the watermark", free)
			continue
		case q.opts.MaxBytes > 0 && q.bytes+int64(size) > q.opts.MaxBytes:
			p.err = q.fullLocked("queue byte cap reached", free)
			continue
		}
		rt := q.routeLocked(p.m.Route, &c.pre)
		if err := q.admitRouteLocked(rt, int64(size), &c.sets); err != nil {
			rt.rejected++
			rt.disk.life[lifeRejected]++ // written with this commit's meta
			rt.metaDirty = true
			p.err = err
			continue
		}
		q.appendSetLocked(c, p, rt, now)
	}
	q.lsmSince += c.batchBytes
}

// appendSetLocked gives p the next seq (reserving a new block when it
// crosses one) and adds its write to c.
func (q *Queue) appendSetLocked(c *commitTxn, p *pending, rt *route, now int64) {
	m, size := &p.m, p.size
	seq := q.nextSeq
	q.nextSeq++
	if seq >= q.hwm {
		q.hwm = seq + seqBlock
		c.reserved = q.hwm
		c.pre = append(c.pre, op{key: hwmKey, val: be64(q.hwm)})
	}
	if m.Time == 0 {
		m.Time = now
	}
	if need := size; cap(c.arena)-len(c.arena) < need {
		c.arena = make([]byte, 0, max(256<<10, need)) // earlier slices keep the old one
	}
	start := len(c.arena)
	c.arena = appendMessage(c.arena, m)
	c.sets = append(c.sets, op{rt: rt, val: c.arena[start:len(c.arena):len(c.arena)],
		seq: seq, prev: rt.last, dCount: 1, dBytes: int64(size)})
	rt.depth++
	rt.bytes += int64(size)
	rt.enqueued++
	rt.last = seq
	q.bytes += int64(size)
	p.seq = seq
	c.batchBytes += uint64(size)
	c.accepted++
	c.lastSeq = seq
}

// takeOpsLocked takes the queued writes (acks, drops, dead letters) that
// fit in the transaction beside c's messages, oldest first; none when hold.
func (q *Queue) takeOpsLocked(c *commitTxn, hold bool) []op {
	budget, entries := txnBudget, len(c.pre)+len(c.sets)+len(q.routes)
	for _, o := range c.sets {
		budget -= est(o.key, o.val)
	}
	n := 0
	for ; !hold && n < len(q.ops) && entries < txnMaxEntries; n++ {
		e, k := opCost(&q.ops[n])
		if e > budget && n > 0 {
			break
		}
		budget -= e
		entries += k
	}
	// A dead letter is a delete and a set: never split over two commits
	// (a crash between them would lose the message).
	if n > 0 && n < len(q.ops) && q.ops[n].life == lifeDeadLettered+1 && q.ops[n-1].del && q.ops[n-1].seq == q.ops[n].seq {
		n++
	}
	// What the heads pass is deleted within what is left, and never less
	// than an eighth of the entries (so the deletes go on under load): at
	// most txnMaxEntries + txnMaxEntries/8 + 2 entries in all, and in bytes
	// txnBudget, one op over it and the eighth's deletes, under badger's
	// limits (2 x txnMaxEntries, 2 x txnBudget).
	c.passLeft = max(min(txnMaxEntries-entries, budget/passCost), txnMaxEntries/8)
	ops := q.ops[:n:n]
	q.ops = q.ops[n:]
	if len(q.ops) == 0 {
		q.ops = nil
	}
	q.opsHint = n
	return ops
}

// metaLocked brings the meta of every route c changes to what it will be on
// disk after c (saving the old one in c.undo) and adds its record to c.pre.
func (q *Queue) metaLocked(c *commitTxn) {
	for gi, g := range [][]op{c.sets, c.ops} {
		for i := range g {
			o := &g[i]
			if o.rt == nil {
				continue
			}
			c.touch(o.rt) // before any change: the undo of a failed write
			d := &o.rt.disk
			if gi == 0 {
				d.life[lifeEnqueued]++ // dropped within its batch or not
			}
			if o.life > 0 {
				d.life[o.life-1]++
			}
			if o.cancel {
				continue
			}
			d.count += o.dCount
			d.bytes += o.dBytes
			d.dead += o.dDead
			d.deadBytes += o.dDeadBytes
			if o.dCount > 0 {
				d.last = max(d.last, o.seq)
			}
		}
	}
	for _, rt := range q.order {
		if rt.metaDirty && rt.id != 0 {
			c.touch(rt)
		}
	}
	if len(c.undo) == 0 {
		return
	}
	// Deletes left queued are still on disk: the head stays at or below them.
	leftHead := map[*route]uint64{}
	for _, o := range q.ops {
		if o.rt != nil && o.del && o.dCount < 0 {
			if h, ok := leftHead[o.rt]; !ok || o.seq < h {
				leftHead[o.rt] = o.seq
			}
		}
	}
	for _, u := range c.undo {
		rt := u.rt
		h := rt.headSeq()
		if l, ok := leftHead[rt]; ok {
			h = min(h, l)
		}
		rt.disk.head = max(rt.disk.head, h)
		if rt.disk.count == 0 {
			rt.disk.head = max(rt.disk.head, rt.disk.last+1)
		}
		rt.metaDirty = false
		c.pre = append(c.pre, op{key: routePrefix(pMeta, rt.id), val: rt.disk.append(make([]byte, 0, metaLen))})
		if rt.disk.head > u.m.head || rt.passMore {
			q.passedLocked(c, rt)
		}
	}
	// A removal the head does not pass is a marker. A segment of that one
	// message goes at once (its bytes need not wait for the head: a queue
	// of single-message commits acked out of order frees its space); the
	// marker stays, so that the segment brought back by value-log GC
	// (gcresurrect_test.go) is not read.
	var sole []uint64
	for _, o := range c.ops {
		if o.rt != nil && o.key == nil && o.seq >= o.rt.disk.head {
			c.derived = append(c.derived, op{rt: o.rt, key: msgKey(pMark, o.rt.id, o.seq), val: []byte{}, seq: o.seq, mark: 1})
			sole = append(sole, uint64(o.rt.id)<<32|uint64(len(c.derived)-1))
		}
	}
	if len(sole) > 0 && !q.dbClosed.Load() {
		_ = q.db.View(func(txn *badger.Txn) error {
			for _, x := range sole {
				if k := soleSegment(txn, uint32(x>>32), c.derived[uint32(x)].seq); k != nil {
					c.derived = append(c.derived, op{key: k, del: true})
				}
			}
			return nil
		})
	}
}

// maxPassed bounds the markers and segments one commit deletes behind a
// head (more wait for the next commit that moves the head: below the head
// nothing is read, so they only take space until then). All routes of a
// commit share c.passLeft too (takeOpsLocked): badger refuses a whole
// transaction over its limits (ErrTxnTooBig), and a refused commit would
// take its deletes again, and fail again, with every commit after it.
const maxPassed = 1024

// passCost is est of the largest delete behind a head (a segment's key).
const passCost = 21 + 10

// opCost is what op o adds to a transaction: est bytes and badger entries.
// A removal inside a segment (no key) writes a marker and may delete the
// segment it was alone in (metaLocked).
func opCost(o *op) (bytes, entries int) {
	if o.key == nil && o.rt != nil {
		return 2 * passCost, 2
	}
	return est(o.key, o.val), 1
}

// passedLocked deletes, with c, what rt's new head passed: its markers
// below it and its segments wholly below it.
//
// When it leaves some for later, the route is marked to go on with the next
// commit, and the committer commits again at once (commit: c.more): an idle
// queue after a large purge does not keep them.
func (q *Queue) passedLocked(c *commitTxn, rt *route) {
	head, n, limit := rt.disk.head, 0, min(maxPassed, c.passLeft)
	defer func() { c.passLeft -= n }()
	rt.passMore = false
	for _, s := range rt.marks {
		if s >= head {
			break
		}
		if n >= limit {
			rt.passMore = true
			break
		}
		c.derived = append(c.derived, op{rt: rt, key: msgKey(pMark, rt.id, s), del: true, seq: s, mark: -1})
		n++
	}
	switch {
	case q.dbClosed.Load():
		return
	case n >= limit:
		rt.passMore = true // its segments, if any, with the next commit
	case rt.passFrom > 0 && rt.trackFrom <= rt.passFrom:
		// Every segment from passFrom on was written by this process and
		// is in rt.segs: no read (a badger iterator per commit cost more
		// than the rest of the head's move). passFrom 0 (value-log GC may
		// have brought deleted segments back) always reads.
		k := rt.segsBelow(head)
		if room := limit - n; k > room {
			k, rt.passMore = room, true
		}
		for _, s := range rt.segs[:k] {
			c.derived = append(c.derived, op{rt: rt, key: segKey(rt.id, s.first, s.last), del: true, seq: s.last, mark: -2})
		}
		n += k
	default:
		_ = q.db.View(func(txn *badger.Txn) error {
			room := limit - n
			segs := deadSegments(txn, rt.id, rt.passFrom, head, room+1)
			if len(segs) > room {
				segs, rt.passMore = segs[:room], true
			}
			for _, k := range segs {
				c.derived = append(c.derived, op{key: k, del: true})
			}
			n += len(segs)
			return nil
		})
	}
	if rt.passMore {
		rt.metaDirty = true // touched by the next commit
		c.more = true
	} else {
		c.passed = append(c.passed, passed{rt, head})
	}
}

// passed: once the commit is written, no segment of rt below head is left
// (but what value-log GC brings back: runValueLogGC resets passFrom).
type passed struct {
	rt   *route
	head uint64
}

// segmentsLocked encodes the messages c admitted as segments: one per
// route, or more when one would reach the value threshold (segSplit).
func (q *Queue) segmentsLocked(c *commitTxn) {
	sp := segSplit{buf: c.segBuf, out: c.segs}
	for i := range c.sets {
		rt := c.sets[i].rt
		if c.sets[i].cancel || slices.ContainsFunc(sp.out, func(o op) bool { return o.rt == rt }) {
			continue
		}
		sp.rt = rt
		for j := i; j < len(c.sets); j++ {
			if o := &c.sets[j]; o.rt == rt && !o.cancel {
				sp.add(o.seq, o.val)
			}
		}
		sp.flush()
	}
	c.segBuf, c.segs = sp.buf, sp.out
}

func (c *commitTxn) touch(rt *route) {
	if !rt.touched {
		rt.touched = true
		c.undo = append(c.undo, savedMeta{rt, rt.disk})
	}
}

// persist writes c as one badger transaction and, when it admitted
// messages, makes it durable before any waiter is released. A failed sync
// after a successful commit: the transaction is in badger (meta and data
// agree), but not known to be on disk, so its writers get the error (no
// PUBACK; the sensor resends, at-least-once).
func (q *Queue) persist(c *commitTxn) (err, syncErr error) {
	if c.reserved != 0 {
		// The mark beside the queue first: no seq of the new block is used
		// before it is on disk there (seqfile.go).
		err = writeSeqFile(seqPath(q.dir), c.reserved)
	}
	if e := q.failWrite.Load(); err == nil && e != nil {
		err = *e
	}
	if err == nil && len(c.pre)+len(c.segs)+len(c.ops)+len(c.derived) > 0 {
		err = q.write(c.pre, c.segs, c.ops, c.derived)
	}
	if err == nil && c.accepted > 0 {
		start := time.Now()
		syncErr = q.syncLogs()
		c.synced, c.syncTook = true, time.Since(start)
	}
	return err, syncErr
}

// committedLocked: c is in badger. Its deletes are done, its messages
// visible to Next; a failed sync refuses them to their writers.
func (q *Queue) committedLocked(c *commitTxn, syncErr error) {
	for _, p := range c.passed {
		p.rt.passFrom = max(p.rt.passFrom, p.head)
		p.rt.dropSegs(p.head) // deleted, by a read of badger or from rt.segs
	}
	for _, o := range c.derived {
		switch rt := o.rt; o.mark {
		case -2:
			rt.dropSegs(o.seq + 1)
		case 1:
			i, found := slices.BinarySearch(rt.marks, o.seq)
			if !found {
				rt.marks = slices.Insert(rt.marks, i, o.seq)
			}
		case -1:
			if i, found := slices.BinarySearch(rt.marks, o.seq); found {
				rt.marks = slices.Delete(rt.marks, i, i+1)
			}
		}
	}
	for _, o := range c.ops {
		if o.rt != nil && o.del {
			delete(o.rt.deleting, o.seq)
			if len(o.rt.deleting) == 0 {
				o.rt.delMax = 0
				if o.rt.delPeak > 4096 {
					o.rt.deleting, o.rt.delPeak = map[uint64]struct{}{}, 0 // maps do not shrink
				}
			}
		}
	}
	for _, o := range c.segs {
		o.rt.trackSeg(o.key)
	}
	if c.accepted > 0 {
		q.visible = c.lastSeq
		if syncErr == nil {
			q.aheadLocked(c.sets)
		}
		q.signalLocked()
	}
	if syncErr != nil {
		q.log.Error("syncing queue batch failed; refusing its messages", "messages", c.accepted, "err", syncErr)
		for _, p := range c.batch {
			if p.err == nil && !p.barrier {
				p.seq, p.err = 0, fmt.Errorf("syncing the queue: %w", syncErr)
			}
		}
	}
}

// undoLocked: c was not written. The routes get their meta and counts
// back, its writers the error, its queued writes go back to the front.
func (q *Queue) undoLocked(c *commitTxn, err error) {
	q.log.Error("writing queue batch failed; refusing its messages", "messages", c.accepted, "err", err)
	for _, u := range c.undo {
		u.rt.disk = u.m
		u.rt.metaDirty = true
	}
	for _, o := range c.sets {
		if !o.cancel {
			o.rt.depth--
			o.rt.bytes -= o.dBytes
			q.bytes -= o.dBytes
		}
		o.rt.enqueued--
	}
	for _, p := range c.batch {
		if p.err == nil && !p.barrier {
			p.err = fmt.Errorf("writing to queue: %w", err)
		}
	}
	q.ops = append(c.ops, q.ops...) // retried with the next commit
	q.hwm = q.nextSeq               // the mark may not be written: write it again
}

// Err reports why the queue is not taking messages, for /healthz and the
// systemd watchdog: ErrClosed once it is closed, else the write or sync
// error of the last commit when that commit failed (its messages were
// refused: no PUBACK). It is nil again after a commit succeeds.
func (q *Queue) Err() error {
	if q.closed.Load() {
		return ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failErr
}

// syncLogs makes the committed transaction durable: the value log first
// when a value went there since its last sync, this commit's or an earlier
// one's or a KV Write's, then the WAL (see logSyncer). In that order a
// power cut cannot keep a WAL entry whose value-log pointer leads past the
// end of the value log (badger cuts the last value-log file at its last
// whole entry on open): the message would be unreadable (logorder.go).
func (q *Queue) syncLogs() error {
	return q.logs.syncWAL(q.walSync, q.vlogSync)
}

// bigValue says whether a write of the groups puts a value in the value log.
func bigValue(groups ...[]op) bool {
	for _, g := range groups {
		for _, o := range g {
			if !o.cancel && !o.del && len(o.val) >= valueThreshold {
				return true
			}
		}
	}
	return false
}

// write commits the groups as one transaction (synced by syncLogs).
func (q *Queue) write(groups ...[]op) error {
	if bigValue(groups...) {
		return q.logs.bigCommit(func() error { return q.writeTxn(groups...) })
	}
	return q.writeTxn(groups...)
}

func (q *Queue) writeTxn(groups ...[]op) error {
	txn := q.db.NewTransaction(true)
	defer txn.Discard()
	for _, g := range groups {
		for _, o := range g {
			var err error
			switch {
			case o.cancel || o.key == nil:
				continue
			case o.del:
				err = txn.Delete(o.key)
			default:
				err = txn.Set(o.key, o.val)
			}
			if err != nil {
				return err
			}
		}
	}
	return txn.Commit()
}

func (q *Queue) routeLocked(name string, pre *[]op) *route {
	rt := q.routes[name]
	if rt == nil {
		rt = newRoute(name, RouteLimits{Name: name})
		q.routes[name] = rt
		q.sortLocked()
		q.log.Warn("message for a route that is not configured; queued without route limits", "route", name)
	}
	if rt.id == 0 {
		q.nextID++
		rt.id = q.nextID
		q.byID[rt.id] = rt
		rt.cursor = q.nextSeq
		rt.disk.head = q.nextSeq
		*pre = append(*pre, op{key: append([]byte{pReg}, name...), val: binary.BigEndian.AppendUint32(nil, rt.id)})
	}
	return rt
}

// admitRouteLocked applies rt's limits to a new message of size bytes:
// ErrQuota when it is refused, else room made by dropping the oldest
// (possibly one of sets, the batch being built) when the route is full.
func (q *Queue) admitRouteLocked(rt *route, size int64, sets *[]op) error {
	l := rt.lim
	if l.MaxBytes > 0 && size > l.MaxBytes {
		return fmt.Errorf("%w: route %q: message of %d bytes exceeds max_bytes %d", ErrQuota, rt.name, size, l.MaxBytes)
	}
	overCount := l.MaxMessages > 0 && rt.depth+1 > l.MaxMessages
	overBytes := l.MaxBytes > 0 && rt.bytes+size > l.MaxBytes
	if !overCount && !overBytes {
		return nil
	}
	if l.Overflow == Reject {
		return fmt.Errorf("%w: route %q holds %d messages, %d bytes", ErrQuota, rt.name, rt.depth, rt.bytes)
	}
	for l.MaxMessages > 0 && rt.depth+1 > l.MaxMessages && rt.depth > 0 {
		if !q.dropFrontLocked(rt, ReasonOverflowCount, sets) {
			break
		}
	}
	for l.MaxBytes > 0 && rt.bytes+size > l.MaxBytes && rt.depth > 0 {
		if !q.dropFrontLocked(rt, ReasonOverflowBytes, sets) {
			break
		}
	}
	return nil
}

// frontLocked finds the oldest live message of rt: handed out and unacked,
// or the first of the read-ahead. val is its value when it was read ahead.
func (q *Queue) frontLocked(rt *route) (seq uint64, size int64, val []byte, ok bool) {
	if err := q.fillLocked(rt); err != nil {
		q.log.Error("reading the queue", "route", rt.name, "err", err)
	}
	if len(rt.inflight) > 0 {
		seq, size, ok = rt.inflight[0].seq, rt.inflight[0].size, true
	}
	if len(rt.ahead) > 0 && (!ok || rt.ahead[0].seq <= seq) {
		seq, size, val, ok = rt.ahead[0].seq, int64(len(rt.ahead[0].val)), rt.ahead[0].val, true
	}
	return
}

// dropFrontLocked drops the oldest live message of rt, counted. The oldest
// may be in the batch being built (sets): it is then not written at all.
func (q *Queue) dropFrontLocked(rt *route, reason string, sets *[]op) bool {
	if seq, size, _, ok := q.frontLocked(rt); ok {
		q.removeLocked(rt, seq, size, lifeDrop(reason))
	} else {
		found := false
		if sets != nil {
			for i := range *sets {
				if o := &(*sets)[i]; o.rt == rt && !o.cancel {
					o.cancel = true
					o.life = int8(lifeDrop(reason) + 1) // counted, not written
					rt.depth--
					rt.bytes -= o.dBytes
					q.bytes -= o.dBytes
					found = true
					break
				}
			}
		}
		if !found {
			return false
		}
	}
	rt.drops[reason]++
	q.noteDropLocked(rt.name, reason, 1)
	return true
}

func (q *Queue) noteDropLocked(route, reason string, n int) {
	if k := len(q.drops); k > 0 && q.drops[k-1].route == route && q.drops[k-1].reason == reason {
		q.drops[k-1].n += n
		return
	}
	q.drops = append(q.drops, dropEvent{route, reason, n})
}

func (q *Queue) flushDrops() {
	q.mu.Lock()
	d := q.drops
	q.drops = nil
	q.mu.Unlock()
	for _, e := range d {
		q.log.Warn("queue dropped messages", "route", e.route, "reason", e.reason, "count", e.n)
		if q.opts.OnDrop != nil {
			q.opts.OnDrop(e.route, e.reason, e.n)
		}
	}
}

// removeLocked takes the live message seq of rt out of the window and
// queues its delete (its size is size); the delete adds one to the lifetime
// counter life (-1: none) in the same transaction.
func (q *Queue) removeLocked(rt *route, seq uint64, size int64, life int) {
	rt.dropInflight(seq)
	rt.dropAhead(seq)
	rt.depth--
	rt.bytes -= size
	q.bytes -= size
	rt.deleting[seq] = struct{}{}
	rt.delPeak = max(rt.delPeak, len(rt.deleting))
	rt.delMax = max(rt.delMax, seq)
	q.queueOp(op{rt: rt, del: true, seq: seq, dCount: -1, dBytes: -size, life: int8(life + 1)})
}

// spareOpsMax bounds the array of ops a commit leaves for queueOp (a purge's
// are let go).
const spareOpsMax = 1024

// queueOp queues a write for the next commit. An empty queue starts at the
// size the last commit took: no regrowing from nothing every commit under
// load, and no big array for the few deletes of a quiet one.
func (q *Queue) queueOp(o op) {
	if q.ops == nil {
		if n := max(q.opsHint, 4); cap(q.spareOps) >= n && cap(q.spareOps) <= 2*n {
			q.ops, q.spareOps = q.spareOps, nil // the array of a commit's ops, done with
		} else {
			q.ops = make([]op, 0, n)
		}
	}
	q.ops = append(q.ops, o)
	if len(q.ops) == 1 {
		select {
		case q.opsWait <- struct{}{}:
		default:
		}
	}
}

// liveLocked says whether seq is a live message of rt: handed out, read
// ahead, or not read yet and not being deleted.
func (rt *route) liveLocked(seq uint64) bool {
	if _, ok := rt.findInflight(seq); ok {
		return true
	}
	if _, ok := rt.findAhead(seq); ok {
		return true
	}
	_, del := rt.deleting[seq]
	return seq >= rt.cursor && seq <= rt.last && !del && !isMarked(rt.marks, seq)
}

func (q *Queue) fullLocked(why string, free uint64) error {
	q.rejected["full"]++
	now := time.Now()
	if now.Sub(q.fullAt) >= 10*time.Second {
		q.log.Warn("queue full: refusing new messages (no PUBACK) until space is freed",
			"reason", why, "dir", q.dir, "free_bytes", free, "min_free_bytes", q.minFree,
			"queue_bytes", q.bytes, "max_bytes", q.opts.MaxBytes, "refused_since_last_log", q.fullSupp)
		q.fullAt, q.fullSupp = now, 0
	} else {
		q.fullSupp++
	}
	return fmt.Errorf("%w: %s", ErrFull, why)
}

func (q *Queue) holdLocked(free uint64) {
	now := time.Now()
	if now.Sub(q.holdAt) >= 10*time.Second {
		q.log.Warn("disk nearly full: deletes wait in memory until space is freed",
			"dir", q.dir, "free_bytes", free, "reserve_bytes", q.minFree, "waiting", len(q.ops))
		q.holdAt = now
	}
}

// lsmSize estimates the bytes of badger's SSTs: the level sizes, read at
// most once a second (badger's own figure is refreshed once a minute), plus
// what was accepted since. Only the committer calls it.
func (q *Queue) lsmSize() uint64 {
	if now := time.Now(); now.Sub(q.lsmAt) >= time.Second && !q.dbClosed.Load() {
		var n int64
		for _, l := range q.db.Levels() {
			n += l.Size
		}
		q.lsmBytes, q.lsmSince, q.lsmAt = uint64(max(n, 0)), 0, now
	}
	return q.lsmBytes + q.lsmSince
}

// sync waits until the committer has written what was queued before it
// (deletes included, as far as one transaction holds them).
func (q *Queue) sync() error {
	p := &pending{barrier: true, done: make(chan struct{}, 1)}
	select {
	case q.reqs <- p:
	case <-q.closing:
		return ErrClosed
	}
	select {
	case <-p.done:
		return nil
	case <-q.stopped:
		select {
		case <-p.done:
			return nil
		default:
			return ErrClosed
		}
	}
}

// --- the forwarding window ---

// aheadMax/aheadBytes bound the messages Next reads ahead per route.
const (
	aheadMax   = 64
	aheadBytes = 256 << 10
)

// pushMax/pushBytes bound the read-ahead that commits fill (aheadLocked):
// larger, as it costs no read, so that a bridge running behind its
// publishers by a second or so still gets its messages from memory. Per
// route; held while the upstream is away.
const (
	pushMax   = 4096
	pushBytes = 1 << 20
)

// fillLocked reads ahead from rt's cursor when nothing is read ahead: up to
// aheadMax messages (aheadBytes), only synced ones (seq <= visible).
func (q *Queue) fillLocked(rt *route) error {
	if len(rt.ahead) > 0 || rt.id == 0 || q.dbClosed.Load() {
		return nil
	}
	hi := min(rt.last, q.visible)
	if rt.cursor > hi {
		return nil
	}
	rt.ahead = rt.ahead[:0]
	var bytes int
	// take reads from the route's segment reader; done: the read-ahead is
	// full or hi is reached.
	take := func() (done bool) {
		for {
			seq, val, _, ok := rt.rdr.next()
			if !ok {
				rt.rdr = nil
				return false
			}
			if seq > hi {
				return true
			}
			if seq < rt.cursor {
				continue
			}
			rt.cursor = seq + 1
			if seq < rt.disk.head || isMarked(rt.marks, seq) {
				continue
			}
			if seq <= rt.delMax { // acks are mostly below the cursor: no lookup
				if _, del := rt.deleting[seq]; del {
					continue
				}
			}
			rt.appendAhead(aheadMsg{seq, val})
			rt.aheadSize += len(val)
			q.readBack++
			if bytes += len(val); len(rt.ahead) >= aheadMax || bytes >= aheadBytes {
				return true
			}
		}
	}
	// The reader kept from the last fill goes on where it stopped, when the
	// cursor is still in its segment and not behind it (a Rewind).
	if r := rt.rdr; r != nil && (rt.cursor > r.last || r.n > 0 && rt.cursor <= r.seq || r.n == 0 && rt.cursor < r.first) {
		rt.rdr = nil
	}
	if rt.rdr != nil && take() {
		return nil
	}
	return q.db.View(func(txn *badger.Txn) error {
		pfx := routePrefix(pSeg, rt.id)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
		defer it.Close()
		for it.Seek(segSeek(rt.id, rt.cursor)); it.Valid(); it.Next() {
			item := it.Item()
			_, first, last, ok := parseSegKey(item.Key())
			if !ok || last < rt.cursor {
				continue
			}
			if first > hi {
				break
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			rt.rdr = newSegReader(first, last, v)
			if take() {
				return nil
			}
		}
		rt.cursor = max(rt.cursor, hi+1)
		return nil
	})
}

// aheadLocked puts the messages just committed into their routes'
// read-ahead, so that Next need not read them back from badger: only for a
// route whose cursor has passed every older message of it (so the read-ahead
// stays in seq order with nothing skipped), and up to pushMax/pushBytes
// (the rest is read by fillLocked as before). One copy per route out of the
// arena, which the next commit reuses.
func (q *Queue) aheadLocked(sets []op) {
	for i := 0; i < len(sets); {
		rt := sets[i].rt
		if rt.id == 0 || rt.cursor <= sets[i].prev {
			i++
			continue
		}
		n, bytes := len(rt.ahead), rt.aheadSize
		// The run of this route's sets that fits.
		j, size := i, 0
		for ; j < len(sets) && sets[j].rt == rt; j++ {
			if sets[j].cancel {
				continue
			}
			if n >= pushMax || bytes+size+len(sets[j].val) > pushBytes {
				break
			}
			n++
			size += len(sets[j].val)
		}
		if j == i { // no room: fillLocked reads it, and the rest of rt
			i++
			continue
		}
		buf := make([]byte, 0, size)
		for ; i < j; i++ {
			o := &sets[i]
			if !o.cancel {
				buf = append(buf, o.val...)
				rt.appendAhead(aheadMsg{o.seq, buf[len(buf)-len(o.val) : len(buf) : len(buf)]})
				rt.aheadSize += len(o.val)
			}
			rt.cursor = o.seq + 1
		}
		// The next set of rt, if any, fails the cursor test: fillLocked
		// reads it.
	}
}

// --- the API ---

// Next returns the next message not yet handed out: the highest-priority
// route first (ties: lowest sequence), FIFO within a route. It blocks until
// one exists, ctx ends (ctx.Err()) or the queue closes (ErrClosed). A
// message available now is returned even when ctx is already done, so a
// done ctx makes Next a poll (the bridge takes its bursts that way).
func (q *Queue) Next(ctx context.Context) (Message, error) {
	for {
		q.mu.Lock()
		if q.closed.Load() {
			q.mu.Unlock()
			return Message{}, ErrClosed
		}
		rt, err := q.pickLocked()
		if err != nil {
			q.mu.Unlock()
			return Message{}, fmt.Errorf("reading the queue: %w", err)
		}
		if rt == nil {
			wake := q.wake
			q.mu.Unlock()
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return Message{}, ctx.Err()
			case <-q.closing:
				return Message{}, ErrClosed
			}
		}
		a := rt.ahead[0]
		rt.ahead[0] = aheadMsg{}
		rt.ahead = rt.ahead[1:]
		rt.aheadSize -= len(a.val)
		if len(rt.ahead) == 0 {
			rt.emptyAhead()
		}
		rt.handOut(a.seq, int64(len(a.val)))
		name, maxAge := rt.name, rt.lim.MaxAge
		var m Message
		err = rt.names.decode(a.val, &m)
		q.mu.Unlock()

		if err != nil {
			// One record that does not read must not stop the queue (the
			// bridge would ask for it again forever): it goes to the dead
			// letters as it is, for inspection, and Next goes on.
			q.log.Error("queued message does not read; moved to the dead letters", "route", name, "seq", a.seq, "err", err)
			if err := q.DeadLetter(a.seq, ReasonDamaged); err != nil {
				return Message{}, fmt.Errorf("reading queued message %d: %w", a.seq, err)
			}
			continue
		}
		m.Route, m.Seq = name, a.seq
		if maxAge > 0 && q.expired(m.Time, maxAge) {
			q.dropSeq(a.seq, ReasonMaxAge)
			continue
		}
		return m, nil
	}
}

func (q *Queue) pickLocked() (*route, error) {
	var best *route
	var bestSeq uint64
	for _, rt := range q.order {
		if best != nil && rt.lim.Priority < best.lim.Priority {
			break
		}
		if err := q.fillLocked(rt); err != nil {
			return nil, err
		}
		if len(rt.ahead) == 0 {
			continue
		}
		if seq := rt.ahead[0].seq; best == nil || seq < bestSeq {
			best, bestSeq = rt, seq
		}
	}
	return best, nil
}

// expired: only with a sane clock, and only for a message whose time was
// itself taken from a sane clock and is not in the future.
func (q *Queue) expired(t int64, maxAge time.Duration) bool {
	now := q.clock()
	if !now.After(SaneAfter) || t < SaneAfter.UnixNano() || t > now.UnixNano() {
		return false
	}
	return now.Sub(time.Unix(0, t)) > maxAge
}

// findLocked finds a handed-out, unacked message.
func (q *Queue) findLocked(seq uint64) (*route, int64, bool) {
	for _, rt := range q.order {
		if i, ok := rt.findInflight(seq); ok {
			return rt, rt.inflight[i].size, true
		}
	}
	return nil, 0, false
}

func (q *Queue) kickCommitter() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Ack deletes a message after the upstream PUBACK. Acking an unknown or
// already deleted sequence is not an error (idempotent). The delete is
// written by the committer without its own fsync: a crash may bring the
// message back (a duplicate, never a loss). Messages handed out by Next are
// found in memory; any other one costs a point read per route.
func (q *Queue) Ack(seq uint64) error {
	if q.closed.Load() {
		return ErrClosed
	}
	q.mu.Lock()
	rt, size, ok := q.findLocked(seq)
	if ok {
		q.ackLocked(rt, seq, size)
		q.mu.Unlock()
		return nil
	}
	q.mu.Unlock()
	q.purgeMu.Lock()
	defer q.purgeMu.Unlock()
	rt, val, err := q.locate(seq)
	if err != nil || rt == nil {
		return err
	}
	q.mu.Lock()
	if rt.liveLocked(seq) {
		q.ackLocked(rt, seq, int64(len(val)))
	}
	q.mu.Unlock()
	return nil
}

func (q *Queue) ackLocked(rt *route, seq uint64, size int64) {
	q.removeLocked(rt, seq, size, lifeAcked)
	rt.acked++
	if len(q.ops) >= ackBatch {
		q.kickCommitter()
	}
}

// locate finds the route holding the live message seq, not handed out, and
// its value. The caller holds purgeMu (nothing else deletes messages that
// were not read ahead).
func (q *Queue) locate(seq uint64) (*route, []byte, error) {
	var cands []*route
	q.mu.Lock()
	for _, rt := range q.order {
		if rt.id != 0 && rt.liveLocked(seq) {
			cands = append(cands, rt)
		}
	}
	q.mu.Unlock()
	for _, rt := range cands {
		v, err := q.readMsg(rt.id, seq)
		if err != nil {
			return nil, nil, fmt.Errorf("reading queued message %d: %w", seq, err)
		}
		if v == nil {
			continue
		}
		return rt, v, nil
	}
	return nil, nil, nil
}

func (q *Queue) dropSeq(seq uint64, reason string) {
	q.mu.Lock()
	if rt, size, ok := q.findLocked(seq); ok {
		q.removeLocked(rt, seq, size, lifeDrop(reason))
		rt.drops[reason]++
		q.noteDropLocked(rt.name, reason, 1)
		q.kickCommitter()
	}
	q.mu.Unlock()
	q.flushDrops()
}

// DeadLetter moves a message to the dead-letter area (kept, counted, listed
// by DeadLetters and `edgegw queue export --dead`) with a reason, e.g. the
// upstream refused it. An unknown or already removed sequence is a no-op.
func (q *Queue) DeadLetter(seq uint64, reason string) error {
	if q.closed.Load() {
		return ErrClosed
	}
	q.purgeMu.Lock()
	defer q.purgeMu.Unlock()
	q.mu.Lock()
	rt, _, ok := q.findLocked(seq)
	q.mu.Unlock()
	var val []byte
	var err error
	if ok {
		if val, err = q.readMsg(rt.id, seq); err == nil && val == nil {
			return nil
		}
	} else {
		rt, val, err = q.locate(seq)
	}
	if err != nil {
		return fmt.Errorf("dead-lettering message %d: %w", seq, err)
	}
	if rt == nil {
		return nil
	}
	dv := appendDead(nil, reason, q.clock().UnixNano(), val)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !rt.liveLocked(seq) {
		return nil
	}
	q.removeLocked(rt, seq, int64(len(val)), -1)
	rt.dead++
	rt.deadLettered++
	rt.deadBytes += int64(len(dv))
	q.bytes += int64(len(dv))
	q.ops = append(q.ops, op{rt: rt, key: msgKey(pDead, rt.id, seq), val: dv, seq: seq, dDead: 1, dDeadBytes: int64(len(dv)), life: lifeDeadLettered + 1})
	q.kickCommitter()
	q.log.Warn("message dead-lettered", "route", rt.name, "seq", seq, "reason", reason)
	return nil
}

// Rewind makes every handed-out, un-acked message available to Next again,
// in order (after the upstream connection was lost).
func (q *Queue) Rewind() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, rt := range q.routes {
		rt.cursor = rt.headSeq()
		clear(rt.ahead)
		rt.ahead, rt.aheadSize = nil, 0
	}
	q.signalLocked()
}

// enforce applies max-age and limits lowered by a reload (drop-oldest
// routes). It runs on the committer goroutine.
func (q *Queue) enforce() {
	type front struct {
		rt     *route
		maxAge time.Duration
	}
	var aged []front
	q.mu.Lock()
	for _, rt := range q.order {
		l := rt.lim
		if l.Overflow == DropOldest {
			for l.MaxMessages > 0 && rt.depth > l.MaxMessages {
				if !q.dropFrontLocked(rt, ReasonOverflowCount, nil) {
					break
				}
			}
			for l.MaxBytes > 0 && rt.bytes > l.MaxBytes && rt.depth > 0 {
				if !q.dropFrontLocked(rt, ReasonOverflowBytes, nil) {
					break
				}
			}
		}
		if l.MaxAge > 0 && rt.depth > 0 {
			aged = append(aged, front{rt, l.MaxAge})
		}
	}
	q.mu.Unlock()
	for _, f := range aged {
		for range 100000 {
			q.mu.Lock()
			seq, _, val, ok := q.frontLocked(f.rt)
			rid := f.rt.id
			q.mu.Unlock()
			if !ok {
				break
			}
			var t int64
			var err error
			if val != nil {
				t, err = valueTime(val)
			} else {
				t, err = q.msgTime(rid, seq)
			}
			if err != nil || !q.expired(t, f.maxAge) {
				break
			}
			q.mu.Lock()
			if s, _, _, ok := q.frontLocked(f.rt); ok && s == seq {
				q.dropFrontLocked(f.rt, ReasonMaxAge, nil)
			}
			q.mu.Unlock()
		}
	}
	q.flushDrops()
	q.commit(nil)
}

func valueTime(v []byte) (int64, error) {
	if len(v) < 11 {
		return 0, errBadRecord
	}
	return int64(binary.BigEndian.Uint64(v[3:])), nil
}

// msgTime is the time of the message seq of route rid, read from its
// segment.
func (q *Queue) msgTime(rid uint32, seq uint64) (int64, error) {
	v, err := q.readMsg(rid, seq)
	if err == nil && v == nil {
		err = badger.ErrKeyNotFound
	}
	if err != nil {
		return 0, err
	}
	return valueTime(v)
}

// readMsg reads the message seq of route rid (its per-message encoding)
// from its segment; nil when it is not there.
func (q *Queue) readMsg(rid uint32, seq uint64) (v []byte, err error) {
	err = q.db.View(func(txn *badger.Txn) (err error) {
		v, err = readSeg(txn, rid, seq)
		return err
	})
	return v, err
}

func (q *Queue) gc() {
	defer close(q.gcDone)
	t := time.NewTicker(q.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-q.closing:
			return
		case <-t.C:
			// Value-log GC rewrites up to a file before it deletes one: only
			// above the reserve, which holds a file.
			if free, err := q.statfs(q.dir); err == nil && free < q.minFree {
				q.log.Warn("disk nearly full: value-log GC skipped", "dir", q.dir, "free_bytes", free, "reserve_bytes", q.minFree)
				continue
			}
			if q.runValueLogGC(16) > 0 {
				q.resetPassFrom()
			}
		}
	}
}

// resetPassFrom makes the next head move of every route look for segments
// from its start: value-log GC may have brought deleted ones back
// (gcresurrect_test.go); they are deleted again.
func (q *Queue) resetPassFrom() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, rt := range q.routes {
		rt.passFrom = 0
	}
}

// runValueLogGC rewrites up to max value-log files and returns how many.
//
// badger's value-log GC writes the live values of a file into the current
// one and the WAL (no sync: SyncWrites is off), then deletes the file. Were
// the delete durable and the moved values not, a power cut would lose
// acknowledged messages, and the next WAL sync makes the moved entries
// durable without their values (logorder.go). So each rewrite runs as a
// value-log commit (bigCommit), is synced at once, value log first, and the
// file is deleted only after that: badger defers deleting a rewritten file
// while an iterator is open (value.go: filesToBeDeleted, deleted when the
// last iterator closes), and one is held open across the rewrite and its
// sync. TestPowerCutValueLogGC is the power cut this prevents.
//
// Open, not fixed: badger's GC also writes back values a newer tombstone
// shadows, and they come back once a compaction drops the tombstone
// (gcresurrect_test.go explains it and reproduces it).
func (q *Queue) runValueLogGC(max int) int {
	n := 0
	for ; n < max; n++ {
		if err := q.gcOne(); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				q.log.Warn("value-log GC", "dir", q.dir, "err", err)
			}
			break
		}
	}
	return n
}

func (q *Queue) gcOne() error {
	// The logs GC may write to: the current ones and any it rotates to.
	wal, vlog, err := newLogSyncers(q.dir)
	if err != nil {
		return err
	}
	defer wal.close()
	defer vlog.close()
	txn := q.db.NewTransaction(false)
	defer txn.Discard()
	pin := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{0xff}})
	defer pin.Close() // last: the rewritten file is deleted here, after the sync
	if err := q.logs.bigCommit(func() error { return q.db.RunValueLogGC(0.5) }); err != nil {
		return err
	}
	if err := q.logs.syncWAL(wal, vlog); err != nil {
		return fmt.Errorf("syncing the values value-log GC moved: %w", err)
	}
	return nil
}
