package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The kill -9 soak (make crash): a child process enqueues on three routes
// (small messages, messages of a few KiB that fill memtables fast, and
// values big enough for the value log), while a consumer acks most, acks
// some out of order, dead-letters some and rewinds; one route drops its
// oldest. It is killed at a random moment, reopened with no help, checked,
// and run again on the same queue. Every cycle alternates between a plain
// and an encrypted queue. The kills land in enqueues, acks, memtable
// flushes, compactions and value-log rotations (the cycle log counts the
// flushes, tables and value-log files each kill saw).
//
// EDGEGW_CRASH_CYCLES sets the number of cycles (make crash: 500); go test
// runs 6.

const (
	soakEnv    = "EDGEGW_STORE_SOAK"
	soakKeyEnv = "EDGEGW_STORE_SOAK_KEY"
	// soakKeepEnv: the consumer never takes route "keep" (the power-cut
	// test checks a growing backlog; its copies are not continued).
	soakKeepEnv = "EDGEGW_STORE_SOAK_KEEP"
)

var soakRoutes = []RouteLimits{{Name: "keep"}, {Name: "bulk"}, {Name: "capped", MaxMessages: 300, Priority: 1}}

// soakChild prints "E route seq" after each Enqueue returns (the PUBACK it
// would send), and "A seq" / "D seq" before each Ack / DeadLetter (after
// those, the message may be gone). Beside the queue it writes versioned
// documents to a key space and prints "K i version" / "X i version" after
// each Write returns (kvcrash_test.go).
func soakChild(dir string) {
	var key []byte
	if k := os.Getenv(soakKeyEnv); k != "" {
		s := sha256.Sum256([]byte(k))
		key = s[:]
	}
	valueLogFileSize = 1 << 20 // badger's least: a rotation every few hundred big values
	q, err := Open(Options{Dir: dir, Routes: soakRoutes, EncryptionKey: key, Logger: childLogger(), KeepCorrupt: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := func(s string) {
		mu.Lock()
		os.Stdout.WriteString(s)
		mu.Unlock()
	}
	for w := range 6 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(w)))
			route := soakRoutes[w%3].Name
			for {
				size := 50 + rng.IntN(200)
				switch {
				case rng.IntN(40) == 0:
					size = valueThreshold + rng.IntN(3*valueThreshold) // the value log
				case route == "bulk":
					size = 2048 + rng.IntN(14<<10) // fills memtables: flushes, compactions
				}
				seq, err := q.Enqueue(context.Background(), Message{Route: route, Topic: "t", Payload: bytes.Repeat([]byte{byte('a' + w)}, size), QoS: 1, Device: "d"})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: enqueue:", err)
					os.Exit(3)
				}
				out("E " + route + " " + strconv.FormatUint(seq, 10) + "\n")
			}
		}()
	}
	kvChild(q, out)
	keep := os.Getenv(soakKeepEnv) != ""
	go func() {
		var held []uint64
		for i := 0; ; i++ {
			m, err := q.Next(context.Background())
			if err != nil {
				fmt.Fprintln(os.Stderr, "child: next:", err)
				os.Exit(3)
			}
			switch {
			case keep && m.Route == "keep": // never consumed: a backlog to check
			case i%97 == 0:
				out("D " + strconv.FormatUint(m.Seq, 10) + "\n")
				q.DeadLetter(m.Seq, "test")
			case i%7 == 0:
				held = append(held, m.Seq) // acked later, out of order
			default:
				out("A " + strconv.FormatUint(m.Seq, 10) + "\n")
				q.Ack(m.Seq)
			}
			if i%10 == 0 {
				time.Sleep(2 * time.Millisecond) // slower than the producers: a backlog
			}
			if len(held) > 20 {
				for _, s := range held[10:] {
					out("A " + strconv.FormatUint(s, 10) + "\n")
					q.Ack(s)
				}
				held = held[:10]
			}
			if i%5000 == 4999 {
				q.Rewind()
				held = held[:0]
			}
		}
	}()
	select {}
}

// soakQueue is what the parent knows about one queue across cycles.
type soakQueue struct {
	dir     string
	key     string // "" plain
	pending map[uint64]string
	maxSeq  uint64
	kv      map[int]kvAck // the key space's acknowledged Writes, across cycles
	life    map[string]RouteStats
	sst     int // the highest table id after the last check
	vlog    int // the highest value-log id after the last check
}

