package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func openT(t testing.TB, o Options) *Queue {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "queue")
	}
	q, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func enq(t testing.TB, q *Queue, route, payload string) uint64 {
	t.Helper()
	seq, err := q.Enqueue(context.Background(), Message{Route: route, Topic: "t/" + route, Payload: []byte(payload), QoS: 1, Device: "dev1"})
	if err != nil {
		t.Fatalf("Enqueue(%s, %s): %v", route, payload, err)
	}
	return seq
}

// submitAll submits msg(0) to msg(n-1), all before waiting for any, so they
// go in as few commits as the committer makes, then waits for every commit;
// it returns their sequence numbers in order.
func submitAll(t testing.TB, q *Queue, n int, msg func(i int) Message) []uint64 {
	t.Helper()
	ctx := context.Background()
	tickets := make([]Ticket, 0, n)
	for i := range n {
		tk, err := q.Submit(ctx, msg(i))
		if err != nil {
			t.Fatalf("Submit of message %d: %v", i, err)
		}
		tickets = append(tickets, tk)
	}
	seqs := make([]uint64, 0, n)
	for i, tk := range tickets {
		seq, err := tk.Wait(ctx)
		if err != nil {
			t.Fatalf("commit of message %d: %v", i, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func next(t testing.TB, q *Queue) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := q.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

// nextNone asserts that nothing is available right now.
func nextNone(t testing.TB, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if m, err := q.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %q, %v; want nothing (context.Canceled)", m.Payload, err)
	}
}

func payloads(t testing.TB, q *Queue, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, string(next(t, q).Payload))
	}
	return out
}

func eq[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOrder(t *testing.T) {
	type step struct{ route, payload string }
	cases := []struct {
		name   string
		routes []RouteLimits
		in     []step
		want   []string
	}{
		{"fifo one route", nil, []step{{"a", "1"}, {"a", "2"}, {"a", "3"}}, []string{"1", "2", "3"}},
		{"equal priority interleaves by seq", []RouteLimits{{Name: "a"}, {Name: "b"}},
			[]step{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}, {"b", "b2"}}, []string{"a1", "b1", "a2", "b2"}},
		{"higher priority first", []RouteLimits{{Name: "a"}, {Name: "b", Priority: 5}},
			[]step{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}, {"b", "b2"}}, []string{"b1", "b2", "a1", "a2"}},
		{"three levels", []RouteLimits{{Name: "lo", Priority: -1}, {Name: "mid"}, {Name: "hi", Priority: 9}},
			[]step{{"lo", "l"}, {"mid", "m"}, {"hi", "h"}, {"lo", "l2"}}, []string{"h", "m", "l", "l2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := openT(t, Options{Routes: c.routes})
			for _, s := range c.in {
				enq(t, q, s.route, s.payload)
			}
			if got := payloads(t, q, len(c.want)); !eq(got, c.want) {
				t.Fatalf("got %v; want %v", got, c.want)
			}
			nextNone(t, q)
		})
	}
}

func TestAckRewindReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, enq(t, q, "a", fmt.Sprint(i)))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seqs not increasing: %v", seqs)
		}
	}
	m0, m1 := next(t, q), next(t, q)
	if m0.Seq != seqs[0] || m1.Seq != seqs[1] || m0.Route != "a" || m0.Topic != "t/a" || m0.Device != "dev1" || m0.QoS != 1 || m0.Time == 0 {
		t.Fatalf("got %+v, %+v", m0, m1)
	}
	// ack out of order, twice (idempotent)
	for _, s := range []uint64{m1.Seq, m1.Seq, 999999} {
		if err := q.Ack(s); err != nil {
			t.Fatalf("Ack(%d): %v", s, err)
		}
	}
	q.Rewind()
	if got := payloads(t, q, 4); !eq(got, []string{"0", "2", "3", "4"}) {
		t.Fatalf("after rewind got %v; want [0 2 3 4]", got)
	}
	if err := q.Ack(m0.Seq); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Depth != 3 || st.Routes[0].InFlight != 3 || st.Routes[0].Acked != 2 || st.Routes[0].OldestSeq != seqs[2] {
		t.Fatalf("stats %+v", st.Routes[0])
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(context.Background(), Message{Route: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v; want ErrClosed", err)
	}
	q2 := openT(t, Options{Dir: dir})
	if got := payloads(t, q2, 3); !eq(got, []string{"2", "3", "4"}) {
		t.Fatalf("after reopen got %v; want [2 3 4]", got)
	}
	nextNone(t, q2)
	if s := enq(t, q2, "a", "5"); s <= seqs[4] {
		t.Fatalf("seq after reopen %d; want > %d", s, seqs[4])
	}
	if st := q2.Stats(); st.Depth != 4 || st.Bytes <= 0 {
		t.Fatalf("stats after reopen %+v", st)
	}
}

func TestNextBlocksAndClose(t *testing.T) {
	q := openT(t, Options{})
	got := make(chan Message)
	go func() {
		m, _ := q.Next(context.Background())
		got <- m
	}()
	enq(t, q, "a", "late")
	if m := <-got; string(m.Payload) != "late" {
		t.Fatalf("got %q", m.Payload)
	}
	errc := make(chan error)
	go func() {
		_, err := q.Next(context.Background())
		errc <- err
	}()
	q.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v; want ErrClosed", err)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimits(t *testing.T) {
	type drop struct {
		reason string
		n      int
	}
	sane := SaneAfter.Add(24 * time.Hour)
	cases := []struct {
		name      string
		lim       RouteLimits
		clock     time.Time
		advance   time.Duration // after the first 3 enqueues
		n         int
		wantErrAt map[int]error
		want      []string
		drops     []drop
	}{
		{name: "count drop-oldest", lim: RouteLimits{MaxMessages: 3}, n: 5,
			want: []string{"2", "3", "4"}, drops: []drop{{ReasonOverflowCount, 2}}},
		{name: "count reject", lim: RouteLimits{MaxMessages: 3, Overflow: Reject}, n: 5,
			wantErrAt: map[int]error{3: ErrQuota, 4: ErrQuota}, want: []string{"0", "1", "2"}},
		// each message is 3+8+1+3+1+4+1 = 21 bytes
		{name: "bytes drop-oldest", lim: RouteLimits{MaxBytes: 50}, n: 4,
			want: []string{"2", "3"}, drops: []drop{{ReasonOverflowBytes, 2}}},
		{name: "bytes reject", lim: RouteLimits{MaxBytes: 50, Overflow: Reject}, n: 4,
			wantErrAt: map[int]error{2: ErrQuota, 3: ErrQuota}, want: []string{"0", "1"}},
		{name: "max age with sane clock", lim: RouteLimits{MaxAge: time.Hour}, clock: sane, advance: 2 * time.Hour, n: 5,
			want: []string{"3", "4"}, drops: []drop{{ReasonMaxAge, 3}}},
		{name: "max age ignored with 1970 clock", lim: RouteLimits{MaxAge: time.Hour}, clock: time.Unix(100, 0), advance: 2 * time.Hour, n: 5,
			want: []string{"0", "1", "2", "3", "4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.lim.Name = "r"
			clk := &clock{t: c.clock}
			if clk.t.IsZero() {
				clk.t = time.Now()
			}
			var mu sync.Mutex
			var drops []drop
			q := openT(t, Options{Routes: []RouteLimits{c.lim}, Clock: clk.now, OnDrop: func(route, reason string, n int) {
				mu.Lock()
				defer mu.Unlock()
				if route != "r" {
					t.Errorf("OnDrop route %q", route)
				}
				if k := len(drops); k > 0 && drops[k-1].reason == reason {
					drops[k-1].n += n
					return
				}
				drops = append(drops, drop{reason, n})
			}})
			for i := range c.n {
				if i == 3 {
					clk.add(c.advance)
				}
				_, err := q.Enqueue(context.Background(), Message{Route: "r", Topic: "t/r", Payload: []byte(fmt.Sprint(i)), Device: "dev1"})
				if want := c.wantErrAt[i]; !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("Enqueue #%d: %v; want %v", i, err, want)
				}
			}
			if got := payloads(t, q, len(c.want)); !eq(got, c.want) {
				t.Fatalf("got %v; want %v", got, c.want)
			}
			nextNone(t, q)
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(drops) != fmt.Sprint(c.drops) {
				t.Fatalf("drops %v; want %v", drops, c.drops)
			}
			st := q.Stats().Routes[0]
			for _, d := range c.drops {
				if st.Drops[d.reason] != uint64(d.n) {
					t.Fatalf("Stats drops %v; want %v", st.Drops, c.drops)
				}
			}
			if st.Rejected != uint64(len(c.wantErrAt)) {
				t.Fatalf("Stats rejected %d; want %d", st.Rejected, len(c.wantErrAt))
			}
		})
	}
}

