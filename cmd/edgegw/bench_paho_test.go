package main

// BenchmarkEdgegwVsMosquittoPaho (make bench): the second harness of
// BenchmarkEdgegwVsMosquitto, whose client side no part of edgegw wrote.
// Sensors are github.com/eclipse/paho.mqtt.golang v1.5.1 clients over MQTT
// 3.1.1 with mTLS, each keeping at most pahoWindow 100-byte QoS 1 publishes
// in flight; edgegw runs with the packaged config (configs/edgegw.yaml: its
// encrypted queue, the product's bridge.inflight, user properties and all,
// with only its paths, ports and route topic localized) and Debian's
// Mosquitto runs as the edge bridge with the same route, side by side,
// interleaved, the median of benchRounds rounds at 1, 4 and 16 publishers.
//
// The upstream is Debian Mosquitto with max_inflight_messages 20 and then
// 100: Mosquitto 2 announces that as the Receive Maximum in its CONNACK to
// MQTT 5 clients (mosquitto.conf(5)), which is what a bridge's window
// follows; the harness reads that CONNACK with an MQTT 5 client and prints
// the value before measuring. edgegw's bridge speaks MQTT 5 and lowers its
// window to it; the Mosquitto edge bridge gets bridge_protocol_version
// mqttv50 (so it reads the same CONNACK) and its own max_inflight_messages
// set to the same number (the cap on its bridge's in-flight messages).
//
// Per run and per edge it prints delivered msg/s and the edgegw/Mosquitto
// ratio, the edge's CPU per delivered message (/proc/PID/stat), bytes
// written to storage per message (/proc/PID/io write_bytes), peak RSS
// during the run (VmHWM after a clear_refs reset), and for edgegw the
// fdatasyncs per second and messages per fdatasync (its
// edgegw_store_fsync_duration_seconds_count); after the runs, each edge's
// idle CPU (ms/s) with the sessions connected, every edge over the same
// three pahoIdle windows (the mean, and each window: the first can hold the
// drains' after-work).
//
// EDGEGW_BENCH_PAHO_MSGS sets the messages per run (default 50,000, split
// between the publishers); EDGEGW_BENCH_PAHO_RMAX one upstream Receive
// Maximum instead of both; EDGEGW_BENCH_PAHO_WINDOW another window;
// EDGEGW_BENCH_PAHO_PLAIN=1 the packaged config without its encryption_key
// (those two tell the window's and encryption's shares of the cost);
// EDGEGW_BENCH_PAHO_PAYLOAD=random fills each payload after its
// "<prefix> <sensor> <seq> 0" with random bytes (no whitespace) instead of
// spaces: incompressible, for the queue's bytes written per message without
// the help of its compression (the default payload compresses, as sensor
// telemetry does);
// EDGEGW_BENCH_BASELINE=BIN runs a third edge, "edgegw-base": the
// edgegw binary BIN (built from another commit, e.g. before a change to the
// queue format) on the same packaged config, in the same rounds, so two
// builds are compared within one run (its ratio is to Mosquitto too);
// EDGEGW_BENCH_PERFSTAT=1 counts each edge's context switches and futex
// calls per delivered message in every run (perf stat);
// EDGEGW_BENCH_PERF=DIR records each edgegw run's first round and the idle
// daemon with `perf record -g` into DIR (the daemon keeps its symbols:
// `perf report -i DIR/edgegw-rm20-p16.data --no-children` names Go functions).

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// pahoWindow is the QoS 1 publishes in flight per sensor: 50, or
// EDGEGW_BENCH_PAHO_WINDOW (to tell the window's share of the cost).
var pahoWindow = 50

const (
	pahoPayload = 100             // bytes
	pahoIdle    = 5 * time.Second // idle CPU window
)

