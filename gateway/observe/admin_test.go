package observe

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "egw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestAdminStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "admin.sock")
	// A daemon killed with -9 leaves its socket file behind.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	a, err := listenAdmin(path)
	if err != nil {
		t.Fatalf("listenAdmin over a stale socket: %v", err)
	}
	a.close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after close: %v", err)
	}
}

func TestAdminRefusals(t *testing.T) {
	dir := shortTempDir(t)
	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenAdmin(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v; want 'not a socket'", err)
	}
	long := filepath.Join(dir, strings.Repeat("x", 120), "admin.sock")
	if _, err := listenAdmin(long); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long path: %v; want the length limit named", err)
	}
	live := filepath.Join(dir, "live.sock")
	a, err := listenAdmin(live)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if _, err := listenAdmin(live); !errors.Is(err, ErrDaemonRunning) {
		t.Errorf("live socket: %v; want ErrDaemonRunning", err)
	}
}

func TestAdminGetNotRunning(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "none.sock")
	var s Status
	err := AdminGet(context.Background(), path, "/status", &s)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), path) {
		t.Errorf("no socket: %v; want ErrNotRunning naming %s", err, path)
	}
}