func TestByteCapAndWatermark(t *testing.T) {
	var free uint64 = 1 << 30
	var mu sync.Mutex
	q := openT(t, Options{MaxBytes: 100, Statfs: func(string) (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		return free, nil
	}})
	// each message: 3+8+1+3+1+4+10 = 30 bytes
	enq(t, q, "a", "0123456789")
	enq(t, q, "a", "0123456789")
	enq(t, q, "a", "0123456789")
	if _, err := q.Enqueue(context.Background(), Message{Route: "a", Payload: make([]byte, 20)}); !errors.Is(err, ErrFull) {
		t.Fatalf("over the byte cap: %v; want ErrFull", err)
	}
	q.Ack(next(t, q).Seq)
	q.Ack(next(t, q).Seq)
	enq(t, q, "a", "fits again") // 30 bytes
	mu.Lock()
	free = MinReserve + 10
	mu.Unlock()
	if _, err := q.Enqueue(context.Background(), Message{Route: "a", Payload: []byte("x")}); !errors.Is(err, ErrFull) {
		t.Fatalf("below the watermark: %v; want ErrFull", err)
	}
	if st := q.Stats(); st.RejectedFull != 2 || st.Depth != 2 || st.Bytes != 60 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeadLetter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	enq(t, q, "a", "good")
	bad := enq(t, q, "a", "poison")
	enq(t, q, "b", "other")
	next(t, q)
	if m := next(t, q); m.Seq != bad {
		t.Fatalf("got seq %d; want %d", m.Seq, bad)
	}
	if err := q.DeadLetter(bad, "upstream refused: 0x87"); err != nil {
		t.Fatal(err)
	}
	if err := q.DeadLetter(bad, "again"); err != nil {
		t.Fatalf("second DeadLetter: %v", err)
	}
	q.Rewind()
	if got := payloads(t, q, 2); !eq(got, []string{"good", "other"}) {
		t.Fatalf("got %v", got)
	}
	q.Close()
	q = openT(t, Options{Dir: dir})
	st := q.Stats()
	if st.DeadLetters != 1 || st.Depth != 2 {
		t.Fatalf("stats after reopen %+v", st)
	}
	dl, err := q.DeadLetters("a", 0)
	if err != nil || len(dl) != 1 || string(dl[0].Payload) != "poison" || dl[0].Reason != "upstream refused: 0x87" || dl[0].Seq != bad {
		t.Fatalf("DeadLetters = %+v, %v", dl, err)
	}
	var buf bytes.Buffer
	if n, err := q.ExportDeadLetters("", &buf); err != nil || n != 1 {
		t.Fatalf("ExportDeadLetters = %d, %v", n, err)
	}
	var l map[string]any
	if err := json.Unmarshal(buf.Bytes(), &l); err != nil || l["payload"] != "cG9pc29u" || l["reason"] != "upstream refused: 0x87" {
		t.Fatalf("export line %s (%v)", buf.Bytes(), err)
	}
	if n, err := q.PurgeDeadLetters("a"); n != 1 || err != nil {
		t.Fatalf("PurgeDeadLetters = %d, %v", n, err)
	}
	if st := q.Stats(); st.DeadLetters != 0 {
		t.Fatalf("after purge %+v", st)
	}
}

