package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/store"
)

// smokeRoute is the one route the smoke test queues on; smokeWriters
// enqueue concurrently, writer w the messages i with i%smokeWriters == w.
const (
	smokeRoute   = "smoke"
	smokeWriters = 8
)

// newQueueSmokeCmd is the hidden `edgegw queue smoke`: an end-to-end check of
// the durable queue on this machine and architecture (the packaging test runs
// the armhf binary under qemu: 32-bit Badger on ARMv6). It works only on an
// empty or missing directory, so it cannot touch a real queue.
func newQueueSmokeCmd(a *app, f *queueFlags) *cobra.Command {
	n := 0
	cmd := &cobra.Command{
		Use:   "smoke --dir D [-n N] [--encryption-key URI]",
		Short: "Self-test of the queue on this machine: enqueue, reopen, drain in order, reopen empty",
		Long: `Opens a new queue in --dir (missing or empty), enqueues N messages with distinct
payloads from several writers (group commit), closes it, reopens it, drains it with
Next and Ack, checks that every message came back once, in sequence order, with its
payload, then reopens it and checks that it is empty. Prints one summary line; exits
1 on any mismatch.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.dir == "" {
				return &exitError{code: 2, err: errors.New("queue smoke: --dir is required (a missing or empty directory)")}
			}
			if n < 1 {
				return &exitError{code: 2, err: fmt.Errorf("queue smoke: -n %d: want at least 1", n)}
			}
			return a.queueSmoke(f, n)
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 1000, "messages to enqueue")
	return cmd
}

func (a *app) queueSmoke(f *queueFlags, n int) error {
	fail := func(format string, args ...any) error {
		return &exitError{code: 1, err: fmt.Errorf("queue smoke: "+format, args...)}
	}
	if ents, err := os.ReadDir(f.dir); err == nil && len(ents) > 0 {
		return fail("%s is not empty: give a new directory (this test must not touch a real queue)", f.dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("%v", err)
	}
	opts := store.Options{Dir: f.dir}
	if f.key != "" {
		cfg := &config.Config{Store: config.StoreConfig{Dir: f.dir, EncryptionKey: f.key}}
		var err error
		if opts, err = gateway.StoreOptionsFromConfig(a.ctx, cfg); err != nil {
			return fail("%v", err)
		}
	}
	log, err := a.logger(nil)
	if err != nil {
		return err
	}
	opts.Logger = log
	opts.Routes = []store.RouteLimits{{Name: smokeRoute}}
	open := func(step string) (*store.Queue, error) {
		q, err := store.Open(opts)
		if err != nil {
			return nil, fail("%s: %v", step, err)
		}
		return q, nil
	}
	start := time.Now()

	// 1. Enqueue from several writers, so commits are shared (group commit).
	q, err := open("opening a new queue")
	if err != nil {
		return err
	}
	bySeq, err := smokeEnqueue(a.ctx, q, n)
	if cerr := q.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing after enqueue: %w", cerr)
	}
	if err != nil {
		return fail("%v", err)
	}

	// 2. Reopen; drain everything in order with Next + Ack.
	if q, err = open("reopening"); err != nil {
		return err
	}
	if d := q.Stats().Depth; d != int64(n) {
		_ = q.Close()
		return fail("after reopening: depth %d; want %d", d, n)
	}
	err = smokeDrain(a.ctx, q, bySeq)
	if cerr := q.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing after drain: %w", cerr)
	}
	if err != nil {
		return fail("%v", err)
	}

	// 3. Reopen: nothing left, nothing handed out.
	if q, err = open("reopening after the drain"); err != nil {
		return err
	}
	st := q.Stats()
	ctx, cancel := context.WithTimeout(a.ctx, 200*time.Millisecond)
	m, nerr := q.Next(ctx)
	cancel()
	if cerr := q.Close(); cerr != nil {
		return fail("closing the empty queue: %v", cerr)
	}
	if st.Depth != 0 || st.DeadLetters != 0 {
		return fail("after the drain and a reopen: depth %d, dead letters %d; want 0, 0", st.Depth, st.DeadLetters)
	}
	if nerr == nil {
		return fail("after the drain and a reopen: Next returned seq %d; want nothing", m.Seq)
	}
	if !errors.Is(nerr, context.DeadlineExceeded) {
		return fail("after the drain and a reopen: Next: %v; want nothing to wait for", nerr)
	}
	fmt.Fprintf(a.stdout, "queue smoke: ok: %d messages enqueued, reopened, drained in order and acked, empty after reopen (%s/%s, encrypted %v, %s)\n",
		n, runtime.GOOS, runtime.GOARCH, opts.EncryptionKey != nil, time.Since(start).Round(time.Millisecond))
	return nil
}

// smokePayload is message i's payload: distinct, 16 to 527 bytes.
func smokePayload(i int) []byte {
	p := fmt.Appendf(nil, "smoke-%08d-", i)
	for j := range i % 512 {
		p = append(p, byte('a'+(i+j)%26))
	}
	return p
}

// smokeEnqueue enqueues n messages from smokeWriters writers and returns the message
// index each sequence number was given.
func smokeEnqueue(ctx context.Context, q *store.Queue, n int) (map[uint64]int, error) {
	var (
		mu    sync.Mutex
		bySeq = make(map[uint64]int, n)
		errs  []error
		wg    sync.WaitGroup
	)
	for w := range smokeWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += smokeWriters {
				seq, err := q.Enqueue(ctx, store.Message{Route: smokeRoute, Topic: "smoke/t", Payload: smokePayload(i),
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
		}()
	}
	wg.Wait()
	return bySeq, errors.Join(errs...)
}

// smokeDrain takes every message with Next, checks order (ascending seqs;
// each writer's messages in the order it wrote them) and content, and acks it.
func smokeDrain(ctx context.Context, q *store.Queue, bySeq map[uint64]int) error {
	var last uint64
	lastOf := [smokeWriters]int{}
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
		case i <= lastOf[i%smokeWriters]:
			return fmt.Errorf("drain: message %d after message %d of the same writer: out of order", i, lastOf[i%smokeWriters])
		case !bytes.Equal(m.Payload, smokePayload(i)) || m.Route != smokeRoute || m.Topic != "smoke/t" || m.Device != "smoke" || m.QoS != 1:
			return fmt.Errorf("drain: seq %d (message %d) came back altered: route %q topic %q device %q qos %d, payload %d bytes",
				m.Seq, i, m.Route, m.Topic, m.Device, m.QoS, len(m.Payload))
		}
		last, lastOf[i%smokeWriters] = m.Seq, i
		if err := q.Ack(m.Seq); err != nil {
			return fmt.Errorf("drain: ack seq %d: %w", m.Seq, err)
		}
	}
	return nil
}
