// Command rssbench measures the memory of the store with a million queued
// messages: it fills a queue (100-byte payloads, 64 writers, every enqueue
// synced), reports VmRSS and ru_maxrss, then re-executes itself to open the
// full queue from cold (what a restarted daemon pays: the index rebuild) and
// reports again. `make bench` runs it:
//
//	go run ./store/internal/rssbench [-n 1000000] [-dir DIR]
//
// It imports only store.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/store"
)

func main() {
	n := flag.Int("n", 1000000, "messages to queue")
	dir := flag.String("dir", "", "queue directory (default: a temporary one, removed)")
	reopen := flag.Bool("reopen", false, "only open the queue in -dir and report (the parent runs this in a fresh process)")
	flag.StringVar(&memprofile, "memprofile", "", "write a heap profile after the fill to this file")
	flag.Parse()
	if err := run(*dir, *n, *reopen); err != nil {
		fmt.Fprintln(os.Stderr, "rssbench:", err)
		os.Exit(1)
	}
}

var memprofile string

func run(dir string, n int, reopen bool) error {
	if reopen {
		start := time.Now()
		q, err := store.Open(store.Options{Dir: dir, MinFreeBytes: 1})
		if err != nil {
			return err
		}
		open := time.Since(start)
		runtime.GC()
		st := q.Stats()
		report(fmt.Sprintf("reopened (%d queued, open took %v)", st.Depth, open.Round(time.Millisecond)))
		// and drain a little to prove it is usable
		for range 1000 {
			m, err := q.Next(context.Background())
			if err != nil {
				return err
			}
			q.Ack(m.Seq)
		}
		report("after draining 1000")
		return q.Close()
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "rssbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d + "/queue"
	}
	q, err := store.Open(store.Options{Dir: dir, MinFreeBytes: 1})
	if err != nil {
		return err
	}
	payload := make([]byte, 100)
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	var failed atomic.Value
	for range 64 {
		wg.Go(func() {
			m := store.Message{Route: "telemetry", Topic: "building/f1/temp", Payload: payload, QoS: 1, Device: "temp-f01-001"}
			for left.Add(-1) >= 0 {
				if _, err := q.Enqueue(context.Background(), m); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Printf("filled %d messages in %v (%.0f durable enq/s, 64 writers)\n", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	runtime.GC()
	report("after fill, same process")
	if memprofile != "" {
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		f.Close()
	}
	if err := q.Close(); err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-reopen", "-dir", dir)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func report(when string) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("%s: VmRSS %s (RssAnon %s, RssFile %s: badger's mmapped tables), VmHWM %s, ru_maxrss %d MiB, Go heap in use %d MiB\n",
		when, vm("VmRSS"), vm("RssAnon"), vm("RssFile"), vm("VmHWM"), ru.Maxrss/1024, ms.HeapInuse>>20)
}

func vm(field string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			return strings.Join(strings.Fields(l[len(field)+1:]), " ")
		}
	}
	return "?"
}
