package main

// The chaos run: devices publish a steady stream through `edgegw run` and its
// bridge to a real upstream (Debian mosquitto, through Proxy) while faults
// are injected at random: SIGKILL and restart of edgegw, stop/start of the
// upstream, a silent upstream path, and a queue filled past its route limit.
// At the end every message that got a PUBACK must have been delivered
// upstream or be counted in the gateway's drop counters.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Fault kinds.
const (
	faultKill      = "kill-gateway"
	faultUpstream  = "restart-upstream"
	faultSilence   = "silent-upstream"
	faultQueueFill = "fill-queue"
)

// FaultRecord is one injected fault.
type FaultRecord struct {
	Kind    string  `json:"kind"`
	At      float64 `json:"at_seconds"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail,omitempty"`
}

// ChaosResult is the chaos run's outcome.
type ChaosResult struct {
	Machine string         `json:"machine"`
	Date    string         `json:"date"`
	Command string         `json:"command"`
	Faults  []FaultRecord  `json:"faults"`
	ByKind  map[string]int `json:"faults_by_kind"`
	Ledger  Report         `json:"ledger"`
	// DropCounters says how the gateway's drop counters were read.
	DropCounters string `json:"drop_counters"`
	Regressions  int    `json:"drop_counter_regressions"` // must be 0
	Pass         bool   `json:"pass"`
}

// Upstream is a Debian mosquitto with persistence, restartable.
type Upstream struct {
	Addr string
	bin  string
	conf string
	dir  string
	proc *Proc
}

// StartUpstream starts mosquitto on a free loopback port in dir, plaintext
// and anonymous (the chaos run's upstream, behind Proxy).
func StartUpstream(dir string) (*Upstream, error) {
	return startUpstream(dir, "allow_anonymous true\n")
}

// startUpstream starts mosquitto with a listener on a free loopback port and
// the listener settings in extra.
func startUpstream(dir, extra string) (*Upstream, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mosquitto"); e != nil {
			return nil, errors.New("mosquitto not found: run `make deps` (apt-get install mosquitto)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	u := &Upstream{Addr: addr, bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf")}
	// Persistence keeps the sink's queued messages across a graceful stop
	// (SIGTERM writes the database); practically unlimited queues so that
	// the upstream never drops what the gateway delivered (not 0: Mosquitto
	// 2.0.11 with max_queued_messages 0 closes a client's connection right
	// after a PUBACK 0x87).
	// "user root" keeps a root-started mosquitto from switching to the
	// mosquitto user, who cannot write to a private temp directory; it is
	// ignored when not started as root.
	conf := fmt.Sprintf(`per_listener_settings false
listener %s 127.0.0.1
%suser root
persistence true
persistence_location %s/
autosave_interval 1
max_queued_messages 10000000
max_queued_bytes 0
max_inflight_messages 1000
log_dest stderr
log_type error
log_type warning
`, port, extra, dir)
	if err := os.WriteFile(u.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return u, u.Start()
}

// Start (re)starts mosquitto and waits until it listens.
func (u *Upstream) Start() error {
	p, err := StartProc("mosquitto", filepath.Join(u.dir, "mosquitto.log"), nil, u.bin, "-c", u.conf)
	if err != nil {
		return err
	}
	u.proc = p
	if !waitFor(context.Background(), 10*time.Second, func() bool { return dialable(u.Addr) }) {
		return fmt.Errorf("mosquitto did not listen on %s:\n%s", u.Addr, p.Tail(1000))
	}
	return nil
}

// Stop stops mosquitto gracefully (it saves its database).
func (u *Upstream) Stop() error { return u.proc.Stop(10 * time.Second) }

// Sink is the upstream subscriber: a persistent MQTT 5 session on
// sites/<site>/#, reconnecting whenever mosquitto restarts.
type Sink struct {
	ledger   *Ledger
	tls      *tls.Config // nil: plaintext
	received atomic.Int64
	up       atomic.Bool
}