func TestSetRoutes(t *testing.T) {
	q := openT(t, Options{Routes: []RouteLimits{{Name: "a"}, {Name: "b"}}, EnforceInterval: 5 * time.Millisecond})
	for i := range 5 {
		enq(t, q, "a", fmt.Sprint("a", i))
	}
	enq(t, q, "b", "b0")
	// b gets priority, a is removed from the config and gets a lower cap.
	q.SetRoutes([]RouteLimits{{Name: "b", Priority: 1}})
	if m := next(t, q); string(m.Payload) != "b0" {
		t.Fatalf("got %q; want b0 first", m.Payload)
	} else {
		q.Ack(m.Seq)
	}
	st := q.Stats()
	if st.Routes[1].Name != "a" || st.Routes[1].Configured || st.Routes[1].Depth != 5 {
		t.Fatalf("removed route stats %+v", st.Routes[1])
	}
	if got := payloads(t, q, 2); !eq(got, []string{"a0", "a1"}) {
		t.Fatalf("removed route still drains: got %v", got)
	}
	// Lowered limit on a live route is applied by the enforcement tick.
	q.SetRoutes([]RouteLimits{{Name: "b", Priority: 1}, {Name: "a", MaxMessages: 1}})
	for i := 0; q.Stats().Routes[1].Depth != 1; i++ {
		if i > 2000 {
			t.Fatalf("lowered limit not applied: %+v", q.Stats().Routes[1])
		}
		time.Sleep(5 * time.Millisecond)
	}
	q.Rewind()
	if got := payloads(t, q, 1); !eq(got, []string{"a4"}) {
		t.Fatalf("got %v; want [a4]", got)
	}
}

