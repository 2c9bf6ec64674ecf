package store

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestARMv6 cross-compiles internal/smoke for a Raspberry Pi Zero/1 (ARMv6,
// 32-bit) and runs it under qemu-arm-static -cpu arm1176: open, 10k
// enqueues, close, reopen, drain.
func TestARMv6(t *testing.T) {
	qemu, err := exec.LookPath("qemu-arm-static")
	if err != nil {
		t.Fatalf("qemu-arm-static not found: run `make deps` (apt-get install qemu-user-static)")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "smoke")
	build := exec.Command("go", "build", "-o", bin, "./internal/smoke")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=6", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross-compiling for armv6: %v\n%s", err, out)
	}
	out, err := exec.Command(qemu, "-cpu", "arm1176", bin, "-dir", filepath.Join(tmp, "q")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "smoke: ok") {
		t.Fatalf("smoke under qemu-arm-static -cpu arm1176: %v\n%s", err, out)
	}
}
