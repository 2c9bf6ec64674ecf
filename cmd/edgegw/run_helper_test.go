package main

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// startRun starts `edgegw run -c conf` and waits (15 s at most) until it
// listens on addr. It is stopped with SIGTERM (SIGKILL after 10 s) when the
// test ends, and its log is printed when the test failed.
func startRun(t *testing.T, conf, addr string) {
	t.Helper()
	log := new(gatewaytest.Buffer)
	d := exec.Command(gatewaytest.Edgegw(t), "run", "-c", conf)
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = d.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = d.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("edgegw log:\n%s", log.String())
		}
	})
	gatewaytest.WaitListening(t, addr, 15*time.Second)
}
