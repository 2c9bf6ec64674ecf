package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// namedEdge is an edgegw edge with its own name in the bench log.
type namedEdge struct {
	edgegwEdge
	n string
}

func (e namedEdge) name() string { return e.n }

// BenchmarkBridgesSharedRoute (make bench): the end-to-end rate of one
// bridge beside two bridges sharing a route. Two `edgegw run` side by side
// on the same site: "one-bridge" forwards sensors/# to upstream one;
// "two-bridges" forwards sensors/# to upstream one and, under another route
// name, to upstream two, so every message is queued twice (two queues, two
// synced commits before the PUBACK) and sent twice. The rate is measured at
// upstream one's subscriber, like BenchmarkEdgegwVsMosquitto's e2e figure
// (median of benchRounds interleaved runs); for two-bridges, upstream two's
// arrivals are counted too (lost must be 0 on both).
func BenchmarkBridgesSharedRoute(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once")
	}
	up1 := gatewaytest.NewUpstream(b, cmdUpstream)
	up2 := gatewaytest.NewUpstream(b, cmdUpstream)
	cloud1, cloud2 := new(benchSub), new(benchSub)
	cloud1.subscribe(b, up1.Addr, up1.PKI.ClientTLS(up1.Cloud), "cloud-bench", "sites/#")
	cloud2.subscribe(b, up2.Addr, up2.PKI.ClientTLS(up2.Cloud), "cloud-bench", "sites/#")
	one := bridgeYAML("one", "plant-7-gw-one", up1, `
      - {name: one-t, topic: "sensors/#", remote_prefix: "sites/plant-7/"}`)
	two := bridgeYAML("two", "plant-7-gw-two", up2, `
      - {name: two-t, topic: "sensors/#", remote_prefix: "sites/plant-7/"}`)
	g1 := newGW(b, "bridges:\n"+one)
	// The second gateway's bridge one needs another client ID on upstream
	// one (the first gateway holds plant-7-gw-one there).
	g2 := newGW(b, "bridges:\n"+bridgeYAML("one", "plant-7-gw-one-b", up1, `
      - {name: one-t, topic: "sensors/#", remote_prefix: "sites/plant-7/"}`)+two)
	edges := []namedEdge{{edgegwEdge{g: g1}, "one-bridge"}, {edgegwEdge{g: g2}, "two-bridges"}}
	for _, e := range edges {
		warmUp(b, e, cloud1)
	}
	for _, tc := range []struct{ pubs, per int }{{1, benchTP1}, {16, benchTP16Per}} {
		tps := make([][]e2eRun, len(edges))
		for round := range benchRounds {
			for k := range edges {
				i := (k + round) % len(edges)
				e := edges[i]
				want := tc.pubs * tc.per
				prefix := fmt.Sprintf("%s-tp%d-r%d", e.name(), tc.pubs, round) // e2eOnce's
				cloud2.reset(prefix)
				tp, lost, cpu := e2eOnce(b, e, up1, cloud1, "sensors", tc.pubs, tc.per, round)
				tps[i] = append(tps[i], e2eRun{tp, cpu})
				if lost > 0 {
					b.Errorf("%s: %d messages lost at upstream one", e.name(), lost)
				}
				if e.n == "two-bridges" {
					if n, _ := cloud2.wait(want, 15*time.Second); n != want {
						b.Errorf("%s: %d of %d messages at upstream two", e.name(), n, want)
					}
				}
			}
		}
		r1, r2 := medianRun(tps[0]), medianRun(tps[1])
		benchLog("bridges", "e2e %2d publisher(s), median of %d: one bridge %.0f msg/s (edge CPU %v/msg); two bridges sharing the route %.0f msg/s at upstream one (edge CPU %v/msg for both copies): ratio %.2f",
			tc.pubs, benchRounds, r1.tp, r1.cpu.edge.Round(100*time.Nanosecond), r2.tp, r2.cpu.edge.Round(100*time.Nanosecond), r2.tp/r1.tp)
		b.ReportMetric(r1.tp, fmt.Sprintf("one-bridge-%dpub-msg/s", tc.pubs))
		b.ReportMetric(r2.tp, fmt.Sprintf("two-bridges-%dpub-msg/s", tc.pubs))
	}
}
