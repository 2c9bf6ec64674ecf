package selftest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/edgegw/edgegw/store"
)

// Route is the one route the self-test queues on.
const Route = "smoke"

// DefaultWriters is how many writers enqueue concurrently when Run is given
// fewer than one.
const DefaultWriters = 8

// Run checks the queue on this machine with n messages (n >= 1) from writers
// concurrent writers, writer w enqueueing the messages i with i%writers == w.
// opts.Dir must be missing or empty, so it cannot touch a real queue; its
// Routes are replaced by Route. The error says which step failed and how.
func Run(ctx context.Context, opts store.Options, n, writers int) error {
	if n < 1 {
		return fmt.Errorf("%d messages: want at least 1", n)
	}
	if writers < 1 {
		writers = DefaultWriters
	}
	if ents, err := os.ReadDir(opts.Dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty: give a new directory (this test must not touch a real queue)", opts.Dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	opts.Routes = []store.RouteLimits{{Name: Route}}
	open := func(step string) (*store.Queue, error) {
		q, err := store.Open(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", step, err)
		}
		return q, nil
	}

	// 1. Enqueue from several writers, so commits are shared (group commit).
	q, err := open("opening a new queue")
	if err != nil {
		return err
	}
	bySeq, err := enqueue(ctx, q, n, writers)
	if err := closeAfter(q, "enqueue", err); err != nil {
		return err
	}

	// 2. Reopen; drain everything in order with Next + Ack.
	if q, err = open("reopening"); err != nil {
		return err
	}
	if d := q.Stats().Depth; d != int64(n) {
		_ = q.Close()
		return fmt.Errorf("after reopening: depth %d; want %d", d, n)
	}
	if err := closeAfter(q, "drain", drain(ctx, q, bySeq, writers)); err != nil {
		return err
	}

	// 3. Reopen: nothing left, nothing handed out.
	if q, err = open("reopening after the drain"); err != nil {
		return err
	}
	return checkEmpty(ctx, q)
}

// closeAfter closes q after step and returns the step's error err, or the
// close error when the step went well.
func closeAfter(q *store.Queue, step string, err error) error {
	if cerr := q.Close(); err == nil && cerr != nil {
		return fmt.Errorf("closing after %s: %w", step, cerr)
	}
	return err
}

// checkEmpty checks and closes q, which must hold nothing.
func checkEmpty(ctx context.Context, q *store.Queue) error {
	st := q.Stats()
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	m, nerr := q.Next(ctx)
	cancel()
	if cerr := q.Close(); cerr != nil {
		return fmt.Errorf("closing the empty queue: %w", cerr)
	}
	if st.Depth != 0 || st.DeadLetters != 0 {
		return fmt.Errorf("after the drain and a reopen: depth %d, dead letters %d; want 0, 0", st.Depth, st.DeadLetters)
	}
	if nerr == nil {
		return fmt.Errorf("after the drain and a reopen: Next returned seq %d; want nothing", m.Seq)
	}
	if !errors.Is(nerr, context.DeadlineExceeded) {
		return fmt.Errorf("after the drain and a reopen: Next: %w; want nothing to wait for", nerr)
	}
	return nil
}

// Payload is message i's payload: distinct, 15 to 526 bytes.
func Payload(i int) []byte {
	p := fmt.Appendf(nil, "smoke-%08d-", i)
	for j := range i % 512 {
		p = append(p, byte('a'+(i+j)%26))
	}
	return p
}

// enqueue enqueues n messages from writers writers and returns the message
// index each sequence number was given.
func enqueue(ctx context.Context, q *store.Queue, n, writers int) (map[uint64]int, error) {
	var (
		mu    sync.Mutex
		bySeq = make(map[uint64]int, n)
		errs  []error
		wg    sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				seq, err := q.Enqueue(ctx, store.Message{Route: Route, Topic: "smoke/t", Payload: Payload(i),
					QoS: 1, Device: "smoke", Time: time.Now().UnixNano()})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("enqueue %d: %w", i, err))
				} else if prev, dup := bySeq[seq]; dup {
					errs = append(errs, fmt.Errorf("enqueue %d: seq %d already given to message %d", i, seq, prev))
				} else {
					bySeq[seq] = i
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return bySeq, errors.Join(errs...)
}

// drain takes every message with Next, checks order (ascending seqs; each
// writer's messages in the order it wrote them) and content, and acks it.
func drain(ctx context.Context, q *store.Queue, bySeq map[uint64]int, writers int) error {
	var last uint64
	lastOf := make([]int, writers)
	for w := range lastOf {
		lastOf[w] = -1
	}
	for got := range len(bySeq) {
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := q.Next(nctx)
		cancel()
		if err != nil {
			return fmt.Errorf("drain: message %d of %d: Next: %w", got+1, len(bySeq), err)
		}
		i, ok := bySeq[m.Seq]
		switch {
		case !ok:
			return fmt.Errorf("drain: Next returned seq %d, which was never enqueued", m.Seq)
		case got > 0 && m.Seq <= last:
			return fmt.Errorf("drain: seq %d after seq %d: out of order", m.Seq, last)
		case i <= lastOf[i%writers]:
			return fmt.Errorf("drain: message %d after message %d of the same writer: out of order", i, lastOf[i%writers])
		case !bytes.Equal(m.Payload, Payload(i)) || m.Route != Route || m.Topic != "smoke/t" || m.Device != "smoke" || m.QoS != 1:
			return fmt.Errorf("drain: seq %d (message %d) came back altered: route %q topic %q device %q qos %d, payload %d bytes",
				m.Seq, i, m.Route, m.Topic, m.Device, m.QoS, len(m.Payload))
		}
		last, lastOf[i%writers] = m.Seq, i
		if err := q.Ack(m.Seq); err != nil {
			return fmt.Errorf("drain: ack seq %d: %w", m.Seq, err)
		}
	}
	return nil
}
