package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSubmitOrder: several pipelined writers (each submits a window of
// messages before waiting any): the sequence numbers of one writer follow its
// Submit order, no seq is given twice, and Next hands them out in that order.
func TestSubmitOrder(t *testing.T) {
	cases := []struct {
		name             string
		writers, n, wind int
	}{
		{name: "one writer, window 1", writers: 1, n: 200, wind: 1},
		{name: "one writer, window 64", writers: 1, n: 1000, wind: 64},
		{name: "8 writers, window 32", writers: 8, n: 300, wind: 32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := openT(t, Options{Routes: []RouteLimits{{Name: "r"}}})
			seqs := make([][]uint64, c.writers)
			var wg sync.WaitGroup
			for w := range c.writers {
				wg.Go(func() {
					var win []Ticket
					wait := func() {
						seq, err := win[0].Wait(context.Background())
						if err != nil {
							t.Errorf("writer %d: Wait: %v", w, err)
						}
						seqs[w] = append(seqs[w], seq)
						win = win[1:]
					}
					for i := range c.n {
						tk, err := q.Submit(context.Background(), Message{Route: "r", Topic: "t", Payload: fmt.Appendf(nil, "%d/%d", w, i), QoS: 1})
						if err != nil {
							t.Errorf("writer %d: Submit #%d: %v", w, i, err)
							return
						}
						if win = append(win, tk); len(win) >= c.wind {
							wait()
						}
					}
					for len(win) > 0 {
						wait()
					}
				})
			}
			wg.Wait()
			seen := map[uint64]string{}
			for w, ss := range seqs {
				if len(ss) != c.n {
					t.Fatalf("writer %d: %d seqs; want %d", w, len(ss), c.n)
				}
				for i, s := range ss {
					if i > 0 && s <= ss[i-1] {
						t.Fatalf("writer %d: seq of #%d is %d after %d; want increasing in Submit order", w, i, s, ss[i-1])
					}
					if prev, dup := seen[s]; dup {
						t.Fatalf("seq %d given to %s and %d/%d", s, prev, w, i)
					}
					seen[s] = fmt.Sprintf("%d/%d", w, i)
				}
			}
			// Next: FIFO by seq, and each writer's payloads in its order.
			next := make([]int, c.writers)
			var last uint64
			for range c.writers * c.n {
				m := next1(t, q)
				if m.Seq <= last && last != 0 {
					t.Fatalf("Next seq %d after %d", m.Seq, last)
				}
				last = m.Seq
				var w, i int
				if _, err := fmt.Sscanf(string(m.Payload), "%d/%d", &w, &i); err != nil || i != next[w] {
					t.Fatalf("Next: payload %q (seq %d); want %d/%d", m.Payload, m.Seq, w, next[w])
				}
				if seen[m.Seq] != string(m.Payload) {
					t.Fatalf("seq %d carries %q; Wait returned it for %s", m.Seq, m.Payload, seen[m.Seq])
				}
				next[w]++
			}
		})
	}
}

