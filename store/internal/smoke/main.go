// Command smoke exercises the store end to end on the target: open (encrypted),
// enqueue 10,000 from 64 writers, close, reopen (where the value-log mmap of
// badger's defaults fails on 32-bit ARM), drain in order, close, reopen empty.
// store's TestARMv6 cross-compiles it for GOARCH=arm GOARM=6 and runs it under
// qemu-arm-static -cpu arm1176. It imports only store.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"

	"github.com/edgegw/edgegw/store"
)

func main() {
	dir := flag.String("dir", "", "queue directory")
	n := flag.Int("n", 10000, "messages")
	flag.Parse()
	if err := run(*dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
	fmt.Println("smoke: ok")
}

func run(dir string, n int) error {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	opts := store.Options{Dir: dir, EncryptionKey: key, Routes: []store.RouteLimits{{Name: "telemetry"}}}
	q, err := store.Open(opts)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	per := n / 64
	for w := range 64 {
		cnt := per
		if w == 0 {
			cnt += n - per*64
		}
		wg.Go(func() {
			for i := range cnt {
				p := fmt.Appendf(nil, "%02d-%06d-%s", w, i, make([]byte, 80))
				if _, err := q.Enqueue(context.Background(), store.Message{Route: "telemetry", Topic: "t", Payload: p, QoS: 1}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if err := q.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if q, err = store.Open(opts); err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	if d := q.Stats().Depth; d != int64(n) {
		return fmt.Errorf("reopened depth %d; want %d", d, n)
	}
	var prev uint64
	for i := range n {
		m, err := q.Next(context.Background())
		if err != nil {
			return fmt.Errorf("next #%d: %w", i, err)
		}
		if m.Seq <= prev || len(m.Payload) != 90 {
			return fmt.Errorf("next #%d: seq %d after %d, %d bytes", i, m.Seq, prev, len(m.Payload))
		}
		prev = m.Seq
		if err := q.Ack(m.Seq); err != nil {
			return err
		}
	}
	if err := q.Close(); err != nil {
		return err
	}
	if q, err = store.Open(opts); err != nil {
		return fmt.Errorf("third open: %w", err)
	}
	defer q.Close()
	if d := q.Stats().Depth; d != 0 {
		return fmt.Errorf("after draining depth %d; want 0", d)
	}
	return nil
}
