package main

// BenchmarkEdgegwVsMosquitto (make bench): edgegw against Debian's Mosquitto
// 2.0.11 configured for the same job, measured in one run on this machine
// with the same clients (mosquitto_pub -l, a Go TLS dialer, a paho
// subscriber), the same certificates (ECDSA P-256, mTLS on both sides) and the
// same upstream (Debian mosquitto with require_certificate, an ACL for
// sites/plant-7/#, persistence).
//
//	Mosquitto edge: persistence true, max_queued_messages 0 (no queue limit,
//	so it does not drop), max_inflight_messages 1000 (edgegw's window is
//	the same 1,000: its default 1,024 lowered to the upstream's Receive
//	Maximum), a bridge with its own certificate, topic sensors/# out 1 ""
//	sites/plant-7/, cleansession false, restart_timeout 1.
//
// Not the same promise: edgegw answers a sensor's PUBACK only after the
// message is fsynced in its queue; Mosquitto acknowledges from RAM (its
// persistence file is written at shutdown or every autosave_interval), so a
// kill -9 or power loss loses its backlog.
//
// Each measurement runs once (b.N is not used); results are printed as a
// table with edgegw/Mosquitto ratios and reported with b.ReportMetric.

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// Policies of the bench site: sensors publish their telemetry (bridged) and
// local topics (not bridged); the monitor subscribes to local/#.
const benchRegistry = `version: 1
default: {policies: []}
things:
  - {name: monitor, policies: [monitor]}
groups:
  - {name: sensors, match: {name: "sensor-*"}, policies: [sensor]}
`

const benchSensorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": ["topic/sensors/${iot:Connection.Thing.ThingName}/*", "topic/local/${iot:Connection.Thing.ThingName}/*"]}
]}`

const benchMonitorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/monitor"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/local/#"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/local/*"}
]}`

// benchEdge is the system under test: edgegw or the Mosquitto edge bridge.
type benchEdge interface {
	name() string
	addr() string
	site() *gatewaytest.PKI
	cert(b *testing.B, sensor string) *gatewaytest.Client
	pid() int // the edge's process, 0 for none
	stop()
}

// edgegwEdge is a running `edgegw run`; label names it in the tables
// ("edgegw" when empty; the paho harness's EDGEGW_BENCH_BASELINE build is
// "edgegw-base").
type edgegwEdge struct {
	g     *bridgeGW
	label string
}

func (e edgegwEdge) name() string           { return cmp.Or(e.label, "edgegw") }
func (e edgegwEdge) addr() string           { return e.g.addr }
func (e edgegwEdge) site() *gatewaytest.PKI { return e.g.site }
func (e edgegwEdge) stop()                  { e.g.stop() }
func (e edgegwEdge) pid() int               { return e.g.cmd.Process.Pid }
func (e edgegwEdge) cert(b *testing.B, sensor string) *gatewaytest.Client {
	return e.g.site.Issue(b, sensor)
}

type mosqEdge struct {
	pki    *gatewaytest.PKI
	a      string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (e *mosqEdge) name() string           { return "mosquitto" }
func (e *mosqEdge) addr() string           { return e.a }
func (e *mosqEdge) site() *gatewaytest.PKI { return e.pki }
func (e *mosqEdge) pid() int               { return e.cmd.Process.Pid }
func (e *mosqEdge) cert(b *testing.B, sensor string) *gatewaytest.Client {
	return e.pki.Issue(b, sensor)
}
func (e *mosqEdge) stop() {
	if e.cmd == nil {
		return
	}
	gatewaytest.Terminate(e.cmd.Process, e.exited, 15*time.Second)
	e.cmd = nil
}

// noEdge is the harness alone: the same publishers straight to the upstream
// (under the gateway's certificate, which the upstream's ACL lets write
// sites/plant-7/#) and the same counter. The clients, the upstream and the
// counter share this machine's two cores with the edge under test; noEdge
// shows what they reach with nothing in between. It is not a strict
// ceiling: without an edge the single-threaded upstream serves 16 TLS
// publishers itself, and an edge that merges them into one connection with
// large writes can save it more than the edge costs.
type noEdge struct{ up *gatewaytest.Upstream }

func (e noEdge) name() string                                { return "no-edge" }
func (e noEdge) addr() string                                { return e.up.Addr }
func (e noEdge) site() *gatewaytest.PKI                      { return e.up.PKI }
func (e noEdge) cert(*testing.B, string) *gatewaytest.Client { return e.up.Gateway }
func (e noEdge) stop()                                       {}
func (e noEdge) pid() int                                    { return 0 }

// startMosqEdge starts Mosquitto as an edge bridge to up, with the same site
// PKI as the edgegw it is compared with, max_inflight_messages inflight
// (its publishers' and its bridge's window) and extra appended to the
// bridge's connection section.
func startMosqEdge(b *testing.B, site *gatewaytest.PKI, up *gatewaytest.Upstream, inflight int, extra string) *mosqEdge {
	e := &mosqEdge{pki: site, a: gatewaytest.FreeAddr(b)}
	dir := b.TempDir()
	_, port, _ := net.SplitHostPort(e.a)
	var c strings.Builder
	fmt.Fprintf(&c, "per_listener_settings false\nlistener %s 127.0.0.1\n", port)
	fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", site.CAFile, site.ServerCert, site.ServerKey)
	c.WriteString("require_certificate true\nuse_identity_as_username true\nallow_anonymous false\ntls_version tlsv1.2\n")
	fmt.Fprintf(&c, "persistence true\npersistence_location %s/\n", dir)
	fmt.Fprintf(&c, "max_queued_messages 0\nmax_inflight_messages %d\n", inflight)
	fmt.Fprintf(&c, "log_dest file %s/mosquitto.log\nlog_type error\nlog_type warning\n", dir)
	if os.Geteuid() == 0 {
		c.WriteString("user root\n")
	}
	fmt.Fprintf(&c, "connection upstream\naddress %s\nremote_clientid plant-7-gw-mosquitto\n", up.Addr)
	fmt.Fprintf(&c, "bridge_cafile %s\nbridge_certfile %s\nbridge_keyfile %s\n", up.PKI.CAFile, up.Gateway.CertFile, up.Gateway.KeyFile)
	c.WriteString("topic sensors/# out 1 \"\" sites/plant-7/\ncleansession false\nrestart_timeout 1\n" + extra)
	conf := filepath.Join(dir, "mosquitto.conf")
	gatewaytest.WriteFile(b, conf, []byte(c.String()), 0o600)
	e.cmd = exec.Command(gatewaytest.Need(b, "mosquitto", "mosquitto"), "-c", conf)
	if err := e.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	e.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { _ = cmd.Wait(); close(ch) }(e.cmd, e.exited)
	b.Cleanup(e.stop)
	gatewaytest.WaitListening(b, e.a, 10*time.Second)
	return e
}

// benchSub counts, on the upstream or an edge, the distinct messages whose
// payload starts with the active prefix; payloads are
// "<prefix> <sensor> <seq> <sent unix nanos>".
type benchSub struct {
	mu      sync.Mutex
	prefix  string
	seen    map[string]bool
	total   int
	first   time.Time // arrival of the first distinct message since reset
	last    time.Time
	latency []time.Duration
}

func (s *benchSub) reset(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefix, s.seen, s.total, s.latency, s.first = prefix+" ", map[string]bool{}, 0, nil, time.Time{}
}

func (s *benchSub) record(p []byte) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prefix == "" || !strings.HasPrefix(string(p), s.prefix) {
		return
	}
	s.total++
	f := strings.Fields(string(p))
	if len(f) != 4 {
		return
	}
	key := f[1] + " " + f[2]
	if s.seen[key] {
		return
	}
	s.seen[key] = true
	if len(s.seen) == 1 {
		s.first = now
	}
	s.last = now
	if ns, err := strconv.ParseInt(f[3], 10, 64); err == nil && ns > 0 {
		s.latency = append(s.latency, now.Sub(time.Unix(0, ns)))
	}
}

func (s *benchSub) count() (distinct int, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen), s.last
}

// wait waits for want distinct messages; it gives up after stall without
// progress. It returns the arrival time of the last new message.
func (s *benchSub) wait(want int, stall time.Duration) (int, time.Time) {
	prev, at := -1, time.Now()
	for {
		n, last := s.count()
		if n >= want {
			return n, last
		}
		if n != prev {
			prev, at = n, time.Now()
		}
		if time.Since(at) > stall {
			return n, last
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connect311 is an MQTT 3.1.1 CONNECT for id with the given connect flags
// (0x02: clean session) and keepalive in seconds (0: off).
func connect311(id string, flags byte, keepalive uint16) []byte {
	p := []byte{0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, flags, byte(keepalive >> 8), byte(keepalive), byte(len(id) >> 8), byte(len(id))}
	p = append(p, id...)
	p[1] = byte(len(p) - 2)
	return p
}

// subscribe connects a paho subscriber (persistent session through
// outages) to addr and feeds s.
func (s *benchSub) subscribe(b testing.TB, addr string, tc *tls.Config, id, filter string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done })
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := s.session(ctx, addr, tc, id, filter, func() { once.Do(func() { close(ready) }) }); err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		b.Fatalf("subscriber %s on %s not connected within 15s", id, addr)
	}
}

// session is one connection of the counting subscriber: a lean MQTT 3.1.1
// client (persistent session, QoS 1) that reads through a buffer and answers
// PUBACKs in batches, flushed whenever no more input is buffered. The
// harness's own cost per message then stays small beside either edge's, so
// the measurement is of the edge, not of the counter.
func (s *benchSub) session(ctx context.Context, addr string, tc *tls.Config, id, filter string, ok func()) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReaderSize(conn, 256<<10)
	w := bufio.NewWriterSize(conn, 64<<10)
	connect := connect311(id, 0x00, 0) // persistent session, keepalive off
	sub := []byte{0x82, 0, 0, 1, byte(len(filter) >> 8), byte(len(filter))}
	sub = append(append(sub, filter...), 1)
	sub[1] = byte(len(sub) - 2)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.Write(append(connect, sub...)); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	subscribed := false
	var buf []byte
	for {
		if r.Buffered() == 0 && w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		head, err := r.ReadByte()
		if err != nil {
			return err
		}
		n, mult := 0, 1
		for i := 0; ; i++ {
			c, err := r.ReadByte()
			if err != nil {
				return err
			}
			n += int(c&0x7f) * mult
			if c&0x80 == 0 {
				break
			}
			if mult *= 128; i == 3 {
				return fmt.Errorf("bad remaining length")
			}
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		body := buf[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		switch head >> 4 {
		case 2: // CONNACK
			if n < 2 || body[1] != 0 {
				return fmt.Errorf("CONNACK % x", body)
			}
		case 9: // SUBACK
			if n < 3 || body[2] > 2 {
				return fmt.Errorf("SUBACK % x", body)
			}
			if !subscribed {
				subscribed = true
				_ = conn.SetDeadline(time.Time{})
				ok()
			}
		case 3: // PUBLISH
			if n < 2 {
				return fmt.Errorf("short PUBLISH")
			}
			at := 2 + int(body[0])<<8 | int(body[1])
			qos := head >> 1 & 3
			if qos > 0 {
				if at+2 > n {
					return fmt.Errorf("short PUBLISH")
				}
				_, _ = w.Write([]byte{0x40, 2, body[at], body[at+1]})
				at += 2
			}
			if at > n {
				return fmt.Errorf("short PUBLISH")
			}
			s.record(body[at:])
		}
	}
}

// pubLines runs mosquitto_pub -l (QoS qos, up to 1000 in flight) as sensor
// on edge e; lines come from gen, which may pace them. Exit 0 means every
// QoS 1 message was acknowledged by the edge.
func pubLines(b *testing.B, e benchEdge, sensor, topic string, qos int, gen func(w io.Writer) error) error {
	c := e.cert(b, sensor)
	args := append(e.site().MosqTLSArgs(e.addr(), c), "-V", "mqttv311", "-i", sensor, "-q", strconv.Itoa(qos),
		"-t", topic, "-l", "-M", "1000")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Need(b, "mosquitto_pub", "mosquitto-clients"), args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	runWaits.follow(cmd.Process.Pid)
	w := bufio.NewWriterSize(in, 64<<10)
	gerr := gen(w)
	if err := w.Flush(); gerr == nil {
		gerr = err
	}
	in.Close()
	err = cmd.Wait()
	pubWait.Add(int64(runWaits.stop(cmd.Process.Pid)))
	if ps := cmd.ProcessState; ps != nil {
		pubCPU.Add(int64(ps.UserTime() + ps.SystemTime()))
	}
	if err != nil || out.Len() > 0 {
		return fmt.Errorf("mosquitto_pub %s: %v %s", sensor, err, out.String())
	}
	return gerr
}

// pubCPU is the CPU time (ns) of every mosquitto_pub that has exited.
var pubCPU atomic.Int64

// pubWait is the time (ns) the threads of every mosquitto_pub that has
// exited spent runnable but waiting for a CPU (as runWaits saw it).
var pubWait atomic.Int64

// runWaits follows the run-queue wait of the running publishers' threads
// (Linux /proc/<pid>/task/<tid>/schedstat, second field, ns): one goroutine
// samples every followed process every 50 ms while there are any, so the
// harness pays one wake-up per 50 ms however many publishers run. What a
// thread waited in its last 50 ms is missed: a lower bound. Where schedstat
// is not available it reads 0.
var runWaits = &waitSampler{procs: map[int]*procWait{}}

type waitSampler struct {
	mu      sync.Mutex
	procs   map[int]*procWait
	running bool
}

type procWait struct {
	dir   string
	tasks []string         // re-listed every tenth sample
	last  map[string]int64 // tid -> run-queue wait, ns
	n     int
}

// follow starts sampling pid.
func (w *waitSampler) follow(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.procs[pid] = &procWait{dir: fmt.Sprintf("/proc/%d/task/", pid), last: map[string]int64{}}
	if !w.running {
		w.running = true
		go w.run()
	}
}

// stop ends sampling pid and returns its threads' run-queue wait.
func (w *waitSampler) stop(pid int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.procs[pid]
	delete(w.procs, pid)
	var sum int64
	if p != nil {
		for _, v := range p.last {
			sum += v
		}
	}
	return time.Duration(sum)
}

func (w *waitSampler) run() {
	buf := make([]byte, 128)
	for {
		w.mu.Lock()
		if len(w.procs) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		for _, p := range w.procs {
			p.sample(buf)
		}
		w.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *procWait) sample(buf []byte) {
	if p.n%10 == 0 {
		if ents, err := os.ReadDir(p.dir); err == nil {
			p.tasks = p.tasks[:0]
			for _, e := range ents {
				p.tasks = append(p.tasks, e.Name())
			}
		}
	}
	p.n++
	for _, t := range p.tasks {
		f, err := os.Open(p.dir + t + "/schedstat")
		if err != nil {
			continue
		}
		k, _ := f.Read(buf)
		f.Close()
		if fs := strings.Fields(string(buf[:k])); len(fs) >= 2 {
			if v, err := strconv.ParseInt(fs[1], 10, 64); err == nil {
				p.last[t] = v
			}
		}
	}
}

// procCPU is the CPU time (user + system) process pid has used so far, from
// /proc/<pid>/stat in clock ticks (100 Hz on Linux).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(st), ')')
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+stime) * 10 * time.Millisecond
}

// procUsage is what the harness reads of an edge's process in /proc: its
// CPU time (procCPU), the bytes it caused to be written to storage (io,
// write_bytes: page-cache writeback and O_DIRECT alike, counted when
// dirtied) and its peak RSS since the last resetPeakRSS (status, VmHWM).
// Every field is 0 when pid is 0 or /proc does not say.
type procUsage struct {
	cpu     time.Duration
	written int64 // bytes
	peakRSS int64 // bytes
}

func readUsage(pid int) procUsage {
	if pid == 0 {
		return procUsage{}
	}
	u := procUsage{cpu: procCPU(pid)}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		u.written = procField(string(io), "write_bytes:")
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		u.peakRSS = procField(string(st), "VmHWM:") << 10 // kB
	}
	return u
}

// procField is the number after name on its line in a /proc file.
func procField(file, name string) int64 {
	for _, l := range strings.Split(file, "\n") {
		if v, ok := strings.CutPrefix(l, name); ok {
			n, _ := strconv.ParseInt(strings.Fields(v + " 0")[0], 10, 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS sets pid's VmHWM back to its current RSS (Linux: "5" to
// /proc/PID/clear_refs, allowed for our own children), so that the next
// readUsage gives the peak of what ran in between.
func resetPeakRSS(pid int) {
	if pid != 0 {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuShare is the CPU time per delivered message of each process of an e2e
// run: the edge, the upstream Mosquitto, the sensors' mosquitto_pub and this
// test process (the counting subscriber and the line generators).
type cpuShare struct {
	edge, upstream, pubs, counter time.Duration
	pubWait                       time.Duration // the publishers runnable, waiting for a CPU (not CPU time)
}

func (c cpuShare) total() time.Duration { return c.edge + c.upstream + c.pubs + c.counter }

// publishN publishes per messages from each of pubs sensors, unpaced.
func publishN(b *testing.B, e benchEdge, prefix, topicRoot string, pubs, per, qos int) error {
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for i := range pubs {
		sensor := fmt.Sprintf("sensor-%02d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pubLines(b, e, sensor, topicRoot+"/"+sensor+"/t", qos, func(w io.Writer) error {
				for seq := range per {
					if _, err := fmt.Fprintf(w, "%s %s %d 0\n", prefix, sensor, seq); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

type benchResult struct {
	tp1, tp16            float64  // e2e msg/s
	cpu1, cpu16          cpuShare // CPU per message of the median e2e runs
	p50, p99             time.Duration
	drain                time.Duration
	drainIntake          float64 // msg/s accepted while the upstream was down
	lost                 int
	connects             float64
	localQoS0, localQoS1 float64
	localQoS0Lost        int
}

const (
	benchTP1      = 30000
	benchTP16Per  = 3000
	benchLatN     = 5000 // at 1,000 msg/s
	benchBacklog  = 100000
	benchLocalN0  = 50000
	benchLocalN1  = 20000
	benchConnSecs = 3
)

func BenchmarkEdgegwVsMosquitto(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once")
	}
	up := gatewaytest.NewUpstream(b, cmdUpstream)
	cloud := new(benchSub)
	cloud.subscribe(b, up.Addr, up.PKI.ClientTLS(up.Cloud), "cloud-bench", "sites/#")

	g := newBridgeGW(b, up, gwOptions{inflight: -1, routes: `
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}`})
	gatewaytest.WriteSiteFiles(b, g.dir, benchRegistry, map[string]string{"sensor": benchSensorPolicy, "monitor": benchMonitorPolicy})
	g.stop() // restart on the bench registry and policies
	g.start()
	m := startMosqEdge(b, g.site, up, 1000, "")
	fwd := startFwdEdge(b, g.site, up)
	eg, mq, ceil, fw := &benchResult{}, &benchResult{}, &benchResult{}, &benchResult{}
	edges := []struct {
		e         benchEdge
		r         *benchResult
		topicRoot string
	}{{edgegwEdge{g: g}, eg, "sensors"}, {m, mq, "sensors"}, {noEdge{up}, ceil, "sites/plant-7/sensors"}, {fwd, fw, "sensors"}}
	for _, x := range []benchEdge{edgegwEdge{g: g}, m, fwd} {
		warmUp(b, x, cloud)
	}

	// End-to-end throughput: both edges run side by side (the idle one
	// costs nothing), and each measurement is the median of benchRounds
	// runs interleaved with the other edge's, the harness's alone and the
	// forwarding ceiling's (startFwdEdge), the order rotating every round:
	// this machine is shared and a burst of someone else's load then falls
	// on all four, not on one.
	for _, tc := range []struct {
		pubs, per int
		tp        func(*benchResult) *float64
		cpu       func(*benchResult) *cpuShare
	}{
		{1, benchTP1, func(r *benchResult) *float64 { return &r.tp1 }, func(r *benchResult) *cpuShare { return &r.cpu1 }},
		{16, benchTP16Per, func(r *benchResult) *float64 { return &r.tp16 }, func(r *benchResult) *cpuShare { return &r.cpu16 }},
	} {
		runs := make([][]e2eRun, len(edges))
		for round := range benchRounds {
			for k := range edges {
				i := (k + round) % len(edges)
				x := edges[i]
				tp, lost, cpu := e2eOnce(b, x.e, up, cloud, x.topicRoot, tc.pubs, tc.per, round)
				runs[i] = append(runs[i], e2eRun{tp, cpu})
				x.r.lost += lost
			}
		}
		for i, x := range edges {
			m := medianRun(runs[i])
			*tc.tp(x.r), *tc.cpu(x.r) = m.tp, m.cpu
		}
	}

	fwd.stop()

	// What the publishers can do at all: against an edge that only
	// acknowledges (no upstream, no counter, nothing stored).
	pubCeil1, pubCeil16 := publisherCeiling(b, g.site)

	runEdgeBench(b, edgegwEdge{g: g}, eg, up, cloud)
	g.stop()
	runEdgeBench(b, m, mq, up, cloud)
	m.stop()
	// The same latency run with no edge: what the publisher, the upstream
	// and the counter add by themselves.
	var lost int
	ceil.p50, ceil.p99, lost = latencyAt1k(b, noEdge{up}, cloud, "sites/plant-7/sensors")
	ceil.lost += lost
	benchLog("no edge", "latency at 1,000 msg/s: %d msgs, p50 %v p99 %v, lost %d", benchLatN, ceil.p50.Round(10*time.Microsecond), ceil.p99.Round(10*time.Microsecond), lost)
	printBench(b, eg, mq, ceil, fw, pubCeil1, pubCeil16)
}

// benchRounds is how many interleaved runs each e2e throughput figure is the
// median of.
const benchRounds = 3

type e2eRun struct {
	tp  float64
	cpu cpuShare
}

// medianRun is the run with the median throughput.
func medianRun(runs []e2eRun) e2eRun {
	runs = append([]e2eRun(nil), runs...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].tp < runs[j].tp })
	return runs[len(runs)/2]
}

func benchLog(name, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "  %-9s "+format+"\n", append([]any{name}, a...)...)
}

// warmUp publishes single messages through e until one arrives upstream.
func warmUp(b *testing.B, e benchEdge, cloud *benchSub) {
	cloud.reset(e.name() + "-warm")
	for i := 0; ; i++ {
		if err := publishN(b, e, e.name()+"-warm", "sensors", 1, 1, 1); err != nil {
			b.Fatal(err)
		}
		if n, _ := cloud.wait(1, 2*time.Second); n == 1 {
			return
		}
		if i == 10 {
			b.Fatalf("%s: bridge delivers nothing upstream", e.name())
		}
	}
}

// latencyAt1k publishes benchLatN QoS 1 messages through e from one
// publisher, one per millisecond, each stamped with its send time, and
// returns the p50 and p99 of their arrival upstream and how many never came.
func latencyAt1k(b *testing.B, e benchEdge, cloud *benchSub, topicRoot string) (p50, p99 time.Duration, lost int) {
	prefix := e.name() + "-lat"
	cloud.reset(prefix)
	err := pubLines(b, e, "sensor-00", topicRoot+"/sensor-00/t", 1, func(w io.Writer) error {
		fl := w.(interface{ Flush() error })
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for seq := range benchLatN {
			<-t.C
			if _, err := fmt.Fprintf(w, "%s sensor-00 %d %d\n", prefix, seq, time.Now().UnixNano()); err != nil {
				return err
			}
			if err := fl.Flush(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	n, _ := cloud.wait(benchLatN, 15*time.Second)
	cloud.mu.Lock()
	lat := append([]time.Duration(nil), cloud.latency...)
	cloud.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return p50, p99, benchLatN - n
}

// e2eOnce publishes per QoS 1 messages from each of pubs publishers through
// e, unpaced, and counts the distinct messages arriving upstream: msg/s from
// the first publisher's start to the last arrival, and how many never came.
func e2eOnce(b *testing.B, e benchEdge, up *gatewaytest.Upstream, cloud *benchSub, topicRoot string, pubs, per, round int) (float64, int, cpuShare) {
	prefix := fmt.Sprintf("%s-tp%d-r%d", e.name(), pubs, round)
	cloud.reset(prefix)
	want := pubs * per
	resetPeakRSS(e.pid())
	edge0, up0, pub0, self0, wait0 := readUsage(e.pid()), procCPU(up.PID()), pubCPU.Load(), selfCPU(), pubWait.Load()
	start := time.Now()
	if err := publishN(b, e, prefix, topicRoot, pubs, per, 1); err != nil {
		b.Fatal(err)
	}
	acked := time.Since(start)
	n, last := cloud.wait(want, 15*time.Second)
	tp := float64(n) / last.Sub(start).Seconds()
	per1 := func(d time.Duration) time.Duration { return d / time.Duration(max(n, 1)) }
	edge1 := readUsage(e.pid())
	cpu := cpuShare{edge: per1(edge1.cpu - edge0.cpu), upstream: per1(procCPU(up.PID()) - up0),
		pubs: per1(time.Duration(pubCPU.Load() - pub0)), counter: per1(selfCPU() - self0), pubWait: per1(time.Duration(pubWait.Load() - wait0))}
	benchLog(e.name(), "e2e %2d publisher(s), round %d: %d msgs, all acked after %v, %d upstream after %v: %.0f msg/s, lost %d; CPU per message: edge %v, upstream %v, publishers %v, counter %v; publishers waiting for a CPU %v; edge wrote %d B/msg to storage, peak RSS %.1f MiB",
		pubs, round+1, want, acked.Round(time.Millisecond), n, last.Sub(start).Round(time.Millisecond), tp, want-n,
		cpu.edge.Round(100*time.Nanosecond), cpu.upstream.Round(100*time.Nanosecond), cpu.pubs.Round(100*time.Nanosecond), cpu.counter.Round(100*time.Nanosecond), cpu.pubWait.Round(100*time.Nanosecond),
		(edge1.written-edge0.written)/int64(max(n, 1)), float64(edge1.peakRSS)/(1<<20))
	return tp, want - n, cpu
}

// runEdgeBench measures on e what is not e2e throughput: latency, the
// backlog and its drain, connects, and local publish -> subscribe.
func runEdgeBench(b *testing.B, e benchEdge, r *benchResult, up *gatewaytest.Upstream, cloud *benchSub) {
	name := e.name()
	logf := func(format string, a ...any) { benchLog(name, format, a...) }

	// Latency at 1,000 msg/s.
	var lost int
	r.p50, r.p99, lost = latencyAt1k(b, e, cloud, "sensors")
	r.lost += lost
	logf("latency at 1,000 msg/s: %d msgs, p50 %v p99 %v, lost %d", benchLatN, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), lost)

	// Drain of a 100,000-message backlog built while the upstream is down.
	prefix := name + "-drain"
	cloud.reset(prefix)
	up.Stop()
	start := time.Now()
	if err := publishN(b, e, prefix, "sensors", 16, benchBacklog/16, 1); err != nil {
		b.Fatal(err)
	}
	r.drainIntake = benchBacklog / time.Since(start).Seconds()
	upAt := time.Now()
	up.Start()
	n, last := cloud.wait(benchBacklog, 30*time.Second)
	r.drain = last.Sub(upAt)
	r.lost += benchBacklog - n
	logf("backlog: %d acked with the upstream down (%.0f msg/s), drained in %v after it came back, lost %d",
		benchBacklog, r.drainIntake, r.drain.Round(time.Millisecond), benchBacklog-n)

	// Local (no bridge): mTLS connects/s and publish -> subscribe throughput.
	r.connects = benchConnects(b, e)
	logf("mTLS connects (ECDSA P-256, CONNECT/CONNACK): %.0f /s", r.connects)
	local := new(benchSub)
	mon := e.site().Issue(b, "monitor")
	local.subscribe(b, e.addr(), e.site().ClientTLS(mon), "monitor", "local/#")
	for _, tc := range []struct {
		qos, n int
		out    *float64
	}{{0, benchLocalN0, &r.localQoS0}, {1, benchLocalN1, &r.localQoS1}} {
		prefix := fmt.Sprintf("%s-local%d", name, tc.qos)
		local.reset(prefix)
		start := time.Now()
		if err := publishN(b, e, prefix, "local", 1, tc.n, tc.qos); err != nil {
			b.Fatal(err)
		}
		n, last := local.wait(tc.n, 3*time.Second)
		*tc.out = float64(n) / last.Sub(start).Seconds()
		if tc.qos == 0 {
			r.localQoS0Lost = tc.n - n
		} else {
			r.lost += tc.n - n
		}
		logf("local QoS %d, 1 publisher -> 1 subscriber: %d of %d in %v: %.0f msg/s", tc.qos, n, tc.n, last.Sub(start).Round(time.Millisecond), *tc.out)
	}
}

// benchConnects: 8 dialers doing TLS 1.2+ mutual handshakes (no session
// resumption) + MQTT 3.1.1 CONNECT/CONNACK + DISCONNECT for benchConnSecs.
func benchConnects(b *testing.B, e benchEdge) float64 {
	const dialers = 8
	var ok, failed atomic.Int64
	var first atomic.Value
	deadline := time.Now().Add(benchConnSecs * time.Second)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range dialers {
		sensor := fmt.Sprintf("sensor-%02d", 40+i)
		tc := e.site().ClientTLS(e.site().Issue(b, sensor))
		connect := connect311(sensor, 0x02, 30)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := connectOnce(e.addr(), tc, connect); err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Logf("%s: %d connects failed, first: %v", e.name(), f, first.Load())
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

func connectOnce(addr string, tc *tls.Config, connect []byte) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(connect); err != nil {
		return err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("CONNACK % x", ack)
	}
	_, err = c.Write([]byte{0xe0, 0})
	return err
}

func printBench(b *testing.B, eg, mq, ceil, fw *benchResult, pubCeil1, pubCeil16 float64) {
	ratio := func(a, c float64) string {
		if c == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/c)
	}
	dur := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-46s %14s %14s %10s\n", "measurement", "edgegw", "mosquitto", "edgegw/mq")
	row := func(name, a, c, r string) { fmt.Fprintf(&t, "%-46s %14s %14s %10s\n", name, a, c, r) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	row("e2e QoS1 throughput, 1 publisher (msg/s)*", f(eg.tp1), f(mq.tp1), ratio(eg.tp1, mq.tp1))
	row("e2e QoS1 throughput, 16 publishers (msg/s)*", f(eg.tp16), f(mq.tp16), ratio(eg.tp16, mq.tp16))
	row("e2e latency p50 at 1,000 msg/s", dur(eg.p50), dur(mq.p50), ratio(float64(eg.p50), float64(mq.p50)))
	row("e2e latency p99 at 1,000 msg/s", dur(eg.p99), dur(mq.p99), ratio(float64(eg.p99), float64(mq.p99)))
	row("intake with upstream down, 16 pubs (msg/s)", f(eg.drainIntake), f(mq.drainIntake), ratio(eg.drainIntake, mq.drainIntake))
	row("drain of a 100,000-message backlog", dur(eg.drain), dur(mq.drain), ratio(float64(eg.drain), float64(mq.drain)))
	row("QoS1 messages lost (all runs)", strconv.Itoa(eg.lost), strconv.Itoa(mq.lost), "")
	row("mTLS connects/s (ECDSA P-256, 8 dialers)", f(eg.connects), f(mq.connects), ratio(eg.connects, mq.connects))
	row("local QoS0 pub->sub, 1 publisher (msg/s)", f(eg.localQoS0), f(mq.localQoS0), ratio(eg.localQoS0, mq.localQoS0))
	row("local QoS0 not delivered (of 50,000)", strconv.Itoa(eg.localQoS0Lost), strconv.Itoa(mq.localQoS0Lost), "")
	row("local QoS1 pub->sub, 1 publisher (msg/s)", f(eg.localQoS1), f(mq.localQoS1), ratio(eg.localQoS1, mq.localQoS1))
	t.WriteString("edgegw PUBACKs wait for the queue's fsync; Mosquitto's come from RAM (persistence at shutdown/autosave).\n")
	fmt.Fprintf(&t, "* median of %d runs, interleaved with the other edge's and the harness's.\n", benchRounds)
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	fmt.Fprintf(&t, "\nCPU per delivered message in the median e2e run, µs (2 cores = %s µs of CPU per message at the measured rate):\n", "2e6/rate")
	fmt.Fprintf(&t, "%-28s %8s %9s %11s %8s %8s %16s %14s\n", "run", "edge", "upstream", "publishers", "counter", "total", "2e6/rate", "pubs waiting")
	for _, x := range []struct {
		name string
		tp   float64
		c    cpuShare
	}{
		{"edgegw, 1 publisher", eg.tp1, eg.cpu1}, {"mosquitto, 1 publisher", mq.tp1, mq.cpu1}, {"no edge, 1 publisher", ceil.tp1, ceil.cpu1},
		{"forwarding only, 1 publisher", fw.tp1, fw.cpu1},
		{"edgegw, 16 publishers", eg.tp16, eg.cpu16}, {"mosquitto, 16 publishers", mq.tp16, mq.cpu16}, {"no edge, 16 publishers", ceil.tp16, ceil.cpu16},
		{"forwarding only, 16 pubs", fw.tp16, fw.cpu16},
	} {
		fmt.Fprintf(&t, "%-28s %8s %9s %11s %8s %8s %16s %14s\n", x.name, us(x.c.edge), us(x.c.upstream), us(x.c.pubs), us(x.c.counter), us(x.c.total()), us(time.Duration(2e9/max(x.tp, 1))), us(x.c.pubWait))
	}
	t.WriteString("pubs waiting: the publishers' threads runnable but waiting for a CPU (run-queue wait, /proc schedstat), per message; not CPU time.\n")
	t.WriteString("forwarding only: runs in the harness's process, so its CPU is in the counter column.\n")
	fmt.Fprintf(&t, "harness alone (the same publishers straight to the upstream, no edge)*: 1 publisher %s msg/s (%s Mosquitto's e2e), 16 publishers %s msg/s (%s); latency at 1,000 msg/s p50 %s p99 %s\n",
		f(ceil.tp1), ratio(ceil.tp1, mq.tp1), f(ceil.tp16), ratio(ceil.tp16, mq.tp16), dur(ceil.p50), dur(ceil.p99))
	pct := func(a, c float64) string { return strconv.FormatFloat(100*a/max(c, 1e-9), 'f', 0, 64) + "%" }
	fmt.Fprintf(&t, "publishers' ceiling (the same publishers against an in-process edge that only acknowledges: mTLS + PUBACK every 1 ms, nothing stored or forwarded, no upstream or counter running)*: 1 publisher %s msg/s (2x Mosquitto's e2e would be %s of it, edgegw's e2e is %s), 16 publishers %s msg/s (%s, %s)\n",
		f(pubCeil1), pct(2*mq.tp1, pubCeil1), pct(eg.tp1, pubCeil1), f(pubCeil16), pct(2*mq.tp16, pubCeil16), pct(eg.tp16, pubCeil16))
	fmt.Fprintf(&t, "forwarding ceiling (the same publishers, upstream and counter, with an in-process edge that stores nothing: mTLS + PUBACK every 1 ms, QoS 1 to the upstream in 1 ms writes, window %d)*: 1 publisher %s msg/s (%s Mosquitto's e2e; edgegw's e2e is %s of it), 16 publishers %s msg/s (%s; %s)\n",
		fwdWindow, f(fw.tp1), ratio(fw.tp1, mq.tp1), pct(eg.tp1, fw.tp1), f(fw.tp16), ratio(fw.tp16, mq.tp16), pct(eg.tp16, fw.tp16))
	fmt.Fprint(os.Stderr, t.String())
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{eg.tp1, "edgegw_e2e_1pub_msg/s"}, {mq.tp1, "mosq_e2e_1pub_msg/s"}, {eg.tp1 / max(mq.tp1, 1e-9), "ratio_e2e_1pub"},
		{ceil.tp1, "noedge_e2e_1pub_msg/s"}, {ceil.tp16, "noedge_e2e_16pub_msg/s"},
		{pubCeil1, "ackonly_1pub_msg/s"}, {pubCeil16, "ackonly_16pub_msg/s"},
		{fw.tp1, "fwdonly_e2e_1pub_msg/s"}, {fw.tp16, "fwdonly_e2e_16pub_msg/s"},
		{eg.tp16, "edgegw_e2e_16pub_msg/s"}, {mq.tp16, "mosq_e2e_16pub_msg/s"}, {eg.tp16 / max(mq.tp16, 1e-9), "ratio_e2e_16pub"},
		{float64(eg.p50.Microseconds()), "edgegw_p50_us"}, {float64(mq.p50.Microseconds()), "mosq_p50_us"},
		{float64(eg.p99.Microseconds()), "edgegw_p99_us"}, {float64(mq.p99.Microseconds()), "mosq_p99_us"},
		{float64(ceil.p50.Microseconds()), "noedge_p50_us"}, {float64(ceil.p99.Microseconds()), "noedge_p99_us"},
		{eg.drain.Seconds(), "edgegw_drain100k_s"}, {mq.drain.Seconds(), "mosq_drain100k_s"},
		{float64(eg.lost), "edgegw_lost"}, {float64(mq.lost), "mosq_lost"},
		{eg.connects, "edgegw_connects/s"}, {mq.connects, "mosq_connects/s"}, {eg.connects / max(mq.connects, 1e-9), "ratio_connects"},
		{eg.localQoS0, "edgegw_local_qos0_msg/s"}, {mq.localQoS0, "mosq_local_qos0_msg/s"},
		{eg.localQoS1, "edgegw_local_qos1_msg/s"}, {mq.localQoS1, "mosq_local_qos1_msg/s"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
}