func TestPeekPurgeExport(t *testing.T) {
	clk := &clock{t: SaneAfter.Add(time.Hour)}
	q := openT(t, Options{Clock: clk.now})
	for i := range 4 {
		enq(t, q, "a", fmt.Sprint(i))
		clk.add(time.Hour)
	}
	enq(t, q, "b", "b")
	ms, err := q.Peek("a", 2)
	if err != nil || len(ms) != 2 || string(ms[1].Payload) != "1" {
		t.Fatalf("Peek = %v, %v", ms, err)
	}
	ms, _ = q.Peek("", 1)
	if len(ms) != 2 {
		t.Fatalf("Peek all routes = %v", ms)
	}
	if _, err := q.Peek("zzz", 1); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("Peek unknown route: %v", err)
	}
	// now = start+5h; messages at +1h..+4h; older than 2h30 => 0,1 (at +1h, +2h)
	if n, err := q.Purge("a", 150*time.Minute); n != 2 || err != nil {
		t.Fatalf("Purge older = %d, %v", n, err)
	}
	var buf bytes.Buffer
	if n, err := q.Export("a", &buf); n != 2 || err != nil {
		t.Fatalf("Export = %d, %v", n, err)
	}
	if c := bytes.Count(buf.Bytes(), []byte("\n")); c != 2 {
		t.Fatalf("export %s", buf.Bytes())
	}
	if n, err := q.Purge("a", 0); n != 2 || err != nil {
		t.Fatalf("Purge all = %d, %v", n, err)
	}
	if got := payloads(t, q, 1); !eq(got, []string{"b"}) {
		t.Fatalf("got %v", got)
	}
	if st := q.Stats(); st.Routes[0].Drops[ReasonPurged] != 4 {
		t.Fatalf("stats %+v", st.Routes[0])
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	q := openT(t, Options{Routes: []RouteLimits{{Name: "r0"}, {Name: "r1"}, {Name: "r2"}}})
	const writers, per = 32, 100
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*per)
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				s, err := q.Enqueue(context.Background(), Message{Route: fmt.Sprint("r", w%3), Payload: []byte(fmt.Sprint(w, "/", i))})
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				seqs <- s
			}
		})
	}
	// a concurrent consumer
	got := map[uint64]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := map[string]uint64{}
		for range writers * per {
			m, err := q.Next(context.Background())
			if err != nil {
				t.Errorf("Next: %v", err)
				return
			}
			if m.Seq <= last[m.Route] || got[m.Seq] {
				t.Errorf("route %s: seq %d after %d (dup %v)", m.Route, m.Seq, last[m.Route], got[m.Seq])
			}
			last[m.Route] = m.Seq
			got[m.Seq] = true
			q.Ack(m.Seq)
		}
	}()
	wg.Wait()
	close(seqs)
	<-done
	n := 0
	for s := range seqs {
		n++
		if !got[s] {
			t.Fatalf("seq %d enqueued but never handed out", s)
		}
	}
	if n != writers*per || len(got) != n {
		t.Fatalf("enqueued %d, handed out %d; want %d", n, len(got), writers*per)
	}
	if st := q.Stats(); st.Depth != 0 {
		t.Fatalf("depth %d after acking all", st.Depth)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("locked", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "q")
		openT(t, Options{Dir: dir})
		_, err := Open(Options{Dir: dir})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open: %v; want ErrLocked", err)
		}
		if m, _ := filepath.Glob(dir + ".corrupt-*"); len(m) != 0 {
			t.Fatalf("a locked queue was moved aside: %v", m)
		}
	})
	t.Run("corrupt is moved aside", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "q")
		q := openT(t, Options{Dir: dir})
		enq(t, q, "a", "x")
		q.Close()
		if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("garbage garbage garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		q = openT(t, Options{Dir: dir})
		st := q.Stats()
		if st.CorruptMovedTo != dir+".corrupt-1" || st.Depth != 0 {
			t.Fatalf("stats %+v", st)
		}
		if _, err := os.Stat(filepath.Join(dir+".corrupt-1", "MANIFEST")); err != nil {
			t.Fatal(err)
		}
		enq(t, q, "a", "fresh")
	})
	t.Run("bad key length", func(t *testing.T) {
		if _, err := Open(Options{Dir: t.TempDir(), EncryptionKey: make([]byte, 16)}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("got %v; want ErrInvalid", err)
		}
	})
}

// TestWindowAndMeta: acks and dead letters of messages not handed out, drops
// at the limit, a rewind; after reopen the meta Open reads agrees with Stats
// before Close and with a scan.
func TestWindowAndMeta(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir, Routes: []RouteLimits{{Name: "a", MaxMessages: 50, Priority: 1}, {Name: "b"}}})
	var seqs []uint64
	for i := range 80 {
		seqs = append(seqs, enq(t, q, "a", fmt.Sprint("a", i)))
		enq(t, q, "b", fmt.Sprint("b", i))
	}
	// a dropped its 30 oldest
	if err := q.Ack(seqs[40]); err != nil { // not handed out
		t.Fatal(err)
	}
	if err := q.DeadLetter(seqs[41], "test"); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(seqs[10]); err != nil { // dropped already: no-op
		t.Fatal(err)
	}
	m := next(t, q)
	if string(m.Payload) != "a30" {
		t.Fatalf("first message %q; want a30", m.Payload)
	}
	q.Rewind()
	if m2 := next(t, q); m2.Seq != m.Seq {
		t.Fatalf("after rewind got %d; want %d", m2.Seq, m.Seq)
	}
	q.Ack(m.Seq)
	before := q.Stats()
	if before.Routes[0].Depth != 47 || before.Routes[0].Drops[ReasonOverflowCount] != 30 || before.Routes[0].DeadLetters != 1 {
		t.Fatalf("stats %+v", before.Routes[0])
	}
	q.Close()
	q = openT(t, Options{Dir: dir, Routes: []RouteLimits{{Name: "a", MaxMessages: 50, Priority: 1}, {Name: "b"}}})
	after := q.Stats()
	for i, rs := range after.Routes {
		b := before.Routes[i]
		var truth meta
		q.db.View(func(txn *badger.Txn) (err error) { truth, err = scanMeta(txn, q.routes[rs.Name].id, 0); return })
		if rs.Depth != b.Depth || rs.Bytes != b.Bytes || rs.DeadLetters != b.DeadLetters || rs.DeadBytes != b.DeadBytes || rs.OldestSeq != b.OldestSeq ||
			rs.Depth != truth.count || rs.Bytes != truth.bytes || rs.DeadBytes != truth.deadBytes {
			t.Fatalf("route %s after reopen %+v; before %+v; on disk %+v", rs.Name, rs, b, truth)
		}
	}
	if got := payloads(t, q, 2); !eq(got, []string{"a31", "a32"}) {
		t.Fatalf("after reopen got %v", got)
	}
}

