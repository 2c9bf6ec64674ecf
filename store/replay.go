package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DeadFilter selects dead letters for ReplayDeadLetters. Every field that is
// set must match; the zero filter selects every dead letter of every route.
//
// Ages and times are those of the move to the dead-letter area (DeadLetter.At),
// not of the original publish. A dead letter moved while the clock was not
// sane (before SaneAfter) has no known time: it matches no time filter.
type DeadFilter struct {
	Route string // "" = every route
	// Reason matches dead letters whose recorded reason contains it, case
	// folded: the bridge records "upstream PUBACK 0x87 not authorized ..."
	// for a refusal, so "0x87", "not authorized" or the full text all work.
	Reason string
	// OlderThan and NewerThan are ages against the queue's clock (Options.Clock);
	// they need a sane clock (ReplayDeadLetters refuses otherwise).
	OlderThan, NewerThan time.Duration
	// Since and Until are absolute bounds: moved at or after Since, before Until.
	Since, Until time.Time
}

// timed says whether the filter looks at times.
func (f DeadFilter) timed() bool {
	return f.OlderThan > 0 || f.NewerThan > 0 || !f.Since.IsZero() || !f.Until.IsZero()
}

// String says what the filter selects, for logs and the audit trail.
func (f DeadFilter) String() string {
	var s []string
	if f.Route != "" {
		s = append(s, "route "+f.Route)
	}
	if f.Reason != "" {
		s = append(s, fmt.Sprintf("reason contains %q", f.Reason))
	}
	if f.OlderThan > 0 {
		s = append(s, "older than "+f.OlderThan.String())
	}
	if f.NewerThan > 0 {
		s = append(s, "newer than "+f.NewerThan.String())
	}
	if !f.Since.IsZero() {
		s = append(s, "since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		s = append(s, "until "+f.Until.UTC().Format(time.RFC3339))
	}
	if len(s) == 0 {
		return "all"
	}
	return strings.Join(s, ", ")
}

// deadMatcher is a DeadFilter with its ages turned into times once.
type deadMatcher struct {
	reason string
	timed  bool
	lo, hi int64 // At in [lo, hi)
}

func (q *Queue) matcher(f DeadFilter) (deadMatcher, error) {
	m := deadMatcher{reason: strings.ToLower(f.Reason), timed: f.timed(), lo: SaneAfter.UnixNano(), hi: 1<<63 - 1}
	if f.OlderThan < 0 || f.NewerThan < 0 {
		return m, fmt.Errorf("%w: negative age in the dead-letter filter", ErrInvalid)
	}
	now := q.clock()
	if (f.OlderThan > 0 || f.NewerThan > 0) && !now.After(SaneAfter) {
		return m, fmt.Errorf("the system clock (%s) is not set; cannot judge ages (give times instead, or set the clock)", now.UTC().Format(time.RFC3339))
	}
	if f.OlderThan > 0 {
		m.hi = min(m.hi, now.Add(-f.OlderThan).UnixNano())
	}
	if f.NewerThan > 0 {
		m.lo = max(m.lo, now.Add(-f.NewerThan).UnixNano())
	}
	if !f.Since.IsZero() {
		m.lo = max(m.lo, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		m.hi = min(m.hi, f.Until.UnixNano())
	}
	return m, nil
}

func (m deadMatcher) match(d *DeadLetter) bool {
	if d.Reason == ReasonDamaged {
		return false // no topic to send it to
	}
	if m.reason != "" && !strings.Contains(strings.ToLower(d.Reason), m.reason) {
		return false
	}
	return !m.timed || (d.At >= m.lo && d.At < m.hi)
}

// ReplayRoute is one route's share of a replay.
type ReplayRoute struct {
	Route    string
	Replayed int // queued again and removed from the dead letters
	Kept     int // left in the dead-letter area: not matching, or damaged
}

// ReplayReport is what ReplayDeadLetters did, per route in Next order
// (routes with no dead letters are left out).
type ReplayReport struct {
	Routes         []ReplayRoute
	Replayed, Kept int
}

// replayChunk bounds the dead letters held in memory at once.
const replayChunk = 1024

// ReplayDeadLetters moves the dead letters f selects back into their route:
// each is queued again (a new sequence number, at the back of the route, in
// the order of the dead letters), durably, and only then removed from the
// dead-letter area, one by one, so those f does not select stay where they
// are. A crash in between leaves a message both queued and dead-lettered
// (sent twice by a later replay), never lost. Dead letters moved while the
// replay runs (e.g. the upstream refuses the replayed copies) are not
// replayed by it: it stops at the sequence number it started at, so each
// dead letter is replayed at most once per call. ReasonDamaged dead letters
// are never replayed (their message does not read); they count as kept.
//
// Route limits apply to the replayed messages as to any other (a full route
// drops or refuses per its overflow policy). On an error the report counts
// what was replayed before it.
func (q *Queue) ReplayDeadLetters(ctx context.Context, f DeadFilter) (ReplayReport, error) {
	var rep ReplayReport
	if q.closed.Load() {
		return rep, ErrClosed
	}
	m, err := q.matcher(f)
	if err != nil {
		return rep, fmt.Errorf("replaying dead letters: %w", err)
	}
	// Dead letters moved before the call are counted at once but written
	// with the next commit: write them, so the scan below sees them.
	if err := q.syncDeletes(); err != nil {
		return rep, fmt.Errorf("replaying dead letters: %w", err)
	}
	var routes []*route
	q.mu.Lock()
	for _, rt := range q.order {
		if (f.Route == "" || rt.name == f.Route) && rt.id != 0 && rt.dead > 0 {
			routes = append(routes, rt)
		}
	}
	_, known := q.routes[f.Route]
	mark := q.nextSeq // dead letters at or above it are newer than the replay
	q.mu.Unlock()
	if f.Route != "" && !known {
		return rep, fmt.Errorf("replaying dead letters: %w: %q", ErrNoRoute, f.Route)
	}
	for _, rt := range routes {
		rr := ReplayRoute{Route: rt.name}
		err := q.replayRoute(ctx, rt, m, mark, &rr)
		rep.Routes = append(rep.Routes, rr)
		rep.Replayed += rr.Replayed
		rep.Kept += rr.Kept
		if err != nil {
			return rep, fmt.Errorf("replaying the dead letters of route %q (%d replayed): %w", rt.name, rr.Replayed, err)
		}
	}
	return rep, nil
}

// deadRef is a dead letter selected for replay.
type deadRef struct {
	seq  uint64
	size int64
	m    Message
}

func (q *Queue) replayRoute(ctx context.Context, rt *route, m deadMatcher, mark uint64, rr *ReplayRoute) error {
	from := uint64(0)
	for {
		var sel []deadRef
		more := false
		pfx := routePrefix(pDead, rt.id)
		err := q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
			defer it.Close()
			for it.Seek(msgKey(pDead, rt.id, from)); it.ValidForPrefix(pfx); it.Next() {
				item := it.Item()
				seq := binary.BigEndian.Uint64(item.Key()[5:])
				if seq >= mark {
					return nil
				}
				if len(sel) >= replayChunk {
					more, from = true, seq
					return nil
				}
				err := item.Value(func(v []byte) error {
					var d DeadLetter
					if err := decodeDead(v, &d); err != nil {
						return fmt.Errorf("dead letter %d: %w", seq, err)
					}
					if !m.match(&d) {
						rr.Kept++
						return nil
					}
					msg := d.Message
					msg.Route, msg.Seq, msg.Time = rt.name, 0, 0
					msg.Payload = append([]byte(nil), msg.Payload...)
					sel = append(sel, deadRef{seq: seq, size: int64(len(v)), m: msg})
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		// Submit keeps the order of the calls; all are waited for, so that
		// only those that were stored leave the dead-letter area.
		tickets := make([]Ticket, 0, len(sel))
		var firstErr error
		for i := range sel {
			t, err := q.Submit(ctx, sel[i].m)
			if err != nil {
				firstErr = fmt.Errorf("queueing dead letter %d: %w", sel[i].seq, err)
				break
			}
			tickets = append(tickets, t)
		}
		done := sel[:0]
		for i, t := range tickets {
			if _, err := t.Wait(ctx); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("queueing dead letter %d: %w", sel[i].seq, err)
				}
				continue
			}
			done = append(done, sel[i])
		}
		kept := len(sel) - len(done)
		n, err := q.removeDead(rt, done)
		rr.Replayed += n
		rr.Kept += kept
		if err != nil {
			return fmt.Errorf("queued again, but %w: a later replay sends them twice (purge the route's dead letters once they are delivered)", err)
		}
		if firstErr != nil {
			return firstErr
		}
		if !more {
			return nil
		}
	}
}

// removeDead deletes the dead letters ds of rt that are still there (a
// purge may have removed some meanwhile) and waits until that is written.
func (q *Queue) removeDead(rt *route, ds []deadRef) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	q.purgeMu.Lock()
	defer q.purgeMu.Unlock()
	var there []deadRef
	err := q.db.View(func(txn *badger.Txn) error {
		for _, d := range ds {
			_, err := txn.Get(msgKey(pDead, rt.id, d.seq))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			there = append(there, d)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	for _, d := range there {
		q.dropDead(rt, d.seq, d.size)
	}
	q.mu.Unlock()
	if err := q.syncDeletes(); err != nil {
		return len(there), fmt.Errorf("removing replayed dead letters: %w", err)
	}
	return len(there), nil
}