func TestCrashSoak(t *testing.T) {
	cycles := envCount(t, "EDGEGW_CRASH_CYCLES", "cycles", 6)
	seed := crashSeed()
	rng := rand.New(rand.NewPCG(seed, 9))
	t.Logf("seed %d, %d cycles", seed, cycles)
	root := t.TempDir()
	qs := []*soakQueue{
		{dir: filepath.Join(root, "plain"), pending: map[uint64]string{}, kv: map[int]kvAck{}, life: map[string]RouteStats{}},
		{dir: filepath.Join(root, "encrypted"), key: "soak", pending: map[uint64]string{}, kv: map[int]kvAck{}, life: map[string]RouteStats{}},
	}
	var tot struct {
		acked, flushing, compacted, rotated, repaired, enqueued, kvWrites, kvDocs int
	}
	start := time.Now()
	for cycle := range cycles {
		sq := qs[cycle%2]
		kill := time.Duration(30+rng.IntN(1200)) * time.Millisecond
		st := soakCycle(t, cycle, sq, kill)
		tot.enqueued += st.enqueued
		tot.acked += st.acked
		tot.repaired += st.repaired
		tot.kvWrites += st.kvWrites
		tot.kvDocs += st.kvDocs
		if st.mems > 1 {
			tot.flushing++
		}
		if st.sst > sq.sst {
			tot.compacted++
		}
		if st.vlog > sq.vlog+1 { // its own Open starts one
			tot.rotated++
		}
		sq.sst, sq.vlog = st.sstAfter, st.vlogAfter
	}
	t.Logf("%d kill -9 cycles in %v: 0 reopen failures, 0 lost; %d messages acknowledged (PUBACK), %d verified present or consumed; "+
		"%d key-space Writes acknowledged, %d acknowledged documents verified at least as new and whole; "+
		"cycles whose kill saw a memtable waiting for its flush %d, new tables (flush or compaction) %d, a value-log rotation %d; repairs at open %d",
		cycles, time.Since(start).Round(time.Second), tot.enqueued, tot.acked, tot.kvWrites, tot.kvDocs, tot.flushing, tot.compacted, tot.rotated, tot.repaired)
}

type soakStats struct {
	enqueued, acked, repaired int
	kvWrites, kvDocs          int // key-space Writes acknowledged; documents checked
	mems, sst, vlog           int // at the kill: .mem files, highest table and value-log ids
	sstAfter, vlogAfter       int // after the check
}

