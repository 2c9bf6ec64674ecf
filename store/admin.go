package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// RouteStats describes one route's backlog.
type RouteStats struct {
	Name       string
	Configured bool // false: removed by a reload, kept until drained or purged
	Priority   int
	Depth      int64 // live messages (handed out or not)
	Bytes      int64
	InFlight   int // handed out, not acked
	OldestSeq  uint64
	OldestAge  time.Duration // 0 when unknown (empty, or the clock is not sane)
	// Lifetime counters: since the route's queue was created, persisted in
	// its meta with the change each counts, so kill -9 and restarts keep
	// them (a queue moved aside as corrupt starts again at zero).
	Enqueued     uint64            // accepted (seq assigned)
	Acked        uint64            // deleted after the upstream PUBACK
	Rejected     uint64            // refused with ErrQuota (overflow reject)
	Drops        map[string]uint64 // dropped by the route's limits or a purge, by reason
	DeadLettered uint64            // moved to the dead letters
	// Current: what the route holds now.
	DeadLetters int64 // dead letters held (PurgeDeadLetters lowers it)
	DeadBytes   int64
}

// Stats describes the whole queue.
type Stats struct {
	Routes         []RouteStats // in Next order: priority desc, name
	Depth, Bytes   int64        // Bytes includes dead letters
	MaxBytes       int64
	FreeBytes      uint64 // at the last commit
	MinFreeBytes   uint64 // the watermark at the last commit: the fixed reserve + 1.5 x badger's tables
	RejectedFull   uint64 // ErrFull since Open (not persisted: no route holds it)
	DeadLetters    int64
	NextSeq        uint64
	CorruptMovedTo string // set when Open moved a damaged queue aside
}

// Stats returns a snapshot.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	s := Stats{MaxBytes: q.opts.MaxBytes, FreeBytes: q.free, MinFreeBytes: q.watermark,
		RejectedFull: q.rejected["full"], NextSeq: q.nextSeq, CorruptMovedTo: q.movedTo, Bytes: q.bytes}
	type ref struct {
		rid uint32
		seq uint64
	}
	keys := make([]*ref, len(q.order))
	vals := make([][]byte, len(q.order))
	for i, rt := range q.order {
		rs := RouteStats{Name: rt.name, Configured: rt.configured, Priority: rt.lim.Priority,
			Depth: rt.depth, Bytes: rt.bytes, InFlight: len(rt.inflight), Enqueued: rt.enqueued, Acked: rt.acked,
			Rejected: rt.rejected, Drops: maps.Clone(rt.drops), DeadLettered: rt.deadLettered, DeadLetters: rt.dead, DeadBytes: rt.deadBytes}
		if rt.depth > 0 {
			if seq, _, val, ok := q.frontLocked(rt); ok {
				rs.OldestSeq = seq
				keys[i], vals[i] = &ref{rt.id, seq}, val
			}
		}
		s.Depth += rt.depth
		s.DeadLetters += rt.dead
		s.Routes = append(s.Routes, rs)
	}
	q.mu.Unlock()
	now := q.clock()
	for i, k := range keys {
		if k == nil || !now.After(SaneAfter) || q.closed.Load() {
			continue
		}
		t, err := valueTime(vals[i])
		if vals[i] == nil {
			t, err = q.msgTime(k.rid, k.seq)
		}
		if err == nil && t >= SaneAfter.UnixNano() && t <= now.UnixNano() {
			s.Routes[i].OldestAge = now.Sub(time.Unix(0, t))
		}
	}
	return s
}

// Peek returns up to n of the oldest messages of route ("" = each route),
// without handing them out.
func (q *Queue) Peek(route string, n int) ([]Message, error) {
	var out []Message
	err := q.scan(pMsg, route, func(name string, seq uint64, v []byte) (bool, error) {
		var m Message
		if err := decodeMessage(v, &m); err != nil {
			return false, fmt.Errorf("message %d: %w", seq, err)
		}
		m.Route, m.Seq = name, seq
		m.Payload = append([]byte(nil), m.Payload...)
		out = append(out, m)
		return n <= 0 || countRoute(out, name) < n, nil
	})
	return out, err
}

