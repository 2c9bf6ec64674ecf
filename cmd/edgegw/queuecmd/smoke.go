package queuecmd

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/store"
	"github.com/edgegw/edgegw/store/selftest"
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
				return &ExitError{Code: 2, Err: errors.New("queue smoke: --dir is required (a missing or empty directory)")}
			}
			if n < 1 {
				return &ExitError{Code: 2, Err: fmt.Errorf("queue smoke: -n %d: want at least 1", n)}
			}
			return a.queueSmoke(f, n)
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 1000, "messages to enqueue")
	return cmd
}

// queueSmoke runs the queue self-test (store/selftest) in f.dir with n
// messages and prints one summary line.
func (a *app) queueSmoke(f *queueFlags, n int) error {
	fail := func(format string, args ...any) error {
		return &ExitError{Code: 1, Err: fmt.Errorf("queue smoke: "+format, args...)}
	}
	opts := store.Options{Dir: f.dir}
	if f.key != "" {
		cfg := &config.Config{Store: config.StoreConfig{Dir: f.dir, EncryptionKey: f.key}}
		var err error
		if opts, err = uplink.StoreOptionsFromConfig(a.Context(), cfg); err != nil {
			return fail("%v", err)
		}
	}
	log, err := a.Logger(nil)
	if err != nil {
		return err
	}
	opts.Logger = log
	start := time.Now()
	if err := selftest.Run(a.Context(), opts, n, selftest.DefaultWriters); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(a.Stdout(), "queue smoke: ok: %d messages enqueued, reopened, drained in order and acked, empty after reopen (%s/%s, encrypted %v, %s)\n",
		n, runtime.GOOS, runtime.GOARCH, opts.EncryptionKey != nil, time.Since(start).Round(time.Millisecond))
	return nil
}
