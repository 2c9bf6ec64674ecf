package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// --- keys and encoding ---

const (
	pMsg  = 'm'
	pDead = 'x'
	pHead = 'h'
	pReg  = 'r'
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
	if len(b) < 11 || b[0] != encVersion {
		return errBadRecord
	}
	m.Retain = b[1]&1 != 0
	m.QoS = b[2]
	m.Time = int64(binary.BigEndian.Uint64(b[3:]))
	b = b[11:]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return errBadRecord
	}
	m.Topic = string(b[k : k+int(n)])
	b = b[k+int(n):]
	n, k = binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return errBadRecord
	}
	m.Device = string(b[k : k+int(n)])
	m.Payload = b[k+int(n):]
	return nil
}

// dead letter value: uvarint len(reason) reason, int64 time, message
func appendDead(b []byte, reason string, at int64, msgVal []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(reason)))
	b = append(b, reason...)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, msgVal...)
}

func decodeDead(b []byte, d *DeadLetter) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n+8 {
		return errBadRecord
	}
	d.Reason = string(b[k : k+int(n)])
	b = b[k+int(n):]
	d.At = int64(binary.BigEndian.Uint64(b))
	return decodeMessage(b[8:], &d.Message)
}

// --- loading the index ---

func (q *Queue) load() error {
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		// route registry
		for it.Seek([]byte{pReg}); it.ValidForPrefix([]byte{pReg}); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 4 {
				return fmt.Errorf("route registry entry %q: %w", item.Key(), errBadRecord)
			}
			name := string(item.Key()[1:])
			rt := &route{id: binary.BigEndian.Uint32(v), name: name, drops: map[string]uint64{}}
			q.routes[name], q.byID[rt.id] = rt, rt
			q.nextID = max(q.nextID, rt.id)
		}
		if item, err := txn.Get(hwmKey); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 8 {
				return fmt.Errorf("sequence high-water mark: %w", errBadRecord)
			}
			q.nextSeq = binary.BigEndian.Uint64(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		q.nextSeq = max(q.nextSeq, 1)
		for _, rt := range q.byID {
			head := uint64(0)
			if item, err := txn.Get(routePrefix(pHead, rt.id)); err == nil {
				v, err := item.ValueCopy(nil)
				if err != nil || len(v) != 8 {
					return fmt.Errorf("head cursor of route %q: %w", rt.name, errBadRecord)
				}
				head = binary.BigEndian.Uint64(v)
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			pfx := routePrefix(pMsg, rt.id)
			for it.Seek(msgKey(pMsg, rt.id, head)); it.ValidForPrefix(pfx); it.Next() {
				item := it.Item()
				seq := binary.BigEndian.Uint64(item.Key()[5:])
				size := item.ValueSize()
				rt.r.push(seq, uint32(size))
				rt.depth++
				rt.bytes += size
				q.bytes += size
				q.nextSeq = max(q.nextSeq, seq+1)
			}
			pfx = routePrefix(pDead, rt.id)
			for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
				item := it.Item()
				size := item.ValueSize()
				rt.dead++
				rt.deadBytes += size
				q.bytes += size
				q.nextSeq = max(q.nextSeq, binary.BigEndian.Uint64(item.Key()[5:])+1)
			}
		}
		q.hwm = q.nextSeq // the first commit reserves a new block
		q.visible = q.nextSeq - 1
		return nil
	})
}

// --- the committer ---

// Acks are deletes that need no sync of their own (a crash may bring an
// acked message back: a duplicate, never a loss). They ride along with the
// next enqueue batch, or go out every ackFlush or every ackBatch acks.
const (
	ackBatch = 512
	ackFlush = 50 * time.Millisecond
)