func (s *Sink) run(ctx context.Context, addr, filter string) {
	for ctx.Err() == nil {
		o := ClientOptions{ClientID: "edgegw-load-sink", Version: 5, Clean: false,
			SessionExpiry: 0xFFFFFFFF, Keepalive: 30 * time.Second, OnMessage: s.onMessage}
		var c *Client
		var err error
		if s.tls != nil {
			c, err = Dial(ctx, addr, s.tls, o)
		} else {
			c, err = DialPlain(ctx, addr, o)
		}
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		if code, err := c.Subscribe(ctx, filter, 1); err != nil || code >= 0x80 {
			c.Drop()
			continue
		}
		s.up.Store(true)
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.Done():
		}
		s.up.Store(false)
	}
}

func (s *Sink) onMessage(m Message) {
	if strings.HasSuffix(m.Topic, "/cmd") {
		return // commands from the cloud (building): counted at their target
	}
	s.received.Add(1)
	dev, seq, _, err := decodePayload(m.Payload)
	if err != nil {
		dev, seq = "?", 0
	}
	if strings.HasPrefix(dev, "probe:") {
		return // blast-radius probes (building): judged at the local monitor
	}
	s.ledger.Delivered(dev, seq, time.Now().UnixNano())
}

// DropCounter reads the gateway's counted drops of the outbound route.
type DropCounter struct {
	URL    string         // http://127.0.0.1:PORT/metrics
	Metric *regexp.Regexp // metric lines to sum
	Depth  *regexp.Regexp // the route's queue depth line (nil: not read)
	total  int64          // sum over gateway lifetimes already ended (in-memory counters)
	last   int64          // last reading of the current lifetime
	depth  int64          // queue depth at the last reading (-1 unknown)
	// Persisted is set when the metric's HELP says the counters are
	// persisted (kept across restarts and kill -9, edgegw since the store's
	// lifetime counters): then the reading is already the total, and a
	// reading lower than the one before a kill is a regression.
	Persisted  bool
	beforeKill int64
	Regressed  int // readings after a restart below the one before the kill
}

// Read returns the current lifetime's counter (-1 if unreadable).
func (d *DropCounter) Read() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL, nil)
	d.depth = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP edgegw_drops_total ") && strings.Contains(line, "persisted") {
			d.Persisted = true
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		if d.Depth != nil && d.Depth.MatchString(line) {
			d.depth = int64(v)
		}
		if d.Metric.MatchString(line) {
			sum += v
		}
	}
	d.last = int64(sum)
	if d.Persisted && d.last < d.beforeKill {
		d.Regressed++
		d.beforeKill = d.last // count each regression once
	}
	return d.last
}

// EndLifetime is called just before the gateway is killed. In-memory
// counters restart at 0, so this process's counts are banked; persisted
// counters carry on, so the reading is only remembered to check that.
func (d *DropCounter) EndLifetime() {
	d.Read()
	if d.Persisted {
		d.beforeKill = d.last
		return
	}
	d.total += d.last
	d.last = 0
}

