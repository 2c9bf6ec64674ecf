// Package selftest is the queue's end-to-end self-test, the one copy: open a
// new queue, enqueue from several writers (group commit), close, reopen
// (where the value-log mmap of badger's defaults fails on 32-bit ARM), drain
// with Next and Ack checking order and content, close, reopen empty.
//
// Two programs run it: the hidden `edgegw queue smoke` (the packaging test
// runs the armhf binary under qemu) and store/internal/smoke, which store's
// TestARMv6 cross-compiles for ARMv6 and runs under qemu-arm-static.
//
// It imports only store of edgegw (and no mochi, prometheus or paho), so a
// tiny cross-compiled binary can carry it.
package selftest