func countRoute(ms []Message, name string) int {
	c := 0
	for i := len(ms) - 1; i >= 0 && ms[i].Route == name; i-- {
		c++
	}
	return c
}

// DeadLetter is a message moved aside by DeadLetter.
type DeadLetter struct {
	Message
	Reason string
	At     int64 // unix nanoseconds (advisory)
}

// DeadLetters returns up to n dead letters of route ("" = all; n <= 0 = all).
func (q *Queue) DeadLetters(route string, n int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := q.scan(pDead, route, func(name string, seq uint64, v []byte) (bool, error) {
		var d DeadLetter
		if err := decodeDead(v, &d); err != nil {
			return false, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		d.Route, d.Seq = name, seq
		d.Payload = append([]byte(nil), d.Payload...)
		out = append(out, d)
		return n <= 0 || len(out) < n, nil
	})
	return out, err
}

type exportLine struct {
	Seq     uint64 `json:"seq"`
	Route   string `json:"route"`
	Topic   string `json:"topic"`
	Device  string `json:"device,omitempty"`
	QoS     byte   `json:"qos"`
	Retain  bool   `json:"retain,omitempty"`
	Time    string `json:"time,omitempty"`
	Payload []byte `json:"payload"` // base64
	Reason  string `json:"reason,omitempty"`
}

func line(m *Message) exportLine {
	l := exportLine{Seq: m.Seq, Route: m.Route, Topic: m.Topic, Device: m.Device, QoS: m.QoS, Retain: m.Retain, Payload: m.Payload}
	if m.Time != 0 {
		l.Time = time.Unix(0, m.Time).UTC().Format(time.RFC3339Nano)
	}
	return l
}

// Export writes the messages of route ("" = all) as JSON lines, payload in
// base64, oldest first. It returns how many it wrote.
func (q *Queue) Export(route string, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	n := 0
	err := q.scan(pMsg, route, func(name string, seq uint64, v []byte) (bool, error) {
		var m Message
		if err := decodeMessage(v, &m); err != nil {
			return false, fmt.Errorf("message %d: %w", seq, err)
		}
		m.Route, m.Seq = name, seq
		n++
		return true, enc.Encode(line(&m))
	})
	return n, err
}

// ExportDeadLetters is Export for the dead-letter area (with "reason").
func (q *Queue) ExportDeadLetters(route string, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	n := 0
	err := q.scan(pDead, route, func(name string, seq uint64, v []byte) (bool, error) {
		var d DeadLetter
		if err := decodeDead(v, &d); err != nil {
			return false, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		d.Route, d.Seq = name, seq
		l := line(&d.Message)
		l.Reason = d.Reason
		n++
		return true, enc.Encode(l)
	})
	return n, err
}

// ErrNoRoute: the named route has no queue.
var ErrNoRoute = errors.New("no such route in the queue")

// scan walks the live messages (from each head cursor) or dead letters of
// route ("" = every route, in Next order) with values.
func (q *Queue) scan(prefix byte, route string, fn func(name string, seq uint64, v []byte) (bool, error)) error {
	if q.closed.Load() {
		return ErrClosed
	}
	type rr struct {
		name string
		id   uint32
		from uint64
	}
	var rs []rr
	q.mu.Lock()
	for _, rt := range q.order {
		if (route == "" || rt.name == route) && rt.id != 0 {
			from := uint64(0)
			if prefix == pMsg {
				from = rt.disk.head // no live message below it on disk
			}
			rs = append(rs, rr{rt.name, rt.id, from})
		}
	}
	_, known := q.routes[route]
	q.mu.Unlock()
	if route != "" && !known {
		return fmt.Errorf("%w: %q", ErrNoRoute, route)
	}
	return q.db.View(func(txn *badger.Txn) error {
		if prefix == pMsg {
			for _, r := range rs {
				marks := readMarks(txn, r.id)
				err := forSegments(txn, r.id, r.from, func(s uint64) bool { return isMarked(marks, s) },
					func(seq uint64, v []byte, _ bool) (bool, error) { return fn(r.name, seq, v) })
				if err != nil {
					return err
				}
			}
			return nil
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for _, r := range rs {
			pfx := routePrefix(prefix, r.id)
			for it.Seek(msgKey(prefix, r.id, r.from)); it.ValidForPrefix(pfx); it.Next() {
				item := it.Item()
				seq := binary.BigEndian.Uint64(item.Key()[5:])
				var more bool
				err := item.Value(func(v []byte) error {
					var err error
					more, err = fn(r.name, seq, v)
					return err
				})
				if err != nil {
					return err
				}
				if !more {
					break
				}
			}
		}
		return nil
	})
}

// Purge drops the messages of route older than olderThan (0 = all of them),
// counted with reason "purged". Ages need a sane clock; with olderThan > 0 and
// a clock before SaneAfter it refuses. It returns how many were dropped, once
// their deletes are written.
func (q *Queue) Purge(route string, olderThan time.Duration) (int, error) {
	if olderThan > 0 && !q.clock().After(SaneAfter) {
		return 0, fmt.Errorf("purging route %q: the system clock (%s) is not set; cannot judge ages", route, q.clock().UTC().Format(time.RFC3339))
	}
	q.mu.Lock()
	rt := q.routes[route]
	q.mu.Unlock()
	if rt == nil {
		return 0, fmt.Errorf("purging: %w: %q", ErrNoRoute, route)
	}
	q.purgeMu.Lock()
	defer q.purgeMu.Unlock()
	cut := q.clock().Add(-olderThan).UnixNano()
	type victim struct {
		seq  uint64
		size int64
	}
	var vs []victim
	total := 0
	apply := func() error {
		q.mu.Lock()
		n := 0
		for _, v := range vs {
			if rt.liveLocked(v.seq) {
				q.removeLocked(rt, v.seq, v.size, lifeDrop(ReasonPurged))
				rt.drops[ReasonPurged]++
				n++
			}
		}
		if n > 0 {
			q.noteDropLocked(route, ReasonPurged, n)
		}
		q.mu.Unlock()
		total += n
		vs = vs[:0]
		q.flushDrops()
		return q.syncDeletes()
	}
	err := q.scan(pMsg, route, func(_ string, seq uint64, v []byte) (bool, error) {
		if olderThan > 0 {
			t, err := valueTime(v)
			if err != nil || t < SaneAfter.UnixNano() || t >= cut {
				return true, nil
			}
		}
		vs = append(vs, victim{seq, int64(len(v))})
		if len(vs) >= purgeChunk {
			return true, apply() // bounded memory: the deletes are written as we go
		}
		return true, nil
	})
	if err == nil {
		err = apply()
	}
	if err != nil {
		return total, fmt.Errorf("purging route %q: %w", route, err)
	}
	return total, nil
}

const purgeChunk = 4096

// syncDeletes waits until the queued deletes are written.
func (q *Queue) syncDeletes() error {
	for range 64 {
		if err := q.sync(); err != nil {
			return err
		}
		q.mu.Lock()
		n, err := len(q.ops), q.writeErr
		q.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("writing deletes: %w", err)
		}
	}
	return nil
}

// dropDead queues the delete of rt's dead letter seq (size bytes) and takes
// it off the counts; q.mu is held. The delete is written by the next commit
// (syncDeletes waits for it).
func (q *Queue) dropDead(rt *route, seq uint64, size int64) {
	rt.dead--
	rt.deadBytes -= size
	q.bytes -= size
	q.ops = append(q.ops, op{rt: rt, key: msgKey(pDead, rt.id, seq), del: true, seq: seq, dDead: -1, dDeadBytes: -size})
}

// PurgeDeadLetters deletes the dead letters of route ("" = all).
func (q *Queue) PurgeDeadLetters(route string) (int, error) {
	q.purgeMu.Lock()
	defer q.purgeMu.Unlock()
	type dl struct {
		name string
		seq  uint64
		size int64
	}
	var all []dl
	err := q.scan(pDead, route, func(name string, seq uint64, v []byte) (bool, error) {
		all = append(all, dl{name, seq, int64(len(v))})
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("purging dead letters: %w", err)
	}
	q.mu.Lock()
	for _, d := range all {
		q.dropDead(q.routes[d.name], d.seq, d.size)
	}
	q.mu.Unlock()
	if err := q.syncDeletes(); err != nil {
		return len(all), fmt.Errorf("purging dead letters: %w", err)
	}
	return len(all), nil
}
