// Package hwtest starts real software security devices for tests: swtpm (a TPM 2.0 over TCP on
// free 127.0.0.1 ports, state in a temp dir) and a SoftHSM2 token (PKCS#11) in a temp dir. It
// also hands out the free loopback ports every test server binds (FreePorts, FreeAddr: why they
// are not the kernel's :0 is in ports.go).
// Everything is torn down by t.Cleanup. A missing tool fails the test with the command that
// installs it; nothing is skipped.
//
// Role: test helper only (imported from _test.go files). It imports nothing from this module.
package hwtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// SoftHSMModule is where Debian's softhsm2 package puts the PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// Require returns the path of tool or fails t with the `make deps` hint naming pkg.
func Require(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: run `make deps` (apt-get install %s)", tool, pkg)
	}
	return p
}

// SWTPM is a running swtpm. Command port Port, control/platform port Port+1.
type SWTPM struct {
	StateDir string
	Port     int
	t        testing.TB
	proc     *os.Process
	exited   chan struct{} // closed when proc has been waited for
	stderr   *bytes.Buffer
}

// StartSWTPM starts swtpm with a fresh state directory.
func StartSWTPM(t testing.TB) *SWTPM {
	t.Helper()
	return StartSWTPMDir(t, t.TempDir())
}

// StartSWTPMDir starts swtpm on the given state directory (reuse one to simulate a reboot).
func StartSWTPMDir(t testing.TB, dir string) *SWTPM {
	t.Helper()
	Require(t, "swtpm", "swtpm")
	s := &SWTPM{StateDir: dir, t: t}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Addr is the command address, "127.0.0.1:PORT".
func (s *SWTPM) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URI returns "tpm:tcp=ADDR;" followed by attrs (e.g. "handle=0x81000100").
func (s *SWTPM) URI(attrs string) string { return "tpm:tcp=" + s.Addr() + ";" + attrs }

// Restart stops swtpm and starts it again on the same state directory, like a reboot.
// The ports may change: build URIs after Restart.
func (s *SWTPM) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause stops swtpm with SIGSTOP: a hung TPM. The kernel still accepts connections on its
// ports; nothing answers. Resume (or Stop) continues it.
func (s *SWTPM) Pause() {
	s.t.Helper()
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP swtpm: %v", err)
	}
}

// Resume continues a paused swtpm (SIGCONT).
func (s *SWTPM) Resume() {
	s.t.Helper()
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("SIGCONT swtpm: %v", err)
	}
}

// Stop terminates swtpm (SIGTERM, which saves its state; SIGCONT, should it be paused) and waits
// for it.
func (s *SWTPM) Stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGTERM)
	_ = s.proc.Signal(syscall.SIGCONT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.proc.Kill()
		<-s.exited
	}
	s.proc = nil
}

func (s *SWTPM) start() {
	s.t.Helper()
	var lastErr string
	for attempt := 0; attempt < 10; attempt++ {
		port := FreePorts(s.t, 2)
		var stderr bytes.Buffer
		cmd := exec.Command("swtpm", "socket", "--tpm2",
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
			"--tpmstate", "dir="+s.StateDir,
			"--flags", "not-need-init,startup-clear")
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("starting swtpm: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if waitListening(port, exited) && waitListening(port+1, exited) {
			s.proc, s.exited, s.Port, s.stderr = cmd.Process, exited, port, &stderr
			return
		}
		_ = cmd.Process.Kill()
		<-exited
		lastErr = stderr.String()
	}
	s.t.Fatalf("swtpm did not start: %s", lastErr)
}

func waitListening(port int, exited chan struct{}) bool {
	for i := 0; i < 200; i++ {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// SoftHSM is an initialised SoftHSM2 token in a temp dir. SOFTHSM2_CONF is set for the test
// (so tests using it must not run in parallel).
type SoftHSM struct {
	Dir     string
	Conf    string
	Module  string
	Token   string
	PINFile string // 0600, holds the user PIN
	PIN     string // for tests that check it never leaks
}

// StartSoftHSM initialises a token labelled label with a random PIN.
func StartSoftHSM(t *testing.T, label string) *SoftHSM {
	t.Helper()
	Require(t, "softhsm2-util", "softhsm2")
	if _, err := os.Stat(SoftHSMModule); err != nil {
		t.Fatalf("%s not found: run `make deps` (apt-get install softhsm2)", SoftHSMModule)
	}
	dir := t.TempDir()
	h := &SoftHSM{Dir: dir, Conf: filepath.Join(dir, "softhsm2.conf"), Module: SoftHSMModule, Token: label,
		PINFile: filepath.Join(dir, "pin")}
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Join(dir, "tokens"))
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", h.Conf)
	h.PIN = randomHex(t, 8)
	if err := os.WriteFile(h.PINFile, []byte(h.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
		"--pin", h.PIN, "--so-pin", randomHex(t, 8)).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return h
}

// URI returns a pkcs11: URI for object on this token, with pin-source.
func (h *SoftHSM) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=%s", h.Token, object, h.Module, h.PINFile)
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