func (q *Queue) run() {
	defer close(q.stopped)
	batch := make([]*pending, 0, q.opts.MaxBatch)
	tick := time.NewTicker(q.opts.EnforceInterval)
	defer tick.Stop()
	flush := time.NewTicker(ackFlush)
	defer flush.Stop()
	for {
		batch = batch[:0]
		select {
		case p := <-q.reqs:
			batch = append(batch, p)
		case <-q.kick:
		case <-tick.C:
			q.enforce()
			continue
		case <-flush.C:
			q.mu.Lock()
			n := len(q.ops)
			q.mu.Unlock()
			if n == 0 {
				continue
			}
		case <-q.closing:
			for {
				select {
				case p := <-q.reqs:
					batch = append(batch, p)
					continue
				default:
				}
				break
			}
			q.commit(batch)
			q.drainInflight()
			return
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case p := <-q.reqs:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		q.commit(batch)
	}
}

// batchState is one committed batch on its way through badger. Batches are
// finalized strictly in submission order, so Next never sees a message whose
// predecessors are not yet synced.
type batchState struct {
	waiters  []*pending
	accepted []*pending
	ops      []op // deletes and cursors it carried, re-queued if it fails
	lastSeq  uint64
	left     int // badger transactions (plus one guard) outstanding
	err      error
	done     bool
}

// commit admits the batch under the limits and submits it, together with the
// pending deletes, as one badger transaction (split only when badger says it
// is too big). Badger runs with SyncWrites: its single writer goroutine
// coalesces the transactions queued while it syncs into one write and one
// sync, so while batch N is syncing batch N+1 is already queued behind it
// (pipelined group commit). Waiters are completed when their transaction has
// been synced; up to cap(q.sem) batches are in flight.
func (q *Queue) commit(batch []*pending) {
	var free uint64
	var freeErr error
	if len(batch) > 0 {
		free, freeErr = q.statfs(q.dir)
	}
	q.sem <- struct{}{}
	var pre, sets, post []op
	var batchBytes uint64
	bs := &batchState{waiters: slices.Clone(batch), left: 1} // run reuses batch
	now := q.clock().UnixNano()

	q.mu.Lock()
	if freeErr == nil && len(batch) > 0 {
		q.free = free
	}
	for _, p := range batch {
		m := &p.m
		size := p.size
		switch {
		case freeErr == nil && free < q.minFree+2*(batchBytes+uint64(size)):
			p.err = q.fullLocked("disk free space below the watermark", free)
			continue
		case q.opts.MaxBytes > 0 && q.bytes+int64(size) > q.opts.MaxBytes:
			p.err = q.fullLocked("queue byte cap reached", free)
			continue
		}
		rt := q.routeLocked(m.Route, &pre)
		if err := q.admitLocked(rt, int64(size), &post); err != nil {
			q.rejected[rt.name]++
			p.err = err
			continue
		}
		seq := q.nextSeq
		q.nextSeq++
		if seq >= q.hwm {
			q.hwm = seq + seqBlock
			pre = append(pre, op{key: hwmKey, val: be64(q.hwm)})
		}
		if m.Time == 0 {
			m.Time = now
		}
		buf := make([]byte, 13, 13+size)
		copy(buf, msgKey(pMsg, rt.id, seq))
		buf = appendMessage(buf, m)
		sets = append(sets, op{key: buf[:13:13], val: buf[13:]})
		rt.r.push(seq, uint32(size))
		rt.depth++
		rt.bytes += int64(size)
		rt.enqueued++
		q.bytes += int64(size)
		p.seq = seq
		batchBytes += uint64(size)
		bs.accepted = append(bs.accepted, p)
		bs.lastSeq = seq
	}
	post = q.headsLocked(post)
	ops := q.ops
	q.ops = nil
	bs.ops = append(ops, post...)
	q.inflight = append(q.inflight, bs)
	q.mu.Unlock()

	q.submit(bs, pre, ops, sets, post)
}

func (q *Queue) submit(bs *batchState, groups ...[]op) {
	cb := func(err error) {
		q.mu.Lock()
		if err != nil && bs.err == nil {
			bs.err = err
		}
		bs.left--
		var fin []*batchState
		if bs.left == 0 {
			bs.done = true
			fin = q.finalizeLocked()
		}
		q.mu.Unlock()
		if len(fin) > 0 {
			q.flushDrops() // audited before the enqueuer that caused them returns
		}
		for _, b := range fin {
			for _, p := range b.waiters {
				p.done <- struct{}{}
			}
			<-q.sem
		}
	}
	txn := q.db.NewTransaction(true)
	n := 0
	apply := func(o op) error {
		if o.del {
			return txn.Delete(o.key)
		}
		return txn.Set(o.key, o.val)
	}
	var err error
outer:
	for _, g := range groups {
		for _, o := range g {
			err = apply(o)
			if errors.Is(err, badger.ErrTxnTooBig) {
				q.mu.Lock()
				bs.left++
				q.mu.Unlock()
				txn.CommitWith(cb)
				txn, n = q.db.NewTransaction(true), 0
				err = apply(o)
			}
			if err != nil {
				break outer
			}
			n++
		}
	}
	if err == nil && n > 0 {
		q.mu.Lock()
		bs.left++
		q.mu.Unlock()
		txn.CommitWith(cb)
	} else {
		txn.Discard()
	}
	cb(err) // the guard
}

// finalizeLocked completes, in order, the batches at the head of inflight
// that are done: visible to Next on success, taken out of the index on
// failure (their writers get the error and withhold the PUBACK).
func (q *Queue) finalizeLocked() []*batchState {
	var fin []*batchState
	for len(q.inflight) > 0 && q.inflight[0].done {
		bs := q.inflight[0]
		q.inflight[0] = nil
		q.inflight = q.inflight[1:]
		fin = append(fin, bs)
		if bs.err == nil {
			if len(bs.accepted) > 0 {
				q.visible = bs.lastSeq
				q.signalLocked()
			}
			continue
		}
		q.log.Error("writing queue batch failed; refusing its messages", "messages", len(bs.accepted), "err", bs.err)
		for _, p := range bs.accepted {
			p.err = fmt.Errorf("writing to queue: %w", bs.err)
			if rt, i, ok := q.findLocked(p.seq); ok {
				q.removeLocked(rt, i)
				rt.enqueued--
				q.ops = append(q.ops, op{key: msgKey(pMsg, rt.id, p.seq), del: true})
			}
		}
		q.ops = append(bs.ops, q.ops...)
		for _, rt := range q.routes {
			rt.headDirty = true
		}
	}
	return fin
}

// drainInflight waits until every submitted batch is finalized.
func (q *Queue) drainInflight() {
	for range cap(q.sem) {
		q.sem <- struct{}{}
	}
	for range cap(q.sem) {
		<-q.sem
	}
}

func (q *Queue) routeLocked(name string, pre *[]op) *route {
	rt := q.routes[name]
	if rt == nil {
		rt = &route{name: name, lim: RouteLimits{Name: name}, drops: map[string]uint64{}}
		q.routes[name] = rt
		q.sortLocked()
		q.log.Warn("message for a route that is not configured; queued without route limits", "route", name)
	}
	if rt.id == 0 {
		q.nextID++
		rt.id = q.nextID
		q.byID[rt.id] = rt
		*pre = append(*pre, op{key: append([]byte{pReg}, name...), val: binary.BigEndian.AppendUint32(nil, rt.id)})
	}
	return rt
}

func (q *Queue) admitLocked(rt *route, size int64, post *[]op) error {
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
		q.dropFrontLocked(rt, ReasonOverflowCount, post)
	}
	for l.MaxBytes > 0 && rt.bytes+size > l.MaxBytes && rt.depth > 0 {
		q.dropFrontLocked(rt, ReasonOverflowBytes, post)
	}
	return nil
}

