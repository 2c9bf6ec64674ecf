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
	Name        string
	Configured  bool // false: removed by a reload, kept until drained or purged
	Priority    int
	Depth       int64 // live messages (handed out or not)
	Bytes       int64
	InFlight    int // handed out, not acked
	OldestSeq   uint64
	OldestAge   time.Duration     // 0 when unknown (empty, or the clock is not sane)
	Enqueued    uint64            // since Open
	Acked       uint64            // since Open
	Rejected    uint64            // ErrQuota since Open
	Drops       map[string]uint64 // by reason, since Open
	DeadLetters int64
	DeadBytes   int64
}

// Stats describes the whole queue.
type Stats struct {
	Routes         []RouteStats // in Next order: priority desc, name
	Depth, Bytes   int64        // Bytes includes dead letters
	MaxBytes       int64
	FreeBytes      uint64 // at the last commit
	MinFreeBytes   uint64
	RejectedFull   uint64 // ErrFull since Open
	DeadLetters    int64
	NextSeq        uint64
	CorruptMovedTo string // set when Open moved a damaged queue aside
}

// Stats returns a snapshot.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	s := Stats{MaxBytes: q.opts.MaxBytes, FreeBytes: q.free, MinFreeBytes: q.minFree,
		RejectedFull: q.rejected["full"], NextSeq: q.nextSeq, CorruptMovedTo: q.movedTo, Bytes: q.bytes}
	keys := make([][]byte, len(q.order))
	for i, rt := range q.order {
		rs := RouteStats{Name: rt.name, Configured: rt.configured, Priority: rt.lim.Priority,
			Depth: rt.depth, Bytes: rt.bytes, Enqueued: rt.enqueued, Acked: rt.acked,
			Rejected: q.rejected[rt.name], Drops: maps.Clone(rt.drops), DeadLetters: rt.dead, DeadBytes: rt.deadBytes}
		for j := 0; j < rt.next && j < rt.r.len(); j++ {
			if _, _, dead := rt.r.at(j); !dead {
				rs.InFlight++
			}
		}
		if rt.r.len() > 0 {
			rs.OldestSeq, _, _ = rt.r.at(0)
			keys[i] = msgKey(pMsg, rt.id, rs.OldestSeq)
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
		if t, err := q.msgTime(k); err == nil && t >= SaneAfter.UnixNano() && t <= now.UnixNano() {
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
			if prefix == pMsg && rt.r.len() > 0 {
				from, _, _ = rt.r.at(0)
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
// a clock before SaneAfter it refuses. It returns how many were dropped.
func (q *Queue) Purge(route string, olderThan time.Duration) (int, error) {
	if olderThan > 0 && !q.clock().After(SaneAfter) {
		return 0, fmt.Errorf("purging route %q: the system clock (%s) is not set; cannot judge ages", route, q.clock().UTC().Format(time.RFC3339))
	}
	var seqs []uint64
	if olderThan == 0 {
		q.mu.Lock()
		rt := q.routes[route]
		if rt != nil {
			for i := 0; i < rt.r.len(); i++ {
				if s, _, dead := rt.r.at(i); !dead {
					seqs = append(seqs, s)
				}
			}
		}
		q.mu.Unlock()
		if rt == nil {
			return 0, fmt.Errorf("purging: %w: %q", ErrNoRoute, route)
		}
	} else {
		cut := q.clock().Add(-olderThan).UnixNano()
		err := q.scan(pMsg, route, func(_ string, seq uint64, v []byte) (bool, error) {
			if len(v) >= 11 {
				if t := int64(binary.BigEndian.Uint64(v[3:])); t >= SaneAfter.UnixNano() && t < cut {
					seqs = append(seqs, seq)
				}
			}
			return true, nil
		})
		if err != nil {
			return 0, fmt.Errorf("purging route %q: %w", route, err)
		}
	}
	n := 0
	q.mu.Lock()
	for _, seq := range seqs {
		if rt, i, ok := q.findLocked(seq); ok {
			q.removeLocked(rt, i)
			rt.drops[ReasonPurged]++
			q.ops = append(q.ops, op{key: msgKey(pMsg, rt.id, seq), del: true})
			n++
		}
	}
	if n > 0 {
		q.noteDropLocked(route, ReasonPurged, n)
	}
	q.mu.Unlock()
	q.kickCommitter()
	q.flushDrops()
	return n, nil
}

// PurgeDeadLetters deletes the dead letters of route ("" = all).
func (q *Queue) PurgeDeadLetters(route string) (int, error) {
	type dl struct {
		id   uint32
		seq  uint64
		size int64
	}
	var all []dl
	err := q.scan(pDead, route, func(name string, seq uint64, v []byte) (bool, error) {
		q.mu.Lock()
		id := q.routes[name].id
		q.mu.Unlock()
		all = append(all, dl{id, seq, int64(len(v))})
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("purging dead letters: %w", err)
	}
	q.mu.Lock()
	for _, d := range all {
		rt := q.byID[d.id]
		rt.dead--
		rt.deadBytes -= d.size
		q.bytes -= d.size
		q.ops = append(q.ops, op{key: msgKey(pDead, d.id, d.seq), del: true})
	}
	q.mu.Unlock()
	q.kickCommitter()
	return len(all), nil
}