func next1(t *testing.T, q *Queue) Message {
	t.Helper()
	m, err := q.Next(context.Background())
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

// TestSubmitWaitAfterClose: Close commits what was submitted before it; the
// tickets are still waitable afterwards, and the messages are there on reopen.
func TestSubmitWaitAfterClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q, err := Open(Options{Dir: dir, Routes: []RouteLimits{{Name: "r"}}})
	if err != nil {
		t.Fatal(err)
	}
	var tks []Ticket
	for i := range 50 {
		tk, err := q.Submit(context.Background(), Message{Route: "r", Topic: "t", Payload: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Fatalf("Submit #%d: %v", i, err)
		}
		tks = append(tks, tk)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i, tk := range tks {
		seq, err := tk.Wait(context.Background())
		if err != nil {
			t.Fatalf("Wait #%d after Close: %v; want its seq (Close commits what was submitted)", i, err)
		}
		seqs = append(seqs, seq)
	}
	if _, err := q.Submit(context.Background(), Message{Route: "r", Topic: "t"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v; want ErrClosed", err)
	}
	q2 := openT(t, Options{Dir: dir})
	for i, want := range seqs {
		m := next1(t, q2)
		if m.Seq != want || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("after reopen: seq %d %q; want %d %q", m.Seq, m.Payload, want, fmt.Sprint(i))
		}
	}
}

// TestSubmitErrors: the same refusals as Enqueue, from Submit when no commit
// is needed to know, from Wait otherwise.
func TestSubmitErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name       string
		opts       Options
		msgs       []Message
		submitErrs []error // per message; nil = Submit succeeds
		waitErrs   []error // per submitted message
	}{
		{name: "no route", msgs: []Message{{Topic: "t"}}, submitErrs: []error{ErrInvalid}},
		{name: "route name too long", msgs: []Message{{Route: strings.Repeat("r", 256)}}, submitErrs: []error{ErrInvalid}},
		{name: "too big", msgs: []Message{{Route: "r", Payload: make([]byte, MaxMessageBytes)}}, submitErrs: []error{ErrInvalid}},
		{name: "route quota (reject)", opts: Options{Routes: []RouteLimits{{Name: "r", MaxMessages: 2, Overflow: Reject}}},
			msgs:       []Message{{Route: "r"}, {Route: "r"}, {Route: "r"}, {Route: "r"}},
			submitErrs: []error{nil, nil, nil, nil}, waitErrs: []error{nil, nil, ErrQuota, ErrQuota}},
		// each message: 3+8+1+3+1+4+10 = 30 bytes
		{name: "queue byte cap", opts: Options{MaxBytes: 70},
			msgs:       []Message{{Route: "r", Payload: make([]byte, 10)}, {Route: "r", Payload: make([]byte, 10)}, {Route: "r", Payload: make([]byte, 10)}},
			submitErrs: []error{nil, nil, nil}, waitErrs: []error{nil, nil, ErrFull}},
		{name: "disk below watermark", opts: Options{Statfs: func(string) (uint64, error) { return MinReserve, nil }},
			msgs: []Message{{Route: "r"}}, submitErrs: []error{nil}, waitErrs: []error{ErrFull}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := openT(t, c.opts)
			var tks []Ticket
			for i, m := range c.msgs {
				m.Topic = "t"
				tk, err := q.Submit(context.Background(), m)
				if want := c.submitErrs[i]; !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("Submit #%d: %v; want %v", i, err, want)
				}
				if err == nil {
					tks = append(tks, tk)
				}
			}
			for i, tk := range tks {
				_, err := tk.Wait(context.Background())
				if want := c.waitErrs[i]; !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("Wait #%d: %v; want %v", i, err, want)
				}
			}
			// Enqueue, the same path, refuses the same way.
			if len(c.msgs) == 1 {
				_, err := q.Enqueue(context.Background(), Message{Route: c.msgs[0].Route, Topic: "t", Payload: c.msgs[0].Payload})
				want := c.submitErrs[0]
				if want == nil {
					want = c.waitErrs[0]
				}
				if !errors.Is(err, want) {
					t.Fatalf("Enqueue: %v; want %v", err, want)
				}
			}
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		q := openT(t, Options{})
		tk, err := q.Submit(context.Background(), Message{Route: "r", Topic: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(cancelled); !errors.Is(err, context.Canceled) {
			// The commit may have been faster than the select: both are fine
			// only if the message is then really stored.
			if err != nil {
				t.Fatalf("Wait(cancelled): %v; want context.Canceled or success", err)
			}
		}
	})
	t.Run("zero ticket", func(t *testing.T) {
		if _, err := (Ticket{}).Wait(context.Background()); !errors.Is(err, ErrInvalid) {
			t.Fatalf("zero Ticket Wait: %v; want ErrInvalid", err)
		}
	})
}