// pahoRun is one e2e run of one edge.
type pahoRun struct {
	rate     float64       // delivered msg/s
	cpu      time.Duration // edge CPU per delivered message
	written  int64         // edge bytes written to storage per message
	peakRSS  int64         // bytes
	syncs    float64       // fdatasyncs/s (edgegw)
	perSync  float64       // messages per fdatasync (edgegw)
	syncTook time.Duration // mean group-commit fdatasync (edgegw)
	lost     int
	duration time.Duration
}

func BenchmarkEdgegwVsMosquittoPaho(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once")
	}
	total := 50000
	if v := os.Getenv("EDGEGW_BENCH_PAHO_MSGS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 16 {
			b.Fatalf("EDGEGW_BENCH_PAHO_MSGS=%q: want a number of messages per run, at least 16", v)
		}
		total = n
	}
	if v := os.Getenv("EDGEGW_BENCH_PAHO_WINDOW"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			b.Fatalf("EDGEGW_BENCH_PAHO_WINDOW=%q: want 1 to 65535 publishes in flight", v)
		}
		pahoWindow = n
	}
	var t strings.Builder
	queue := "encrypted queue"
	if os.Getenv("EDGEGW_BENCH_PAHO_PLAIN") != "" {
		queue = "EDGEGW_BENCH_PAHO_PLAIN: its encryption_key removed"
	}
	payload := "text padded with spaces"
	if os.Getenv("EDGEGW_BENCH_PAHO_PAYLOAD") == "random" {
		payload = "EDGEGW_BENCH_PAHO_PAYLOAD=random: incompressible"
	}
	fmt.Fprintf(&t, "\nthird-party harness: paho.mqtt.golang v1.5.1 MQTT 3.1.1 publishers, window %d, %d-byte QoS 1 (%s), mTLS, %d msgs per run, median of %d interleaved rounds; edgegw on the packaged config (%s)\n",
		pahoWindow, pahoPayload, payload, total, benchRounds, queue)
	fmt.Fprintf(&t, "%-5s %-4s %-11s %9s %7s %9s %9s %8s %9s %9s\n", "rmax", "pubs", "edge", "msg/s", "ratio", "cpu µs/m", "B/msg", "peakMiB", "fsync/s", "msg/fsync")
	rms := []int{20, 100}
	if v := os.Getenv("EDGEGW_BENCH_PAHO_RMAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			b.Fatalf("EDGEGW_BENCH_PAHO_RMAX=%q: want a Receive Maximum, 1 to 65535", v)
		}
		rms = []int{n}
	}
	for _, rm := range rms {
		pahoAtReceiveMax(b, rm, total, &t)
	}
	t.WriteString("ratio: edgegw/Mosquitto delivered msg/s. One shared 2-core machine: other processes' load falls into any run; compare edges within one round, not across benchmarks.\n")
	fmt.Fprint(os.Stderr, t.String())
}

