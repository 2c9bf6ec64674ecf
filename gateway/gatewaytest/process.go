package gatewaytest

import (
	"os"
	"syscall"
	"time"
)

// Terminate stops a process as systemd does: SIGTERM, then up to within for
// it to exit (exited is closed when Wait returns), then SIGKILL. It reports
// whether the process exited by itself; a caller that needs a clean stop
// fails the test when it did not.
func Terminate(p *os.Process, exited <-chan struct{}, within time.Duration) bool {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return true
	case <-time.After(within):
		_ = p.Kill()
		<-exited
		return false
	}
}