// Total is every lifetime's drops so far.
func (d *DropCounter) Total() int64 {
	d.Read()
	if d.Persisted {
		return d.last
	}
	return d.total + d.last
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func cmdChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var faults, devices, maxMsgs int
	var every, drain time.Duration
	var rate float64
	var seed uint64
	var metric string
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	c.register(fs)
	fs.IntVar(&faults, "faults", 24, "faults to inject")
	fs.DurationVar(&every, "every", 4*time.Second, "mean time between faults")
	fs.IntVar(&devices, "devices", 40, "publishing devices (the first ones of the site)")
	fs.Float64Var(&rate, "rate", 120, "messages per minute per device")
	fs.IntVar(&maxMsgs, "route-max-messages", 2000, "max_messages of the outbound route (small, so fill-queue drops)")
	fs.DurationVar(&drain, "drain", 90*time.Second, "time allowed at the end for the backlog to reach upstream")
	fs.Uint64Var(&seed, "seed", 0, "random seed (0 = from the clock; printed)")
	fs.StringVar(&metric, "drops-metric", `^edgegw_drops_total\{.*reason="(overflow-count|overflow-bytes|max-age|purged)".*route="telemetry"|^edgegw_drops_total\{.*route="telemetry".*reason="(overflow-count|overflow-bytes|max-age|purged)"`, "regexp of the /metrics lines whose values sum to the counted drops")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	c.floors, c.perFloor = 1, max(4, (devices+3)/4*4)
	if c.siteDir == fs.Lookup("site").DefValue {
		c.siteDir += "-chaos"
	}
	re, err := regexp.Compile(metric)
	if err != nil {
		return fmt.Errorf("--drops-metric: %w", err)
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := stdout
	if c.jsonOut {
		out = io.Discard
	}
	if c.addr != "" {
		return fmt.Errorf("%w: chaos starts and kills its own edgegw; --addr is not supported", errUsage)
	}
	fmt.Fprintf(out, "chaos: %d faults, ~%s apart, %d devices at %.0f msg/min, seed %d\n", faults, every, devices, rate, seed)

	runDir := c.runDir
	if runDir == "" {
		d, err := os.MkdirTemp("", "edgegw-chaos-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		runDir = d
	}
	upDir := filepath.Join(runDir, "upstream")
	if err := os.MkdirAll(upDir, 0o755); err != nil {
		return err
	}
	up, err := StartUpstream(upDir)
	if err != nil {
		return err
	}
	defer func() { _ = up.Stop() }()
	px, err := NewProxy(up.Addr)
	if err != nil {
		return err
	}
	defer px.Close()
	metricsAddr, err := FreePort()
	if err != nil {
		return err
	}
	c.runDir = runDir
	e, err := prepare(ctx, &c, out, GatewayConfig{Upstream: "mqtt://" + px.Addr(), Metrics: metricsAddr,
		RouteMaxMessages: int64(maxMsgs), RunDir: runDir})
	if err != nil {
		return err
	}
	defer e.close()
	drops := &DropCounter{URL: "http://" + metricsAddr + "/metrics", Metric: re, Depth: regexp.MustCompile(`^edgegw_queue_depth\{.*route="telemetry"`)}

	ledger := NewLedger()
	sctx, stopSink := context.WithCancel(ctx)
	defer stopSink()
	sink := &Sink{ledger: ledger}
	go sink.run(sctx, up.Addr, "sites/"+building+"/#")
	if !waitFor(ctx, 10*time.Second, sink.up.Load) {
		return errors.New("the upstream subscriber could not connect to mosquitto")
	}

	fctx, stopFleet := context.WithCancel(ctx)
	f := &Fleet{Site: e.site, Addr: e.addr, Version: c.mqtt, Ledger: ledger, Interval: time.Duration(float64(time.Minute) / rate), Payload: 64}
	defer func() { stopFleet(); f.Wait() }()
	devs := e.site.Devices[:min(devices, len(e.site.Devices))]
	if _, err := connectFleet(fctx, e, f, devs, nil, time.Minute); err != nil {
		return err
	}
	// The bridge must be forwarding before faults make sense.
	if !waitFor(ctx, 20*time.Second, func() bool { return sink.received.Load() > 0 }) {
		r := ledger.Report(0)
		return fmt.Errorf("nothing reached the upstream in 20s (%d acknowledged locally): is the bridge wired into `edgegw run`? gateway log:\n%s",
			r.Acked, e.gw.Tail(1500))
	}

	res := &ChaosResult{Machine: machine(), Date: time.Now().UTC().Format(time.DateOnly), Command: "edgegw-load chaos " + strings.Join(args, " "), ByKind: map[string]int{}}
	t0 := time.Now()
	kinds := []string{faultKill, faultUpstream, faultSilence, faultQueueFill}
	for i := 0; i < faults && ctx.Err() == nil; i++ {
		kind := kinds[i%len(kinds)] // every kind equally often, in random order below
		if i%len(kinds) == 0 {
			rng.Shuffle(len(kinds), func(a, b int) { kinds[a], kinds[b] = kinds[b], kinds[a] })
			kind = kinds[0]
		}
		sleep(ctx, time.Duration(float64(every)*(0.5+rng.Float64())))
		fr := FaultRecord{Kind: kind, At: time.Since(t0).Seconds()}
		start := time.Now()
		hold := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		switch kind {
		case faultKill:
			// In-memory drop counters (an edgegw before persisted lifetime
			// counters) are read just before the kill. So that no drop can
			// happen between that reading and the kill, the kill then waits
			// until the queue is well below the route's cap (drop-oldest
			// fires only at the cap): 2 s of the whole stream plus 50
			// messages of headroom. Persisted counters need no wait.
			margin := int64(float64(len(devs))*rate/60*2) + 50
			safe := waitFor(ctx, 60*time.Second, func() bool {
				drops.Read()
				return drops.Persisted || drops.depth >= 0 && drops.depth+margin < int64(maxMsgs)
			})
			if !safe {
				return fmt.Errorf("fault %d (kill): queue depth %d stayed within %d of the cap %d for 60s; a kill now could lose drop counts the ledger needs", i+1, drops.depth, margin, maxMsgs)
			}
			depth := drops.depth
			drops.EndLifetime()
			start = time.Now()
			e.gw.Kill()
			sleep(ctx, hold/2)
			tc, err := e.site.TLSConfig(monitorThing)
			if err != nil {
				return err
			}
			e.gw, err = StartGateway(ctx, c.edgegw, e.cfg, e.addr, tc, e.gwEnv...)
			if err != nil {
				return fmt.Errorf("restarting edgegw after SIGKILL: %w", err)
			}
			fr.Detail = fmt.Sprintf("down %s, queue depth %d at the kill", time.Since(start).Round(time.Millisecond), depth)
		case faultUpstream:
			if err := up.Stop(); err != nil {
				fr.Detail = err.Error()
			}
			sleep(ctx, hold)
			if err := up.Start(); err != nil {
				return err
			}
		case faultSilence:
			px.Silence()
			sleep(ctx, 2*hold+2*time.Second)
			px.Resume()
		case faultQueueFill:
			// Upstream unreachable while every device bursts: the queue goes
			// past the route's max_messages and drop-oldest must count.
			px.Silence()
			f.Burst(maxMsgs/len(devs) + 20)
			waitFor(ctx, 20*time.Second, func() bool { return f.pendingBurst() == 0 })
			px.Resume()
			fr.Detail = fmt.Sprintf("burst %d messages", (maxMsgs/len(devs)+20)*len(devs))
		}
		fr.Seconds = time.Since(start).Seconds()
		res.Faults = append(res.Faults, fr)
		res.ByKind[kind]++
		fmt.Fprintf(out, "  fault %2d at %6.1fs: %-16s %5.1fs %s\n", i+1, fr.At, kind, fr.Seconds, fr.Detail)
	}
	// Quiet end: stop publishing, let the backlog drain.
	f.Pause(true)
	fmt.Fprintf(out, "faults done; draining (up to %s)...\n", drain)
	waitFor(ctx, drain, func() bool {
		r := ledger.Report(drops.Total())
		return r.Unexplained == 0
	})
	time.Sleep(time.Second)
	res.Ledger = ledger.Report(drops.Total())
	res.Ledger.Print(out, "chaos ledger (device -> edgegw -> bridge -> mosquitto -> subscriber):")
	fmt.Fprintf(out, "faults injected: %d %v\n", len(res.Faults), res.ByKind)
	mode := "in memory, banked before each kill"
	if drops.Persisted {
		mode = "persisted by the queue (lifetime)"
	}
	fmt.Fprintf(out, "drop counters: %s; regressions after a restart: %d\n", mode, drops.Regressed)
	res.DropCounters, res.Regressions = mode, drops.Regressed
	res.Pass = res.Ledger.OK() && len(res.Faults) >= min(faults, 20) && drops.Regressed == 0
	if c.jsonOut {
		printJSON(stdout, res)
	}
	if !res.Pass {
		fmt.Fprintf(out, "FAIL: %d unexplained losses (first: %v), %d delivered though refused, %d unknown, %d drop-counter regressions\n",
			res.Ledger.Unexplained, ledger.LostKeys(5), res.Ledger.DeliveredRefused, res.Ledger.Unknown, drops.Regressed)
		return errFailed
	}
	fmt.Fprintf(out, "PASS: 0 unexplained losses over %d faults\n", len(res.Faults))
	return nil
}

// pendingBurst is the number of burst messages not yet sent.
func (f *Fleet) pendingBurst() int64 {
	var n int64
	for _, d := range f.devs {
		n += d.burst.Load()
	}
	return n
}