// pahoAtReceiveMax measures both edges against an upstream announcing a
// Receive Maximum of rm and adds its rows to t.
func pahoAtReceiveMax(b *testing.B, rm, total int, t *strings.Builder) {
	up := gatewaytest.NewUpstream(b, gatewaytest.UpstreamOptions{MaxQueued: 10000000, MaxInflight: rm, TLSVersion: "tlsv1.2"})
	defer up.Stop()
	announced := receiveMaximumOf(b, up)
	benchLog("upstream", "max_inflight_messages %d: its CONNACK to an MQTT 5 client announces Receive Maximum %d", rm, announced)
	if announced != rm {
		b.Fatalf("upstream announces Receive Maximum %d; want %d (max_inflight_messages)", announced, rm)
	}
	cloud := new(benchSub)
	cloud.subscribe(b, up.Addr, up.PKI.ClientTLS(up.Cloud), fmt.Sprintf("cloud-paho-%d", rm), "sites/#")

	g := startPackagedGW(b, up, gatewaytest.Edgegw(b), "plant-7-gw")
	defer g.stop()
	m := startMosqEdge(b, g.site, up, rm, "bridge_protocol_version mqttv50\n")
	defer m.stop()
	edges := []benchEdge{edgegwEdge{g: g}, m}
	if bin := os.Getenv("EDGEGW_BENCH_BASELINE"); bin != "" {
		base := startPackagedGW(b, up, bin, "plant-7-gw-base") // its own client ID at the same upstream
		defer base.stop()
		edges = append(edges, edgegwEdge{g: base, label: "edgegw-base"})
	}
	for _, e := range edges {
		warmUp(b, e, cloud)
	}
	// The bridge's side of the same CONNACK: edgegw logs the window it took
	// (bridge.inflight 1024 lowered to the Receive Maximum).
	for _, e := range edges {
		eg, ok := e.(edgegwEdge)
		if !ok {
			continue
		}
		if w := fmt.Sprintf("window=%d ", rm); !strings.Contains(eg.g.log.String(), w) {
			b.Fatalf("%s did not log %q on connecting upstream; log:\n%s", e.name(), w, gatewaytest.LastBytes([]byte(eg.g.log.String()), 4096))
		}
		benchLog(e.name(), "bridge connected with window=%d (its log)", rm)
	}
	for _, pubs := range []int{1, 4, 16} {
		runs := make([][]pahoRun, len(edges))
		for round := range benchRounds {
			for k := range edges {
				i := (k + round) % len(edges)
				runs[i] = append(runs[i], pahoOnce(b, edges[i], cloud, rm, pubs, total/pubs, round))
			}
		}
		med := make([]pahoRun, len(edges))
		for i := range edges {
			med[i] = medianPaho(runs[i])
		}
		for i, e := range edges {
			r, sync := med[i], func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
			syncs, perSync, ratio := "-", "-", "-"
			if _, ok := e.(edgegwEdge); ok {
				syncs, perSync = sync(r.syncs), sync(r.perSync)
				ratio = fmt.Sprintf("%.2fx", r.rate/max(med[1].rate, 1e-9)) // edges[1] is Mosquitto
			}
			fmt.Fprintf(t, "%-5d %-4d %-11s %9.0f %7s %9.1f %9d %8.1f %9s %9s\n", rm, pubs, e.name(), r.rate, ratio,
				float64(r.cpu)/1e3, r.written, float64(r.peakRSS)/(1<<20), syncs, perSync)
			b.ReportMetric(r.rate, fmt.Sprintf("paho_%s_rm%d_%dpub_msg/s", e.name(), rm, pubs))
			b.ReportMetric(float64(r.cpu)/1e3, fmt.Sprintf("paho_%s_rm%d_%dpub_cpu_us/msg", e.name(), rm, pubs))
		}
	}
	drains := make([][]pahoRun, len(edges))
	for round := range benchRounds {
		for k := range edges {
			i := (k + round) % len(edges)
			drains[i] = append(drains[i], pahoDrain(b, edges[i], up, cloud, rm, total, round))
		}
	}
	for i, e := range edges {
		r := medianPaho(drains[i])
		fmt.Fprintf(t, "%-5d drain %-11s %9.0f msg/s (first to last arrival of %d queued with the upstream down), edge CPU %.1f µs/msg\n", rm, e.name(), r.rate, total/16*16, float64(r.cpu)/1e3)
	}
	for _, e := range edges {
		if dir := os.Getenv("EDGEGW_BENCH_PERF"); dir != "" && e.name() == "edgegw" {
			stop := perfRecord(b, e.pid(), filepath.Join(dir, fmt.Sprintf("edgegw-rm%d-idle.data", rm)))
			time.Sleep(pahoIdle)
			stop()
		}
	}
	// Every edge over the same three windows, one after the other: the
	// first follows the drains closely and can hold their after-work (an
	// LSM compacting the deleted backlog); the mean of all three is the idle
	// figure, and the edges share whatever else the machine did meanwhile.
	var idle [3][]float64
	for w := range idle {
		idle[w] = idleCPU(edges)
	}
	for i, e := range edges {
		mean := (idle[0][i] + idle[1][i] + idle[2][i]) / 3
		benchLog(e.name(), "idle CPU with the sessions connected, upstream %d: %.2f, %.2f, %.2f ms/s over three %v windows", rm, idle[0][i], idle[1][i], idle[2][i], pahoIdle)
		fmt.Fprintf(t, "%-5d idle %-11s %.2f ms/s of CPU over %v (its threads' schedstat; %.2f, %.2f, %.2f per window)\n", rm, e.name(), mean, 3*pahoIdle, idle[0][i], idle[1][i], idle[2][i])
	}
}

