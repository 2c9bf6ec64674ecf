package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const crashDirEnv = "EDGEGW_STORE_CRASH_DIR"

// startHelper starts this test binary as TestHelperProcess with env added
// to the environment; its stderr is collected, its stdout is piped (out)
// when pipe is set and discarded otherwise.
func startHelper(t *testing.T, pipe bool, env ...string) (cmd *exec.Cmd, out io.ReadCloser, stderr *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stderr = new(bytes.Buffer)
	cmd.Stderr = stderr
	if pipe {
		var err error
		if out, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out, stderr
}

// envCount is the positive number in the environment variable name (what it
// counts, for the error), or def when it is not set.
func envCount(t *testing.T, name, what string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number of %s", name, v, what)
	}
	return n
}

// crashSeed seeds a crash test's random kill times and copies:
// EDGEGW_CRASH_SEED replays a failure's, else the clock's.
func crashSeed() uint64 {
	if v := os.Getenv("EDGEGW_CRASH_SEED"); v != "" {
		seed, _ := strconv.ParseUint(v, 10, 64)
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// available is Next without waiting: the next message available now, or
// context.Canceled when there is none.
func available(q *Queue) (Message, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return q.Next(ctx)
}

// TestHelperProcess is the child of TestCrashKill9: it enqueues from 8
// goroutines and writes every sequence number Enqueue returned to stdout, one
// per line, until it is killed. Without the environment variable it does
// nothing.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	if os.Getenv(crashMixEnv) != "" {
		crashMixChild(dir)
	}
	if os.Getenv(crashLifeEnv) != "" {
		crashLifeChild(dir)
	}
	if os.Getenv(soakEnv) != "" {
		soakChild(dir)
	}
	q, err := Open(Options{Dir: dir, Routes: []RouteLimits{{Name: "telemetry"}}, Logger: childLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	for w := range 8 {
		go func() {
			payload := bytes.Repeat([]byte{byte('a' + w)}, 100)
			for {
				seq, err := q.Enqueue(context.Background(), Message{Route: "telemetry", Topic: "building/f1/t", Payload: payload, QoS: 1, Device: "d"})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: enqueue:", err)
					os.Exit(3)
				}
				mu.Lock()
				os.Stdout.WriteString(strconv.FormatUint(seq, 10) + "\n")
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestCrashKill9 kills a real process that is enqueueing, 20 times, at
// random moments, and checks that every sequence number it was given back
// (a PUBACK it would have sent) survived: present, in order, none twice.
func TestCrashKill9(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	seed := crashSeed()
	rng := rand.New(rand.NewPCG(seed, 6))
	t.Logf("seed %d", seed)
	reported := map[uint64]bool{}
	var last uint64
	for cycle := range 20 {
		cmd, out, stderr := startHelper(t, true, crashDirEnv+"="+dir)
		lines := make(chan uint64, 1<<16)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if s, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
					lines <- s
				}
			}
		}()
		// Let it run a random while after its first acknowledged message.
		var got []uint64
		select {
		case s, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("cycle %d: child exited before enqueueing: %s", cycle, stderr.String())
			}
			got = append(got, s)
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("cycle %d: child enqueued nothing in 30s: %s", cycle, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for s := range lines {
			got = append(got, s)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("cycle %d: child ended by itself (%v): %s", cycle, err, stderr.String())
		}
		if m, _ := filepath.Glob(dir + ".corrupt-*"); len(m) != 0 {
			t.Fatalf("cycle %d: the queue was moved aside as corrupt (%v); child's stderr:\n%s", cycle, m, stderr.String())
		}
		if m := minSeq(got); cycle > 0 && m <= last {
			t.Fatalf("cycle %d: seq %d not above the previous run's highest %d; child's stderr:\n%s", cycle, m, last, stderr.String())
		}
		for _, s := range got {
			if reported[s] {
				t.Fatalf("cycle %d: seq %d handed out twice", cycle, s)
			}
			reported[s] = true
		}
		for _, s := range got {
			last = max(last, s)
		}
		t.Logf("cycle %d: %d acknowledged", cycle, len(got))
	}

	q := openT(t, Options{Dir: dir})
	var prev uint64
	n, missing := 0, 0
	present := map[uint64]bool{}
	for {
		m, err := available(q)
		if err != nil {
			break
		}
		if m.Seq <= prev {
			t.Fatalf("after reopen: seq %d after %d (out of order or twice)", m.Seq, prev)
		}
		prev = m.Seq
		present[m.Seq] = true
		n++
	}
	for s := range reported {
		if !present[s] {
			missing++
			if missing < 10 {
				t.Errorf("acknowledged seq %d is missing after kill -9", s)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged messages lost", missing, len(reported))
	}
	t.Logf("%d acknowledged over 20 kills, %d present after reopen (the rest were synced but not yet reported when killed)", len(reported), n)
}

// childLogger: the crash children log warnings and errors (a queue moved
// aside, a failed commit) to stderr, which the parent shows when it fails.
func childLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func minSeq(s []uint64) uint64 {
	m := s[0]
	for _, v := range s {
		m = min(m, v)
	}
	return m
}

const crashMixEnv = "EDGEGW_STORE_CRASH_MIX"

// mixRoutes: an unlimited route, and one dropping its oldest beyond 500.
var mixRoutes = []RouteLimits{{Name: "telemetry"}, {Name: "alarms", MaxMessages: 500, Priority: 1}}

// crashMixChild enqueues on two routes while a consumer acks most messages,
// dead-letters some and leaves some in flight, until it is killed.
func crashMixChild(dir string) {
	q, err := Open(Options{Dir: dir, Routes: mixRoutes, Logger: childLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	for w := range 8 {
		go func() {
			route := mixRoutes[w%2].Name
			for i := 0; ; i++ {
				_, err := q.Enqueue(context.Background(), Message{Route: route, Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 50+i%200)})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: enqueue:", err)
					os.Exit(3)
				}
			}
		}()
	}
	go func() {
		for i := 0; ; i++ {
			m, err := q.Next(context.Background())
			if err != nil {
				fmt.Fprintln(os.Stderr, "child: next:", err)
				os.Exit(3)
			}
			switch {
			case i%50 == 0:
				q.DeadLetter(m.Seq, "test")
			case i%3 != 0:
				q.Ack(m.Seq)
			}
			if i%1000 == 999 {
				q.Rewind()
			}
			if i%20 == 0 {
				time.Sleep(2 * time.Millisecond) // slower than the producers: alarms overflows
			}
		}
	}()
	select {}
}

// TestCrashMetaAgrees kills a process that enqueues, acks, drops and
// dead-letters, 10 times, and checks after each reopen that the per-route
// meta Open reads (Stats depth, bytes, dead letters) equals a scan of the
// messages on disk.
func TestCrashMetaAgrees(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	prevLife := map[string]RouteStats{}
	for cycle := range 10 {
		cmd, _, stderr := startHelper(t, false, crashDirEnv+"="+dir, crashMixEnv+"=1")
		time.Sleep(time.Duration(200+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child ended by itself: %s", cycle, stderr.String())
		}
		if m, _ := filepath.Glob(dir + ".corrupt-*"); len(m) != 0 {
			t.Fatalf("cycle %d: the queue was moved aside as corrupt (%v); child's stderr:\n%s", cycle, m, stderr.String())
		}
		var errs bytes.Buffer
		q, err := Open(Options{Dir: dir, Routes: mixRoutes, KeepCorrupt: true,
			Logger: slog.New(slog.NewTextHandler(&errs, &slog.HandlerOptions{Level: slog.LevelError}))})
		if err != nil || errs.Len() > 0 {
			t.Fatalf("cycle %d: reopen: %v %s; child's stderr:\n%s", cycle, err, errs.String(), stderr.String())
		}
		st := q.Stats()
		var depth int64
		for _, rs := range st.Routes {
			q.mu.Lock()
			rid := q.routes[rs.Name].id
			q.mu.Unlock()
			var truth meta
			if err := q.db.View(func(txn *badger.Txn) (err error) { truth, err = scanMeta(txn, rid, 0); return }); err != nil {
				t.Fatal(err)
			}
			if rs.Depth != truth.count || rs.Bytes != truth.bytes || rs.DeadLetters != truth.dead || rs.DeadBytes != truth.deadBytes {
				t.Fatalf("cycle %d: route %s: Stats depth %d bytes %d dead %d/%d; on disk %d, %d, %d/%d",
					cycle, rs.Name, rs.Depth, rs.Bytes, rs.DeadLetters, rs.DeadBytes, truth.count, truth.bytes, truth.dead, truth.deadBytes)
			}
			depth += truth.count
		}
		// Next hands out exactly what is on disk, in order.
		n := 0
		for prev := map[string]uint64{}; ; n++ {
			m, err := available(q)
			if err != nil {
				break
			}
			if m.Seq <= prev[m.Route] {
				t.Fatalf("cycle %d: route %s: seq %d after %d", cycle, m.Route, m.Seq, prev[m.Route])
			}
			prev[m.Route] = m.Seq
		}
		if int64(n) != depth || st.Depth != depth {
			t.Fatalf("cycle %d: Next handed out %d, Stats depth %d; on disk %d", cycle, n, st.Depth, depth)
		}
		// The lifetime counters agree with the data: every message accepted
		// is queued, acked, dropped or dead-lettered; they never go back.
		for _, rs := range st.Routes {
			var dropped uint64
			for _, n := range rs.Drops {
				dropped += n
			}
			if rs.Enqueued != rs.Acked+dropped+rs.DeadLettered+uint64(rs.Depth) || rs.DeadLettered != uint64(rs.DeadLetters) {
				t.Fatalf("cycle %d: route %s: enqueued %d; acked %d + dropped %d + dead-lettered %d (held %d) + queued %d",
					cycle, rs.Name, rs.Enqueued, rs.Acked, dropped, rs.DeadLettered, rs.DeadLetters, rs.Depth)
			}
			p := prevLife[rs.Name]
			if rs.Enqueued < p.Enqueued || rs.Acked < p.Acked || rs.DeadLettered < p.DeadLettered || rs.Drops[ReasonOverflowCount] < p.Drops[ReasonOverflowCount] {
				t.Fatalf("cycle %d: route %s: lifetime counters went back: %+v after %+v", cycle, rs.Name, rs, p)
			}
			prevLife[rs.Name] = rs
		}
		t.Logf("cycle %d: %d queued, %d dead letters, %d dropped, agree", cycle, depth, st.DeadLetters, st.Routes[0].Drops[ReasonOverflowCount])
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

const crashLifeEnv = "EDGEGW_STORE_CRASH_LIFE"

// crashLifeChild drops, dead-letters, acks and is refused on a route, waits
// until all of it is written, prints its Stats and waits to be killed.
func crashLifeChild(dir string) {
	q, err := Open(Options{Dir: dir, Logger: childLogger(),
		Routes: []RouteLimits{{Name: "drop", MaxMessages: 5}, {Name: "reject", MaxMessages: 2, Overflow: Reject}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	for i := range 12 {
		q.Enqueue(ctx, Message{Route: "drop", Topic: "t", Payload: []byte{byte(i)}})
		q.Enqueue(ctx, Message{Route: "reject", Topic: "t", Payload: []byte{byte(i)}})
	}
	for i := range 4 {
		m, err := q.Next(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: next:", err)
			os.Exit(3)
		}
		if i%2 == 0 {
			q.DeadLetter(m.Seq, "test")
		} else {
			q.Ack(m.Seq)
		}
	}
	for {
		q.mu.Lock()
		n := len(q.ops)
		q.mu.Unlock()
		if n == 0 {
			break
		}
		q.sync()
	}
	fmt.Println(lifeLine(q.Stats()))
	select {}
}

func lifeLine(st Stats) string {
	var b bytes.Buffer
	for _, rs := range st.Routes {
		fmt.Fprintf(&b, "%s enq=%d acked=%d rejected=%d dead=%d drops=%v depth=%d; ", rs.Name, rs.Enqueued, rs.Acked, rs.Rejected, rs.DeadLettered, rs.Drops, rs.Depth)
	}
	return b.String()
}

// TestCrashLifetimeCounters: drops, dead letters, acks and refusals counted
// by a process that is then killed with SIGKILL are the same after reopen,
// twice over (the totals add up across kills).
func TestCrashLifetimeCounters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	var want string
	for cycle := range 2 {
		cmd, out, stderr := startHelper(t, true, crashDirEnv+"="+dir, crashLifeEnv+"=1")
		line, err := bufio.NewReader(out).ReadString('\n')
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if err != nil {
			t.Fatalf("cycle %d: child printed no stats: %v; stderr:\n%s", cycle, err, stderr.String())
		}
		want = strings.TrimSpace(line)
		q, err := Open(Options{Dir: dir, KeepCorrupt: true,
			Routes: []RouteLimits{{Name: "drop", MaxMessages: 5}, {Name: "reject", MaxMessages: 2, Overflow: Reject}}})
		if err != nil {
			t.Fatal(err)
		}
		st := q.Stats()
		q.Close()
		if got := strings.TrimSpace(lifeLine(st)); got != want {
			t.Fatalf("cycle %d: after kill -9 and reopen:\n got %s\nwant %s", cycle, got, want)
		}
		t.Logf("cycle %d: %s", cycle, want)
	}
	if !strings.Contains(want, "drop enq=24 acked=2 rejected=0 dead=2 drops=map[overflow-count:17]") || !strings.Contains(want, "reject enq=4 acked=2 rejected=20 dead=2") {
		t.Fatalf("second cycle counted %s", want)
	}
}
