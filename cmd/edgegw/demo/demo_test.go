package demo

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// TestDemoPicksOtherPortsWhenOneIsTaken: a port the demo found free is
// taken by another process before the gateway binds it (here the test
// holds it: the upstream's listener on its first start, the gateway's LAN
// listener on its first and its metrics on its second). The demo starts
// each again on other ports and completes. Before, `make test` failed now and then in TestDemo
// with "bind: address already in use" when a parallel package took the
// port in between.
func TestDemoPicksOtherPortsWhenOneIsTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	picks := 0
	pickAddr = func() (string, error) {
		picks++
		if picks == 1 || picks == 3 || picks == 6 {
			return held.Addr().String(), nil
		}
		return freeLoopbackAddr()
	}
	t.Cleanup(func() { pickAddr = freeLoopbackAddr })
	var out bytes.Buffer
	sum, err := Run(context.Background(), &out, Options{PerSensor: 2})
	if err != nil {
		t.Fatalf("Run: %v; output:\n%s", err, out.String())
	}
	// The upstream: 1 (taken), then 2. The gateway: LAN 3 (taken) and
	// metrics 4, LAN 5 and metrics 6 (taken), then LAN 7 and metrics 8.
	if picks != 8 {
		t.Errorf("%d ports picked; want 8 (two starts of the upstream, three of the gateway)", picks)
	}
	if sum.Lost != 0 || sum.Delivered == 0 || !strings.Contains(out.String(), "upstream back: the queue drained") {
		t.Errorf("summary %+v; output:\n%s", sum, out.String())
	}
}