// pahoDrain measures the bridge alone, once: total messages from 16 sensors are
// queued with the upstream down, then the upstream comes back; the drain
// rate is from the first to the last arrival (the reconnect delays of the
// two bridges differ and are left out), with the edge's CPU per message
// over the drain. A fixed delay per window of rm messages shows here as a
// rate near rm/delay at any load.
func pahoDrain(b *testing.B, e benchEdge, up *gatewaytest.Upstream, cloud *benchSub, rm, total, round int) pahoRun {
	prefix := fmt.Sprintf("%s-paho-drain-rm%d-r%d", e.name(), rm, round)
	cloud.reset(prefix)
	up.Stop()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		sensor := fmt.Sprintf("sensor-%02d", i)
		tc := e.site().ClientTLS(e.cert(b, sensor))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pahoPublish(e.addr(), tc, sensor, "sensors/"+sensor+"/t", prefix, total/16)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatalf("%s: %v", e.name(), err)
		}
	}
	c0 := procCPU(e.pid())
	up.Start()
	want := total / 16 * 16
	// Mosquitto's bridge once took 31 s to reconnect here (restart_timeout
	// 1 notwithstanding); the rate is from the first arrival, so a long
	// wait costs nothing but the wait.
	n, last := cloud.wait(want, 90*time.Second)
	cloud.mu.Lock()
	first := cloud.first
	cloud.mu.Unlock()
	r := pahoRun{rate: float64(n-1) / max(last.Sub(first).Seconds(), 1e-9), lost: want - n, duration: last.Sub(first)}
	r.cpu = (procCPU(e.pid()) - c0) / time.Duration(max(n, 1))
	benchLog(e.name(), "paho rmax %d, drain round %d: %d queued with the upstream down, %d arrived, %.0f msg/s from the first to the last (%v), edge CPU %.1f µs/msg, lost %d",
		rm, round+1, want, n, r.rate, r.duration.Round(time.Millisecond), float64(r.cpu)/1e3, want-n)
	if n < want {
		b.Errorf("%s: %d of %d PUBACKed messages never reached the upstream", e.name(), want-n, want)
	}
	return r
}

// receiveMaximumOf reads the Receive Maximum up announces in its CONNACK to
// an MQTT 5 client (65535 when it announces none, as MQTT 5 says).
func receiveMaximumOf(b *testing.B, up *gatewaytest.Upstream) int {
	conn, err := tls.Dial("tcp", up.Addr, up.PKI.ClientTLS(up.Cloud))
	if err != nil {
		b.Fatalf("dialing the upstream: %v", err)
	}
	c, err := gatewaytest.ConnectV5(b, conn, "receive-max-probe")
	if err != nil {
		b.Fatalf("MQTT 5 CONNECT to the upstream: %v", err)
	}
	if c.Ack.Properties == nil || c.Ack.Properties.ReceiveMaximum == nil {
		return 65535
	}
	return int(*c.Ack.Properties.ReceiveMaximum)
}

