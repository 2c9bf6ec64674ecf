// Command smoke runs the queue self-test (store/selftest) on the target: an
// encrypted queue, 10,000 messages from 64 writers, reopened (where the
// value-log mmap of badger's defaults fails on 32-bit ARM), drained in order,
// reopened empty. store's TestARMv6 cross-compiles it for GOARCH=arm GOARM=6
// and runs it under qemu-arm-static -cpu arm1176. It imports only store and
// store/selftest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/edgegw/edgegw/store"
	"github.com/edgegw/edgegw/store/selftest"
)

func main() {
	dir := flag.String("dir", "", "queue directory (missing or empty)")
	n := flag.Int("n", 10000, "messages")
	flag.Parse()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	if err := selftest.Run(context.Background(), store.Options{Dir: *dir, EncryptionKey: key}, *n, 64); err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
	fmt.Println("smoke: ok")
}