// dropFrontLocked drops the oldest live message of rt, counted.
func (q *Queue) dropFrontLocked(rt *route, reason string, out *[]op) {
	seq, _, _ := rt.r.at(0)
	q.removeLocked(rt, 0)
	*out = append(*out, op{key: msgKey(pMsg, rt.id, seq), del: true})
	rt.drops[reason]++
	q.noteDropLocked(rt.name, reason, 1)
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

// removeLocked takes entry i of rt out of the index (it must be live).
func (q *Queue) removeLocked(rt *route, i int) {
	_, size, _ := rt.r.at(i)
	rt.depth--
	rt.bytes -= int64(size)
	q.bytes -= int64(size)
	if i > 0 {
		rt.r.kill(i)
		return
	}
	for {
		rt.r.popFront()
		if rt.next > 0 {
			rt.next--
		}
		if rt.r.len() == 0 {
			break
		}
		if _, _, dead := rt.r.at(0); !dead {
			break
		}
	}
	rt.headDirty = true
}

func (q *Queue) headsLocked(out []op) []op {
	for _, rt := range q.routes {
		if !rt.headDirty || rt.id == 0 {
			continue
		}
		rt.headDirty = false
		head := q.nextSeq
		if rt.r.len() > 0 {
			head, _, _ = rt.r.at(0)
		}
		out = append(out, op{key: routePrefix(pHead, rt.id), val: be64(head)})
	}
	return out
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

// --- the API ---

// Enqueue stores m durably and returns its sequence number only after the
// fsync of a batch containing it (group commit: concurrent callers share one
// sync). Errors: ErrFull, ErrQuota, ErrClosed, ErrInvalid, or a write error;
// in every error case the caller must not acknowledge the message.
func (q *Queue) Enqueue(ctx context.Context, m Message) (uint64, error) {
	if m.Route == "" || len(m.Route) > 255 {
		return 0, fmt.Errorf("enqueue: %w: route name must be 1..255 bytes", ErrInvalid)
	}
	size := encodedLen(&m)
	if size > MaxMessageBytes {
		return 0, fmt.Errorf("enqueue: %w: message of %d bytes exceeds %d", ErrInvalid, size, MaxMessageBytes)
	}
	if q.closed.Load() {
		return 0, ErrClosed
	}
	p := pendingPool.Get().(*pending)
	p.m, p.size, p.seq, p.err = m, size, 0, nil
	select {
	case q.reqs <- p:
	case <-q.closing:
		pendingPool.Put(p)
		return 0, ErrClosed
	case <-ctx.Done():
		pendingPool.Put(p)
		return 0, ctx.Err()
	}
	select {
	case <-p.done:
	case <-q.stopped:
		select {
		case <-p.done:
		default:
			return 0, ErrClosed // never committed; p is abandoned
		}
	case <-ctx.Done():
		// The message may still be committed; the caller withholds the
		// PUBACK and the sensor resends (at-least-once). p is abandoned.
		return 0, ctx.Err()
	}
	seq, err := p.seq, p.err
	p.m = Message{}
	pendingPool.Put(p)
	return seq, err
}

// Next returns the next message not yet handed out: the highest-priority
// route first (ties: lowest sequence), FIFO within a route. It blocks until
// one exists, ctx ends (ctx.Err()) or the queue closes (ErrClosed).
func (q *Queue) Next(ctx context.Context) (Message, error) {
	for {
		q.mu.Lock()
		if q.closed.Load() {
			q.mu.Unlock()
			return Message{}, ErrClosed
		}
		rt, i := q.pickLocked()
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
		rt.next = i + 1
		seq, _, _ := rt.r.at(i)
		key := msgKey(pMsg, rt.id, seq)
		name, maxAge := rt.name, rt.lim.MaxAge
		q.mu.Unlock()

		var m Message
		err := q.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(key)
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			return decodeMessage(v, &m)
		})
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue // dropped meanwhile
		}
		if err != nil {
			return Message{}, fmt.Errorf("reading queued message %d: %w", seq, err)
		}
		m.Route, m.Seq = name, seq
		if maxAge > 0 && q.expired(m.Time, maxAge) {
			q.dropSeq(seq, ReasonMaxAge)
			continue
		}
		return m, nil
	}
}

