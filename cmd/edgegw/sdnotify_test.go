package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// listenNotify opens a real unixgram socket like systemd's notify socket and returns the value
// for $NOTIFY_SOCKET. abstract selects the Linux abstract namespace ("@name").
func listenNotify(t *testing.T, abstract bool) (*net.UnixConn, string) {
	t.Helper()
	var name string
	if abstract {
		name = "@edgegw-test-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(t.Name())
	} else {
		// sun_path holds 108 bytes: t.TempDir() can be longer than that.
		dir, err := os.MkdirTemp("", "sdn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on %q: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, name
}

func readDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading notification: %v", err)
	}
	return string(buf[:n])
}

func TestSDNotify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		abstract bool
		state    string
	}{
		{"path ready", false, sdReady + "\nSTATUS=listeners up, queue open"},
		{"abstract reloading", true, sdReloading},
		{"path stopping", false, sdStopping},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, addr := listenNotify(t, tc.abstract)
			t.Setenv("NOTIFY_SOCKET", addr)
			sent, err := sdNotify(tc.state)
			if err != nil || !sent {
				t.Fatalf("sdNotify(%q) = %v, %v; want true, nil", tc.state, sent, err)
			}
			if got := readDatagram(t, conn); got != tc.state {
				t.Errorf("got datagram %q; want %q", got, tc.state)
			}
		})
	}
}

func TestSDNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdNotify(sdReady); sent || err != nil {
		t.Errorf("sdNotify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestSDNotifyErrors(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"relative path", "notify.sock"},
		{"missing socket", "/nonexistent/edgegw/notify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tc.addr)
			if sent, err := sdNotify(sdReady); sent || err == nil {
				t.Errorf("sdNotify with NOTIFY_SOCKET=%q = %v, %v; want false and an error", tc.addr, sent, err)
			}
		})
	}
}

func TestSDWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		ok              bool
	}{
		{"off", "", "", 0, false},
		{"30s", "30000000", "", 30 * time.Second, true},
		{"for this process", "30000000", self, 30 * time.Second, true},
		{"for another process", "30000000", "1", 0, false},
		{"zero", "0", "", 0, false},
		{"garbage", "30s", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, ok := sdWatchdogInterval()
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSDWatchdogPingsWhileHealthy(t *testing.T) {
	conn, addr := listenNotify(t, false)
	t.Setenv("NOTIFY_SOCKET", addr)
	t.Setenv("WATCHDOG_USEC", "2000") // ping every millisecond
	t.Setenv("WATCHDOG_PID", "")

	var mu sync.Mutex
	healthyCalls := 0
	healthy := func() error {
		mu.Lock()
		defer mu.Unlock()
		healthyCalls++
		if healthyCalls%2 == 0 {
			return errors.New("queue stuck") // every other tick: no ping
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sdWatchdog(ctx, healthy); close(done) }()
	for range 3 {
		if got := readDatagram(t, conn); got != sdWatchdogP {
			t.Errorf("got datagram %q; want %q", got, sdWatchdogP)
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if healthyCalls < 5 {
		t.Errorf("healthy called %d times for 3 pings; want >= 5 (unhealthy ticks must not ping)", healthyCalls)
	}
}

func TestSDWatchdogOff(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() { sdWatchdog(context.Background(), nil); close(done) }()
	<-done // returns by itself without a watchdog
}