func soakCycle(t *testing.T, cycle int, sq *soakQueue, kill time.Duration) (st soakStats) {
	t.Helper()
	cmd, out, stderr := startHelper(t, true, crashDirEnv+"="+sq.dir, soakEnv+"=1", soakKeyEnv+"="+sq.key)
	var lines []string
	done := make(chan struct{})
	first := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if len(lines) == 0 {
				close(first)
			}
			lines = append(lines, sc.Text())
		}
	}()
	select {
	case <-first:
	case <-done:
	case <-time.After(60 * time.Second):
	}
	time.Sleep(kill)
	st.mems, st.sst, st.vlog = countFiles(sq.dir)
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("cycle %d (%s): child ended by itself: %s", cycle, sq.dir, stderr.String())
	}
	if len(lines) == 0 {
		t.Fatalf("cycle %d (%s): child acknowledged nothing: %s", cycle, sq.dir, stderr.String())
	}
	var minSeq, maxSeq uint64
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "E":
			seq, _ := strconv.ParseUint(f[2], 10, 64)
			if minSeq == 0 || seq < minSeq {
				minSeq = seq
			}
			maxSeq = max(maxSeq, seq)
			if f[1] == "keep" || f[1] == "bulk" {
				sq.pending[seq] = f[1]
			}
			st.enqueued++
		case len(f) == 3 && (f[0] == "K" || f[0] == "X"):
			st.kvWrites++
		}
	}
	kvAcked(lines, sq.kv)
	// A consumer may print its "A" before the producer prints its "E".
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 2 && (f[0] == "A" || f[0] == "D") {
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			delete(sq.pending, seq)
		}
	}
	if minSeq != 0 && minSeq <= sq.maxSeq {
		t.Fatalf("cycle %d: seq %d handed out again (an earlier run reached %d)", cycle, minSeq, sq.maxSeq)
	}
	sq.maxSeq = max(sq.maxSeq, maxSeq)

	var errs bytes.Buffer
	var key []byte
	if sq.key != "" {
		s := sha256.Sum256([]byte(sq.key))
		key = s[:]
	}
	q, err := Open(Options{Dir: sq.dir, Routes: soakRoutes, EncryptionKey: key, KeepCorrupt: true,
		Logger: slog.New(slog.NewTextHandler(&errs, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil || errs.Len() > 0 {
		t.Fatalf("cycle %d (%s, killed after %v): reopen: %v %s; child's stderr:\n%s", cycle, sq.dir, kill, err, errs.String(), stderr.String())
	}
	defer func() {
		if err := q.Close(); err != nil {
			t.Fatalf("cycle %d: Close: %v", cycle, err)
		}
		_, st.sstAfter, st.vlogAfter = countFiles(sq.dir)
	}()
	st.repaired = len(q.OpenReport().Repairs)
	if st.repaired > 0 {
		t.Logf("cycle %d: repaired %v", cycle, q.OpenReport().Repairs)
	}
	checkMeta(t, cycle, q)
	if st.kvDocs, err = checkKV(q, sq.kv); err != nil {
		t.Fatalf("cycle %d (%s, killed after %v): %v", cycle, sq.dir, kill, err)
	}
	// Every message acknowledged and not consumed is there, in order per route.
	got := map[string][]uint64{}
	present := map[uint64]bool{}
	for {
		m, err := available(q)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cycle %d: Next: %v", cycle, err)
			}
			break
		}
		if s := got[m.Route]; len(s) > 0 && m.Seq <= s[len(s)-1] {
			t.Fatalf("cycle %d: route %s: seq %d after %d", cycle, m.Route, m.Seq, s[len(s)-1])
		}
		got[m.Route] = append(got[m.Route], m.Seq)
		present[m.Seq] = true
	}
	var lost []uint64
	for seq := range sq.pending {
		if !present[seq] {
			lost = append(lost, seq)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("cycle %d (%s, killed after %v): %d acknowledged messages lost, first %v", cycle, sq.dir, kill, len(lost), lost[:min(10, len(lost))])
	}
	st.acked = len(sq.pending)
	// Consume it all (the upstream took it), so the queue stays small
	// over hundreds of cycles; the deletes are committed by Close.
	for _, seqs := range got {
		for _, seq := range seqs {
			if err := q.Ack(seq); err != nil {
				t.Fatalf("cycle %d: Ack(%d): %v", cycle, seq, err)
			}
		}
	}
	clear(sq.pending)
	for _, rs := range q.Stats().Routes {
		p := sq.life[rs.Name]
		if rs.Enqueued < p.Enqueued || rs.Acked < p.Acked || rs.DeadLettered < p.DeadLettered {
			t.Fatalf("cycle %d: route %s: lifetime counters went back: %+v after %+v", cycle, rs.Name, rs, p)
		}
		sq.life[rs.Name] = rs
	}
	return st
}

// checkMeta: the per-route meta Open read (Stats) equals a scan of the data.
func checkMeta(t *testing.T, cycle int, q *Queue) {
	t.Helper()
	for _, rs := range q.Stats().Routes {
		q.mu.Lock()
		rid := q.routes[rs.Name].id
		q.mu.Unlock()
		if rid == 0 {
			continue
		}
		var truth meta
		if err := q.db.View(func(txn *badger.Txn) (err error) { truth, err = scanMeta(txn, rid, 0); return }); err != nil {
			t.Fatal(err)
		}
		if rs.Depth != truth.count || rs.Bytes != truth.bytes || rs.DeadLetters != truth.dead || rs.DeadBytes != truth.deadBytes {
			t.Fatalf("cycle %d: route %s: Stats depth %d bytes %d dead %d/%d; on disk %d, %d, %d/%d",
				cycle, rs.Name, rs.Depth, rs.Bytes, rs.DeadLetters, rs.DeadBytes, truth.count, truth.bytes, truth.dead, truth.deadBytes)
		}
	}
}

// countFiles returns the number of memtable logs in dir and the highest
// table and value-log ids.
func countFiles(dir string) (mems, sst, vlog int) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		id, _ := strconv.Atoi(strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())))
		switch filepath.Ext(e.Name()) {
		case ".mem":
			mems++
		case ".sst":
			sst = max(sst, id)
		case ".vlog":
			vlog = max(vlog, id)
		}
	}
	return
}