func (q *Queue) pickLocked() (*route, int) {
	var best *route
	var bestI int
	var bestSeq uint64
	for _, rt := range q.order {
		if best != nil && rt.lim.Priority < best.lim.Priority {
			break
		}
		for rt.next < rt.r.len() {
			if _, _, dead := rt.r.at(rt.next); !dead {
				break
			}
			rt.next++
		}
		if rt.next >= rt.r.len() {
			continue
		}
		seq, _, _ := rt.r.at(rt.next)
		if seq > q.visible {
			continue
		}
		if best == nil || seq < bestSeq {
			best, bestI, bestSeq = rt, rt.next, seq
		}
	}
	return best, bestI
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

func (q *Queue) findLocked(seq uint64) (*route, int, bool) {
	for _, rt := range q.order {
		if rt.r.len() == 0 {
			continue
		}
		if first, _, _ := rt.r.at(0); seq < first {
			continue
		}
		if i, ok := rt.r.search(seq); ok {
			if _, _, dead := rt.r.at(i); !dead {
				return rt, i, true
			}
			return nil, 0, false
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
// message back (a duplicate, never a loss).
func (q *Queue) Ack(seq uint64) error {
	if q.closed.Load() {
		return ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	rt, i, ok := q.findLocked(seq)
	if !ok {
		return nil
	}
	q.removeLocked(rt, i)
	rt.acked++
	q.ops = append(q.ops, op{key: msgKey(pMsg, rt.id, seq), del: true})
	if len(q.ops) >= ackBatch {
		q.kickCommitter()
	}
	return nil
}

func (q *Queue) dropSeq(seq uint64, reason string) {
	q.mu.Lock()
	if rt, i, ok := q.findLocked(seq); ok {
		q.removeLocked(rt, i)
		rt.drops[reason]++
		q.noteDropLocked(rt.name, reason, 1)
		q.ops = append(q.ops, op{key: msgKey(pMsg, rt.id, seq), del: true})
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
	q.mu.Lock()
	rt, _, ok := q.findLocked(seq)
	q.mu.Unlock()
	if !ok {
		return nil
	}
	key := msgKey(pMsg, rt.id, seq)
	var val []byte
	err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dead-lettering message %d: %w", seq, err)
	}
	dv := appendDead(nil, reason, q.clock().UnixNano(), val)
	q.mu.Lock()
	defer q.mu.Unlock()
	rt, i, ok := q.findLocked(seq)
	if !ok {
		return nil
	}
	q.removeLocked(rt, i)
	rt.dead++
	rt.deadBytes += int64(len(dv))
	q.bytes += int64(len(dv))
	q.ops = append(q.ops,
		op{key: msgKey(pDead, rt.id, seq), val: dv},
		op{key: key, del: true})
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
		rt.next = 0
	}
	q.signalLocked()
}

// enforce applies max-age and limits lowered by a reload (drop-oldest routes).
func (q *Queue) enforce() {
	type front struct {
		rt     *route
		maxAge time.Duration
	}
	var aged []front
	q.mu.Lock()
	for _, rt := range q.routes {
		l := rt.lim
		if l.Overflow == DropOldest {
			for l.MaxMessages > 0 && rt.depth > l.MaxMessages {
				q.dropFrontLocked(rt, ReasonOverflowCount, &q.ops)
			}
			for l.MaxBytes > 0 && rt.bytes > l.MaxBytes && rt.depth > 0 {
				q.dropFrontLocked(rt, ReasonOverflowBytes, &q.ops)
			}
		}
		if l.MaxAge > 0 && rt.depth > 0 {
			aged = append(aged, front{rt, l.MaxAge})
		}
	}
	q.mu.Unlock()
	for _, f := range aged {
		for n := 0; n < 100000; n++ {
			q.mu.Lock()
			if f.rt.r.len() == 0 {
				q.mu.Unlock()
				break
			}
			seq, _, _ := f.rt.r.at(0)
			rid := f.rt.id
			q.mu.Unlock()
			t, err := q.msgTime(msgKey(pMsg, rid, seq))
			if err != nil || !q.expired(t, f.maxAge) {
				break
			}
			q.mu.Lock()
			if f.rt.r.len() > 0 {
				if s, _, _ := f.rt.r.at(0); s == seq {
					q.dropFrontLocked(f.rt, ReasonMaxAge, &q.ops)
				}
			}
			q.mu.Unlock()
		}
	}
	q.commit(nil)
}

func (q *Queue) msgTime(key []byte) (int64, error) {
	var t int64
	err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) < 11 {
				return errBadRecord
			}
			t = int64(binary.BigEndian.Uint64(v[3:]))
			return nil
		})
	})
	return t, err
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
			for i := 0; i < 16; i++ {
				if err := q.db.RunValueLogGC(0.5); err != nil {
					break
				}
			}
		}
	}
}