// startPackagedGW runs `edgegw run` on configs/edgegw.yaml as the package
// installs it, with its bridge uncommented as the file says to, and only
// what a test must change: runtime paths into a temp dir, the listeners,
// metrics and upstream on free loopback ports, the site PKI's files, and
// the telemetry route's topic (sensors/# instead of the example building/#).
func startPackagedGW(b *testing.B, up *gatewaytest.Upstream, bin, clientID string) *bridgeGW {
	raw, err := os.ReadFile(filepath.Join("..", "..", "configs", "edgegw.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	g := &bridgeGW{t: b, bin: bin, dir: b.TempDir(), site: gatewaytest.NewPKI(b, "site"), up: up, log: new(gatewaytest.Buffer)}
	g.addr, g.metrics = gatewaytest.FreeAddr(b), gatewaytest.FreeAddr(b)
	conf := uncommentBridge(b, localizeRuntimePaths(b, string(raw), g.dir))
	for old, repl := range map[string]string{
		`address: ":8883"`:                     fmt.Sprintf("address: %q", g.addr),
		`address: "127.0.0.1:1883"`:            fmt.Sprintf("address: %q", gatewaytest.FreeAddr(b)),
		`address: "127.0.0.1:9641"`:            fmt.Sprintf("address: %q", g.metrics),
		"ca: pki/ca.crt":                       "ca: " + g.site.CAFile,
		"cert: pki/server.crt":                 "cert: " + g.site.ServerCert,
		"key: pki/server.key":                  "key: " + g.site.ServerKey,
		"crl: pki/crl.pem":                     "crl: " + g.site.CRLFile,
		`url: "mqtts://upstream.example:8883"`: fmt.Sprintf("url: \"mqtts://%s\"", up.Addr),
		`server_name: ""`:                      "server_name: localhost",
		"ca: pki/upstream-ca.pem":              "ca: " + up.PKI.CAFile,
		"cert: pki/gateway.crt":                "cert: " + up.Gateway.CertFile,
		`topic: "building/#"`:                  `topic: "sensors/#"`,
		"client_id: plant-7-gw ":               "client_id: " + clientID + " ",
	} {
		if strings.Count(conf, old) != 1 {
			b.Fatalf("configs/edgegw.yaml: %q appears %d times; want once (update startPackagedGW)", old, strings.Count(conf, old))
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	if os.Getenv("EDGEGW_BENCH_PAHO_PLAIN") != "" { // to tell encryption's share of the cost
		enc := fmt.Sprintf("encryption_key: %q", "file:"+filepath.Join(g.dir, "state", "queue.key"))
		if strings.Count(conf, enc) != 1 {
			b.Fatalf("configs/edgegw.yaml: no %s line (update startPackagedGW)", enc)
		}
		conf = strings.Replace(conf, enc, `encryption_key: ""`, 1)
	}
	keyPEM, err := os.ReadFile(up.Gateway.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	gatewaytest.WriteFile(b, filepath.Join(g.dir, "state", "gateway.key"), keyPEM, 0o600) // key: auto
	g.conf = filepath.Join(g.dir, "edgegw.yaml")
	gatewaytest.WriteFile(b, g.conf, []byte(conf), 0o644)
	gatewaytest.WriteSiteFiles(b, g.dir, benchRegistry, map[string]string{"sensor": benchSensorPolicy, "monitor": benchMonitorPolicy})
	b.Cleanup(func() {
		g.stop()
		if b.Failed() {
			b.Logf("edgegw log (last 6 KiB):\n%s", gatewaytest.LastBytes([]byte(g.log.String()), 6144))
		}
	})
	g.start()
	return g
}

// pahoOnce publishes per messages from each of pubs paho sensors through e
// and waits for them upstream.
func pahoOnce(b *testing.B, e benchEdge, cloud *benchSub, rm, pubs, per, round int) pahoRun {
	prefix := fmt.Sprintf("%s-paho-rm%d-p%d-r%d", e.name(), rm, pubs, round)
	cloud.reset(prefix)
	want := pubs * per
	fsyncs := func() (n, secs float64) {
		eg, ok := e.(edgegwEdge)
		if !ok {
			return 0, 0
		}
		m := scrape(b, eg.g.metrics)
		return sample(m, "edgegw_store_fsync_duration_seconds_count"), sample(m, "edgegw_store_fsync_duration_seconds_sum")
	}
	if dir := os.Getenv("EDGEGW_BENCH_PERF"); dir != "" && e.name() == "edgegw" && round == 0 {
		defer perfRecord(b, e.pid(), filepath.Join(dir, fmt.Sprintf("edgegw-rm%d-p%d.data", rm, pubs)))()
	}
	var stat func() (ctxsw, futex float64)
	if os.Getenv("EDGEGW_BENCH_PERFSTAT") == "1" {
		stat = perfStat(b, e.pid())
	}
	resetPeakRSS(e.pid())
	u0 := readUsage(e.pid())
	s0, sum0 := fsyncs()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for i := range pubs {
		sensor := fmt.Sprintf("sensor-%02d", i)
		tc := e.site().ClientTLS(e.cert(b, sensor))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pahoPublish(e.addr(), tc, sensor, "sensors/"+sensor+"/t", prefix, per)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatalf("%s: %v", e.name(), err)
		}
	}
	n, last := cloud.wait(want, 15*time.Second)
	u1 := readUsage(e.pid())
	s1, sum1 := fsyncs()
	d := last.Sub(start)
	r := pahoRun{rate: float64(n) / d.Seconds(), lost: want - n, duration: d, peakRSS: u1.peakRSS}
	n1 := max(n, 1)
	r.cpu = (u1.cpu - u0.cpu) / time.Duration(n1)
	r.written = (u1.written - u0.written) / int64(n1)
	if s1 > s0 {
		r.syncs = (s1 - s0) / d.Seconds()
		r.perSync = float64(n) / (s1 - s0)
		r.syncTook = time.Duration((sum1 - sum0) / (s1 - s0) * 1e9)
	}
	benchLog(e.name(), "paho rmax %d, %2d publisher(s), round %d: %d of %d upstream in %v: %.0f msg/s, lost %d; edge CPU %.1f µs/msg, wrote %d B/msg, peak RSS %.1f MiB, %.0f fdatasyncs/s, %.1f msgs/fdatasync, mean fdatasync %v",
		rm, pubs, round+1, n, want, d.Round(time.Millisecond), r.rate, r.lost, float64(r.cpu)/1e3, r.written, float64(r.peakRSS)/(1<<20), r.syncs, r.perSync, r.syncTook.Round(time.Microsecond))
	if stat != nil {
		cs, fx := stat()
		benchLog(e.name(), "paho rmax %d, %2d publisher(s), round %d: %.3f context switches/msg, %.3f futex calls/msg (perf stat, every thread)", rm, pubs, round+1, cs/float64(n1), fx/float64(n1))
	}
	if r.lost > 0 {
		b.Errorf("%s: %d of %d PUBACKed messages never reached the upstream", e.name(), r.lost, want)
	}
	return r
}

// pahoPublish connects one paho.mqtt.golang MQTT 3.1.1 client and publishes
// n QoS 1 messages of pahoPayload bytes ("<prefix> <sensor> <seq> 0" and
// spaces), with at most pahoWindow unacknowledged; it returns when every one
// is acknowledged.
func pahoPublish(addr string, tc *tls.Config, sensor, topic, prefix string, n int) error {
	o := mqtt.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(sensor).SetTLSConfig(tc).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fmt.Errorf("paho %s: connect to %s: %v", sensor, addr, tok.Error())
	}
	defer c.Disconnect(250)
	window := make(chan mqtt.Token, pahoWindow-1) // + the one being waited for
	acked := make(chan error, 1)
	go func() {
		var first error
		for tok := range window {
			if !tok.WaitTimeout(time.Minute) {
				first = cmp.Or(first, fmt.Errorf("paho %s: no PUBACK within a minute", sensor))
			} else if err := tok.Error(); err != nil {
				first = cmp.Or(first, fmt.Errorf("paho %s: %v", sensor, err))
			}
		}
		acked <- first
	}()
	pad := strings.Repeat(" ", pahoPayload)
	random := os.Getenv("EDGEGW_BENCH_PAHO_PAYLOAD") == "random"
	for seq := range n {
		p := fmt.Appendf(nil, "%s %s %d 0", prefix, sensor, seq)
		for random && len(p) < pahoPayload {
			// No byte the subscriber's strings.Fields could split on (an
			// ASCII space, or the lead byte of a Unicode one).
			if c := byte(rand.Uint32()); c > ' ' && c != 0x85 && c != 0xa0 && c != 0xc2 && (c < 0xe1 || c > 0xe3) {
				p = append(p, c)
			}
		}
		if len(p) < pahoPayload {
			p = append(p, pad[:pahoPayload-len(p)]...)
		}
		window <- c.Publish(topic, 1, false, p)
	}
	close(window)
	return <-acked
}

// perfStat counts pid's context switches and futex calls (every thread,
// the kernel's io-wq workers included) until the returned function is called
// (EDGEGW_BENCH_PERFSTAT=1).
func perfStat(b *testing.B, pid int) func() (ctxsw, futex float64) {
	var out strings.Builder
	cmd := exec.Command(gatewaytest.Need(b, "perf", "linux-perf"), "stat", "-x,", "-e", "context-switches,syscalls:sys_enter_futex", "-p", strconv.Itoa(pid))
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf stat: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // attached
	return func() (ctxsw, futex float64) {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		for _, l := range strings.Split(out.String(), "\n") {
			f := strings.Split(l, ",")
			if len(f) < 3 {
				continue
			}
			v, _ := strconv.ParseFloat(f[0], 64)
			switch f[2] {
			case "context-switches":
				ctxsw = v
			case "syscalls:sys_enter_futex":
				futex = v
			}
		}
		return ctxsw, futex
	}
}

// perfRecord samples pid's stacks with perf into out until the returned
// function is called.
func perfRecord(b *testing.B, pid int, out string) func() {
	cmd := exec.Command(gatewaytest.Need(b, "perf", "linux-perf"), "record", "-q", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf record: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // attached
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		benchLog("perf", "wrote %s", out)
	}
}

// idleCPU is each edge's CPU use over one pahoIdle window with nothing
// published, in ms/s, all edges over the same window: the on-CPU time of its
// threads (threadsCPU, nanoseconds), not /proc/PID/stat, whose clock ticks
// (10 ms) over 5 s can only say 0 or 2 ms/s or more. A thread that ends
// within the window takes its time with it (a lower bound; an idle daemon
// starts and ends none). Where schedstat is missing, the ticks.
func idleCPU(edges []benchEdge) []float64 {
	cpu := make([]func(int) time.Duration, len(edges))
	c0 := make([]time.Duration, len(edges))
	for i, e := range edges {
		cpu[i] = threadsCPU
		if cpu[i](e.pid()) < 0 {
			cpu[i] = procCPU
		}
		c0[i] = cpu[i](e.pid())
	}
	time.Sleep(pahoIdle)
	out := make([]float64, len(edges))
	for i, e := range edges {
		out[i] = float64(cpu[i](e.pid())-c0[i]) / float64(time.Millisecond) / pahoIdle.Seconds()
	}
	return out
}

// threadsCPU is the on-CPU time (user and system) of pid's live threads so
// far, from /proc/PID/task/TID/schedstat (first field, ns); -1 when that
// cannot be read.
func threadsCPU(pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task/", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var sum int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + e.Name() + "/schedstat")
		if err != nil {
			continue // ended since the listing
		}
		fs := strings.Fields(string(b))
		if len(fs) < 1 {
			return -1
		}
		v, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return -1
		}
		sum += v
	}
	return time.Duration(sum)
}

// medianPaho is the run with the median delivered rate.
func medianPaho(runs []pahoRun) pahoRun {
	runs = append([]pahoRun(nil), runs...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].rate < runs[j].rate })
	return runs[len(runs)/2]
}