// TestWindowStress: producers, and a consumer like the bridge: a window of
// handed-out messages acked out of order, a Rewind now and then (resending
// what is unacked). Every enqueued message is handed out and acked; nothing
// is left behind.
func TestWindowStress(t *testing.T) {
	q := openT(t, Options{Routes: []RouteLimits{{Name: "a"}, {Name: "b", Priority: 1}}})
	const producers, per, window = 8, 1500, 300
	var wg sync.WaitGroup
	for w := range producers {
		wg.Go(func() {
			for i := range per {
				if _, err := q.Enqueue(context.Background(), Message{Route: []string{"a", "b"}[w%2], Payload: fmt.Append(nil, w, "/", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	acked := map[uint64]bool{}
	var open []uint64
	rng := rand.New(rand.NewPCG(1, 2))
	for handed := 0; len(acked) < producers*per; handed++ {
		if handed > 20*producers*per {
			t.Fatalf("acked %d of %d after %d hand-outs: %+v", len(acked), producers*per, handed, q.Stats().Routes)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m, err := q.Next(ctx) // nothing available right now: ack what is open
		if errors.Is(err, context.Canceled) && len(open) > 0 {
			for _, s := range open {
				q.Ack(s)
				acked[s] = true
			}
			open = open[:0]
			continue
		}
		if errors.Is(err, context.Canceled) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m, err = q.Next(ctx)
			cancel()
		}
		if err != nil {
			t.Fatalf("Next after %d acked: %v; stats %+v", len(acked), err, q.Stats().Routes)
		}
		open = append(open, m.Seq)
		if len(open) >= window || rng.IntN(10) == 0 {
			rng.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
			k := len(open) / 2
			for _, s := range open[:k] {
				q.Ack(s)
				acked[s] = true
			}
			open = append(open[:0], open[k:]...)
		}
		if rng.IntN(500) == 0 {
			q.Rewind()
			open = open[:0]
		}
	}
	wg.Wait()
	for _, s := range open {
		q.Ack(s)
	}
	if st := q.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Fatalf("after acking everything: depth %d bytes %d", st.Depth, st.Bytes)
	}
}

// TestPurgeLarge purges more than one chunk; counts and the meta agree.
func TestPurgeLarge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range (purgeChunk + 1000) / 64 {
				if _, err := q.Enqueue(context.Background(), Message{Route: "a", Payload: []byte("x")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := q.Stats().Depth
	m := next(t, q) // one handed out: purged too
	if n, err := q.Purge("a", 0); err != nil || int64(n) != want {
		t.Fatalf("Purge = %d, %v; want %d", n, err, want)
	}
	if err := q.Ack(m.Seq); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Depth != 0 || st.Bytes != 0 || st.Routes[0].Drops[ReasonPurged] != uint64(want) {
		t.Fatalf("after purge %+v", st.Routes[0])
	}
	q.Close()
	q = openT(t, Options{Dir: dir})
	if st := q.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Fatalf("after reopen %+v", st)
	}
	nextNone(t, q)
}

// TestOpenWithoutMeta: a queue written before the per-route meta existed
// (registry, messages, head cursor) is counted once at Open, and the meta is
// written with the next commit.
func TestOpenWithoutMeta(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir})
	q.Close()
	db, err := badger.Open(q.badgerOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		txn.Set(append([]byte{pReg}, "old"...), binary.BigEndian.AppendUint32(nil, 7))
		txn.Set(routePrefix(pHead, 7), be64(3))
		for seq := uint64(1); seq <= 5; seq++ {
			m := Message{Topic: "t", Payload: []byte{byte('0' + seq)}}
			txn.Set(msgKey(pMsg, 7, seq), appendMessage(nil, &m)) // 1 and 2 lie below the head cursor: acked
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	q = openT(t, Options{Dir: dir})
	if st := q.Stats(); st.Depth != 3 || st.Routes[0].OldestSeq != 3 {
		t.Fatalf("stats %+v", st.Routes[0])
	}
	if got := payloads(t, q, 3); !eq(got, []string{"3", "4", "5"}) {
		t.Fatalf("got %v", got)
	}
	if s := enq(t, q, "old", "6"); s <= 5 {
		t.Fatalf("new seq %d; want > 5", s)
	}
	q.Close()
	q = openT(t, Options{Dir: dir})
	var m meta
	q.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, routePrefix(pMeta, 7))
		if err == nil {
			m, err = decodeMeta(v)
		}
		return err
	})
	if m.count != 4 || q.Stats().Depth != 4 {
		t.Fatalf("meta %+v, depth %d; want 4", m, q.Stats().Depth)
	}
}

// TestReadAheadFromCommit: a consumer that keeps up gets committed messages
// from the commit itself, not read back from badger, and every route still
// comes out in order, whole, across concurrent producers, a drop-oldest
// limit and rewinds.
func TestReadAheadFromCommit(t *testing.T) {
	q := openT(t, Options{Routes: []RouteLimits{{Name: "a"}, {Name: "b"}, {Name: "c", MaxMessages: 50, Overflow: DropOldest}}})
	const producers, per = 6, 2000
	var wg sync.WaitGroup
	for w := range producers {
		wg.Go(func() {
			for i := range per {
				m := Message{Route: []string{"a", "b", "c"}[w%3], Payload: fmt.Append(nil, w, " ", i)}
				if _, err := q.Enqueue(context.Background(), m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	last := map[int]int{} // producer -> last payload index seen
	seen := map[uint64]bool{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	checkAhead := func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		for _, rt := range q.routes {
			n := 0
			for _, a := range rt.ahead {
				n += len(a.val)
			}
			if n != rt.aheadSize {
				t.Errorf("route %s: aheadSize %d, the read-ahead holds %d bytes", rt.name, rt.aheadSize, n)
			}
		}
	}
	got := 0
	for rewinds := 0; ; {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		m, err := q.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			select {
			case <-done:
			default:
				continue
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var w, i int
		if _, err := fmt.Sscan(string(m.Payload), &w, &i); err != nil {
			t.Fatalf("payload %q: %v", m.Payload, err)
		}
		if seen[m.Seq] {
			t.Fatalf("seq %d handed out twice without a rewind", m.Seq)
		}
		if p, ok := last[w]; ok && i <= p {
			t.Fatalf("producer %d: message %d after %d (route %s)", w, i, p, m.Route)
		}
		seen[m.Seq], last[w] = true, i
		got++
		if got == 1000 {
			time.Sleep(100 * time.Millisecond) // route c overflows meanwhile
		}
		if got%500 == 0 {
			checkAhead()
		}
		if got%3000 == 0 && rewinds < 3 {
			// Rewind with nothing open: the cursor stays, nothing comes twice.
			rewinds++
			q.Rewind()
		}
		if err := q.Ack(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	st := q.Stats()
	var dropped uint64
	for _, r := range st.Routes {
		for _, n := range r.Drops {
			dropped += n
		}
	}
	// A drop-oldest may drop a message already handed out (and counted in
	// got): every message is delivered, dropped, or both.
	if got > producers*per || uint64(got)+dropped < producers*per || st.Depth != 0 {
		t.Fatalf("got %d + dropped %d, want %d; depth %d", got, dropped, producers*per, st.Depth)
	}
	for w := range producers {
		if w%3 != 2 && last[w] != per-1 {
			t.Errorf("producer %d (no limit): last message %d, want %d", w, last[w], per-1)
		}
	}
	checkAhead()
	q.mu.Lock()
	readBack := q.readBack
	q.mu.Unlock()
	if readBack > uint64(got)/2 {
		t.Errorf("%d of %d messages were read back from badger; a consumer that keeps up should get most from the commit", readBack, got)
	}
	t.Logf("%d messages, %d dropped, %d read back from badger", got, dropped, readBack)
}

// TestNextWithDoneContext: a done context makes Next a poll: what is
// available now comes out, then context.Canceled without blocking.
func TestNextWithDoneContext(t *testing.T) {
	q := openT(t, Options{})
	for i := range 3 {
		enq(t, q, "a", fmt.Sprint(i))
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 3 {
		m, err := q.Next(done)
		if err != nil || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("Next(done) #%d = %q, %v; want %q", i, m.Payload, err, fmt.Sprint(i))
		}
	}
	if m, err := q.Next(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next(done) on an empty queue = %q, %v; want context.Canceled", m.Payload, err)
	}
}

// TestAckFlushIdle: an idle queue's committer does not wake for the ack
// flush (it was a 20 Hz ticker); an ack arms it once, and the ack's delete
// is written without waiting for an enqueue.
func TestAckFlushIdle(t *testing.T) {
	q := openT(t, Options{Dir: filepath.Join(t.TempDir(), "q"), EnforceInterval: time.Hour})
	enq(t, q, "a", "x")
	m := next(t, q)
	time.Sleep(4 * ackFlush)
	if n := q.ackFlushes.Load(); n != 0 {
		t.Fatalf("the committer woke %d times to flush acks with none queued; want 0", n)
	}
	if err := q.Ack(m.Seq); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		q.mu.Lock()
		n := len(q.ops)
		q.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ack's delete still waits for a commit after 10s (%d writes queued)", n)
		}
	}
	time.Sleep(4 * ackFlush)
	if n := q.ackFlushes.Load(); n != 1 {
		t.Fatalf("ack flushes after one ack and an idle while: %d; want 1", n)
	}
}

// TestNextNamesInterned: Next hands out each message's own topic and device
// while it interns them per route (names), across more distinct ones than
// it keeps (namesMax: the set starts over) and with repeats.
func TestNextNamesInterned(t *testing.T) {
	q := openT(t, Options{})
	n := namesMax + 40
	name := func(i int) (topic, device string) {
		return fmt.Sprintf("site/%d/temp", i%(namesMax+20)), fmt.Sprintf("dev-%d", i%7)
	}
	submitAll(t, q, n, func(i int) Message {
		topic, device := name(i)
		return Message{Route: "a", Topic: topic, Device: device, Payload: []byte(fmt.Sprint(i)), QoS: 1}
	})
	for i := range n {
		m := next(t, q)
		topic, device := name(i)
		if m.Topic != topic || m.Device != device || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: topic %q device %q payload %q; want %q %q %q", i, m.Topic, m.Device, m.Payload, topic, device, fmt.Sprint(i))
		}
		if err := q.Ack(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	nextNone(t, q)
	q.mu.Lock()
	defer q.mu.Unlock()
	if k := len(q.routes["a"].names); k == 0 || k > namesMax {
		t.Fatalf("%d names interned; want 1..%d", k, namesMax)
	}
}
