package main

// The systemd notification protocol (sd_notify(3)), without libsystemd: one datagram per call on
// the unix socket named by $NOTIFY_SOCKET. The unit runs the daemon with Type=notify and
// WatchdogSec=, so `edgegw run` must
//   - send "READY=1" once the listeners accept connections and the queue is open (systemd
//     considers the start failed if it does not come within TimeoutStartSec);
//   - send "RELOADING=1" when a SIGHUP reload starts and "READY=1" when it ends, successful or not;
//   - send "STOPPING=1" when shutdown begins;
//   - run sdWatchdog, which sends "WATCHDOG=1" at half the interval systemd asked for while the
//     daemon reports itself healthy; when pings stop, systemd kills and restarts the service.
// Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// States understood by systemd; several may be joined with "\n" in one call.
const (
	sdReady     = "READY=1"
	sdReloading = "RELOADING=1"
	sdStopping  = "STOPPING=1"
	sdWatchdogP = "WATCHDOG=1"
)

// sdReloadingNow is RELOADING=1 with the MONOTONIC_USEC systemd >= 253 requires for
// Type=notify-reload (and accepts for Type=notify): CLOCK_MONOTONIC in microseconds.
func sdReloadingNow() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return sdReloading
	}
	return sdReloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
}

// sdStatus is a STATUS= line: one line, whatever text it is given.
func sdStatus(text string) string {
	return "STATUS=" + strings.Join(strings.Fields(text), " ")
}

// sdNotify sends state to the service manager. It reports false (and no error) when the process
// was not started by systemd with a notify socket. Accepted $NOTIFY_SOCKET forms: an absolute
// path ("/run/systemd/notify") or an abstract socket name starting with '@'.
func sdNotify(state string) (sent bool, err error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	name := addr
	switch {
	case addr[0] == '@':
		// Go's net package maps a leading '@' to the abstract namespace (a leading NUL byte).
	case addr[0] == '/':
	default:
		return false, fmt.Errorf("sd_notify: NOTIFY_SOCKET %q is neither a path nor an abstract socket", addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: connecting to %q: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: sending to %q: %w", addr, err)
	}
	return true, nil
}

// sdWatchdogInterval returns the interval systemd expects WATCHDOG=1 within (WatchdogSec=), or
// false when the watchdog is off or meant for another process (WATCHDOG_PID).
func sdWatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}

// sdWatchdog pings systemd at half the watchdog interval until ctx ends, skipping the ping
// whenever healthy returns an error (a stuck queue or broker loop then leads to a restart).
// It returns at once when the watchdog is off.
func sdWatchdog(ctx context.Context, healthy func() error) {
	interval, ok := sdWatchdogInterval()
	if !ok {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy != nil && healthy() != nil {
				continue
			}
			_, _ = sdNotify(sdWatchdogP) // a failed ping is what the watchdog exists to notice
		}
	}
}