// TestTicketReady: Ready is false for the zero Ticket, becomes true once the
// commit is synced without consuming the outcome (Wait still returns the
// seq), and a ticket of a later commit is ready only after its own commit.
func TestTicketReady(t *testing.T) {
	if (Ticket{}).Ready() {
		t.Fatal("zero Ticket is Ready")
	}
	q := openT(t, Options{Routes: []RouteLimits{{Name: "r"}}})
	var tks []Ticket
	for i := range 20 {
		tk, err := q.Submit(context.Background(), Message{Route: "r", Topic: "t", Payload: fmt.Appendf(nil, "%d", i), QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		tks = append(tks, tk)
	}
	// Wait for the last: every earlier one is in the same or an earlier
	// commit, so all of them are ready then.
	last, err := tks[19].Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range tks[:19] {
		if !tk.Ready() {
			t.Fatalf("ticket %d not Ready after a later ticket's Wait returned", i)
		}
		if !tk.Ready() {
			t.Fatalf("ticket %d: Ready consumed the outcome", i)
		}
		seq, err := tk.Wait(context.Background())
		if err != nil || seq >= last {
			t.Fatalf("ticket %d: Wait = %d, %v; want a seq below %d", i, seq, err, last)
		}
	}
}

// TestErr: Err is nil while commits succeed, reports a failed commit's
// write error (its messages are refused) until a commit succeeds again, and
// ErrClosed after Close.
func TestErr(t *testing.T) {
	q := openT(t, Options{Routes: []RouteLimits{{Name: "r"}}})
	enqueue := func() error {
		_, err := q.Enqueue(context.Background(), Message{Route: "r", Topic: "t", Payload: []byte("x"), QoS: 1})
		return err
	}
	if err := enqueue(); err != nil {
		t.Fatal(err)
	}
	if err := q.Err(); err != nil {
		t.Fatalf("Err after a good commit: %v", err)
	}
	disk := errors.New("input/output error")
	q.failWrite.Store(&disk)
	if err := enqueue(); !errors.Is(err, disk) {
		t.Fatalf("Enqueue during a write failure: %v; want %v", err, disk)
	}
	if err := q.Err(); !errors.Is(err, disk) {
		t.Fatalf("Err after a failed commit: %v; want %v", err, disk)
	}
	q.failWrite.Store(nil)
	if err := enqueue(); err != nil {
		t.Fatalf("Enqueue after the failure ended: %v", err)
	}
	if err := q.Err(); err != nil {
		t.Fatalf("Err after a good commit again: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err after Close: %v; want ErrClosed", err)
	}
}

// setLinger bounds the committer's wait for company by bound alone (not by
// the last fdatasync) and sets lingerStale, until the end of t. Call it
// before opening the queue: the restore is a cleanup, run after the
// queue's Close (a deferred one would race with a committer still
// running after a failure).
func setLinger(t *testing.T, bound, stale time.Duration) {
	share, m, st := lingerShare, lingerMax, lingerStale
	t.Cleanup(func() { lingerShare, lingerMax, lingerStale = share, m, st })
	lingerShare, lingerMax, lingerStale = 1e6, bound, stale
}

// openHeldFirstSync opens a queue of route "r" whose first group commit
// closes entered after its fdatasync and waits for gate to be closed before
// it releases its writers; syncs counts the fdatasyncs.
func openHeldFirstSync(t *testing.T) (q *Queue, syncs *atomic.Int64, entered, gate chan struct{}) {
	t.Helper()
	syncs = new(atomic.Int64)
	entered, gate = make(chan struct{}), make(chan struct{})
	q = openT(t, Options{Routes: []RouteLimits{{Name: "r"}}, OnSync: func(time.Duration) {
		if syncs.Add(1) == 1 {
			close(entered)
			<-gate
		}
	}})
	return q, syncs, entered, gate
}

// TestLockstepFillsCommits: a lockstep publisher's window, trickling back
// after each commit, goes into one commit, not into a commit of its first
// arrivals and another of the rest: the committer waits for the company the
// last commit had. The publisher has win messages in flight; each
// acknowledgement (Wait) frees one publish, which arrives a moment later (a
// sleep), so a released window comes back as a trickle. Without the linger
// a commit took what arrived within a few yields: about 4 messages per
// fdatasync here. The bound of the wait is not under test (set to a
// minute, and so is the idle time after which company is no longer
// expected, lingerStale): the test starts from a known state (a commit of one message,
// then one of the rest of the window, held back behind its fdatasync) and
// closes the queue at the end, which ends the last commit's wait.
func TestLockstepFillsCommits(t *testing.T) {
	setLinger(t, time.Minute, time.Minute)
	const win, n = 16, 40 * 16
	q, syncs, entered, gate := openHeldFirstSync(t)
	ctx := context.Background()
	submit := func(i int) Ticket {
		tk, err := q.Submit(ctx, Message{Route: "r", Topic: "t", Payload: fmt.Appendf(nil, "%d", i), QoS: 1})
		if err != nil {
			t.Fatalf("Submit #%d: %v", i, err)
		}
		return tk
	}
	inflight := []Ticket{submit(0)}
	<-entered // the first commit (one message) is syncing
	for i := 1; i < win; i++ {
		inflight = append(inflight, submit(i))
	}
	close(gate)
	closed := make(chan error, 1)
	for i := win; len(inflight) > 0; i++ {
		if _, err := inflight[0].Wait(ctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		inflight = inflight[1:]
		switch {
		case i < n:
			time.Sleep(20 * time.Microsecond) // the PUBACK's way to the publisher and the next PUBLISH's back
			inflight = append(inflight, submit(i))
		case i == n:
			go func() { closed <- q.Close() }() // commits the rest
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	per := float64(n) / float64(syncs.Load())
	t.Logf("window %d: %d messages in %d fdatasyncs (%.1f each), %d lingers", win, n, syncs.Load(), per, q.lingers.Load())
	if per < win*3/4 {
		t.Errorf("%.1f messages per fdatasync from a lockstep window of %d; want at least %d (a window split across commits)", per, win, win*3/4)
	}
}

// TestLoneMessageDoesNotLinger: a sensor that publishes one message at a
// time gets each acknowledged after one fdatasync, with no wait for company
// that is not coming: the linger is set to an hour, and every Enqueue must
// still return (ctx bounds a failure), each after one sync of its own.
func TestLoneMessageDoesNotLinger(t *testing.T) {
	setLinger(t, time.Hour, lingerStale)
	var syncs atomic.Int64
	q := openT(t, Options{Routes: []RouteLimits{{Name: "r"}}, OnSync: func(time.Duration) { syncs.Add(1) }})
	const n = 5
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := q.Enqueue(ctx, Message{Route: "r", Topic: "t", Payload: fmt.Appendf(nil, "%d", i), QoS: 1})
		cancel()
		if err != nil {
			t.Fatalf("Enqueue #%d of a lone sensor: %v (waited for company?)", i, err)
		}
	}
	if s, l := syncs.Load(), q.lingers.Load(); s != n || l != 0 {
		t.Errorf("%d lone messages: %d fdatasyncs, %d lingers; want %d and 0", n, s, l, n)
	}
}

// TestLoneMessageAfterBurst: the first message of a sensor after a burst
// (whose last commit had company) does not wait for company either once
// the committer has been idle for lingerStale: the burst's writers would
// have been back by then. The linger is set to an hour; ctx bounds a
// failure.
func TestLoneMessageAfterBurst(t *testing.T) {
	setLinger(t, time.Hour, lingerStale)
	q, syncs, entered, gate := openHeldFirstSync(t)
	ctx := context.Background()
	m := Message{Route: "r", Topic: "t", Payload: []byte("burst"), QoS: 1}
	var burst []Ticket
	submit := func() {
		tk, err := q.Submit(ctx, m)
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		burst = append(burst, tk)
	}
	submit()
	<-entered // a commit of one is syncing: the next seven go together
	for range 7 {
		submit()
	}
	close(gate)
	for _, tk := range burst {
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
	if s := syncs.Load(); s != 2 {
		t.Fatalf("burst of 1 + 7 messages: %d fdatasyncs; want 2", s)
	}
	time.Sleep(lingerStale + 40*time.Millisecond) // the sensor's next message comes later
	l0 := q.lingers.Load()
	ctx30, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := q.Enqueue(ctx30, Message{Route: "r", Topic: "t", Payload: []byte("lone"), QoS: 1}); err != nil {
		t.Fatalf("Enqueue of a lone message after a burst: %v (waited for company?)", err)
	}
	if l := q.lingers.Load() - l0; l != 0 {
		t.Errorf("lone message after a burst: %d lingers; want 0", l)
	}
}
