package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// BenchmarkEdgegwRules (make bench): the end-to-end rate (16 mosquitto_pub
// sensors, QoS 1, through the durable queue to Debian's Mosquitto upstream)
// of an edgegw with 10 rules loaded beside one with none, measured in the
// same run, interleaved round by round (benchRounds, median), on the same
// upstream and counter as BenchmarkEdgegwVsMosquitto.
//
// All 10 rules' FROM filters match every message, so each message is
// evaluated by all 10 (topic match, the payload read, WHERE); the bench's
// payloads ("<prefix> <sensor> <seq> <sent>") are not JSON, so WHERE reads
// Undefined and no action runs: the figure is the cost of evaluating rules on
// the publish path, not of their actions. The cost of one typical
// SELECT ... WHERE on a JSON payload, in ns and allocations, is
// gateway/rules' BenchmarkTypicalRuleEval and BenchmarkSetProcess10.
func BenchmarkEdgegwRules(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once")
	}
	up := gatewaytest.NewUpstream(b, cmdUpstream)
	cloud := new(benchSub)
	cloud.subscribe(b, up.Addr, up.PKI.ClientTLS(up.Cloud), "cloud-bench-rules", "sites/#")
	var rules strings.Builder
	rules.WriteString("rules:\n")
	for i := range 10 {
		fmt.Fprintf(&rules, `  - name: threshold_%d
    sql: "SELECT value, topic(2) AS sensor FROM 'sensors/+/t' WHERE value > %d AND unit = 'C'"
    identity: monitor
    actions: [{republish: {topic: "alarms/${topic(2)}/%d"}}]
`, i, 50+i, i)
	}
	opts := func(clientID, tail string) rulesGWOptions {
		return rulesGWOptions{
			registry: benchRegistry,
			policies: map[string]string{"sensor": benchSensorPolicy, "monitor": benchMonitorPolicy},
			routes: `
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}`,
			tail:     tail,
			clientID: clientID,
		}
	}
	none := newRulesGW(b, up, opts("plant-7-gw-none", ""))
	ten := newRulesGW(b, up, opts("plant-7-gw-rules", rules.String()))
	edges := []benchEdge{edgegwEdge{g: none}, edgegwEdge{g: ten}}
	names := []string{"no rules", "10 rules"}
	for _, e := range edges {
		warmUp(b, e, cloud)
	}
	const pubs, per = 16, 2000
	runs := make([][]e2eRun, len(edges))
	for round := range benchRounds {
		for k := range edges {
			i := (k + round) % len(edges)
			tp, lost, cpu := e2eOnce(b, edges[i], up, cloud, "sensors", pubs, per, round)
			if lost > 0 {
				b.Errorf("%s: %d messages lost", names[i], lost)
			}
			runs[i] = append(runs[i], e2eRun{tp, cpu})
		}
	}
	m0, m10 := medianRun(runs[0]), medianRun(runs[1])
	us := func(c cpuShare) float64 { return float64(c.edge.Nanoseconds()) / 1e3 }
	fmt.Fprintf(os.Stderr, "\n%-34s %12s %12s %8s\n", "e2e, 16 publishers, QoS 1 (median)", "no rules", "10 rules", "ratio")
	fmt.Fprintf(os.Stderr, "%-34s %12.0f %12.0f %7.2fx\n", "rate (msg/s)", m0.tp, m10.tp, m10.tp/max(m0.tp, 1))
	fmt.Fprintf(os.Stderr, "%-34s %12.1f %12.1f %7.2fx\n", "edgegw CPU per message (µs)", us(m0.cpu), us(m10.cpu), us(m10.cpu)/max(us(m0.cpu), 0.001))
	b.ReportMetric(m0.tp, "msg/s-no-rules")
	b.ReportMetric(m10.tp, "msg/s-10-rules")
	b.ReportMetric(m10.tp/max(m0.tp, 1), "rate-ratio")
	b.ReportMetric(us(m0.cpu), "edge-µs/msg-no-rules")
	b.ReportMetric(us(m10.cpu), "edge-µs/msg-10-rules")
}
