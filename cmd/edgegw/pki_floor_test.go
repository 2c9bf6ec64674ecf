package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
)

// TestPKIClockFloorFromLdflags builds the binary the way the Makefile does, with a build date
// after today: `pki init` starts the CA at that date and says why.
func TestPKIClockFloorFromLdflags(t *testing.T) {
	future := time.Now().UTC().AddDate(1, 0, 0).Truncate(time.Second)
	bin := filepath.Join(t.TempDir(), "edgegw")
	build := exec.Command("go", "build", "-ldflags", "-X main.buildDate="+future.Format(time.RFC3339), "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conf, dir, _ := pkiSite(t)
	out, err := exec.Command(bin, "pki", "init", "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("pki init: %v\n%s", err, out)
	}
	warn := "is before this build (" + future.Format(time.DateOnly) + ")"
	if nb := pkitest.CANotBefore(t, dir); !nb.Equal(future) || !strings.Contains(string(out), warn) {
		t.Errorf("CA NotBefore %v, output %q; want NotBefore %v (-X main.buildDate) and a warning containing %q", nb, out, future, warn)
	}
}
