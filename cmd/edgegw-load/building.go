package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// GatewayStats is what the tool read from /proc about `edgegw run`.
type GatewayStats struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSBytes   int64   `json:"rss_bytes"`
	PeakRSS    int64   `json:"peak_rss_bytes"` // VmHWM
}

func toGW(s ProcStats) GatewayStats {
	return GatewayStats{CPUSeconds: s.CPU.Seconds(), RSSBytes: s.RSS, PeakRSS: s.PeakRS}
}

// ConnectResult is how the fleet came up.
type ConnectResult struct {
	Devices          int          `json:"devices"`
	Sessions         int64        `json:"sessions"` // device sessions open at once (client side)
	Seconds          float64      `json:"seconds"`  // until every device was connected and subscribed
	FailedHandshakes int64        `json:"failed_handshakes"`
	RefusedConnects  int64        `json:"refused_connects"`
	Gateway          GatewayStats `json:"gateway"`
}

// BuildingResult is the building scenario's outcome.
type BuildingResult struct {
	Machine      string         `json:"machine"`
	Date         string         `json:"date"`
	Command      string         `json:"command"`
	Connect      ConnectResult  `json:"connect"`
	Telemetry    Report         `json:"telemetry"`          // at the local monitor
	Upstream     *Report        `json:"telemetry_upstream"` // at the cloud subscriber, through the bridge
	Commands     Report         `json:"commands"`           // cloud -> bridge -> light/lock (local commander with --addr)
	Misdelivered int64          `json:"misdelivered_commands"`
	Blast        []*BlastResult `json:"blast_radius"`
	ProbeLedger  Report         `json:"probe_ledger"`
	Gateway      GatewayStats   `json:"gateway"`
	SteadyCPU    float64        `json:"steady_cpu_seconds"` // gateway CPU during the steady phase
	Pass         bool           `json:"pass"`
	Failures     []string       `json:"failures,omitempty"`
}

func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// compromised picks one device of each role, mid-building.
func compromised(s *Site) []Device {
	var out []Device
	for _, r := range roles {
		ds := s.ByRole(r.typ)
		out = append(out, ds[len(ds)/2+len(ds)/(2*s.Floors)])
	}
	return out
}

func without(all, ex []Device) []Device {
	skip := map[string]bool{}
	for _, d := range ex {
		skip[d.Name] = true
	}
	var out []Device
	for _, d := range all {
		if !skip[d.Name] {
			out = append(out, d)
		}
	}
	return out
}

// connectFleet starts the fleet and waits until every device is connected
// and subscribed, then holds the compromised devices' sessions too so that
// all devices are connected at once, and measures.
func connectFleet(ctx context.Context, e *env, f *Fleet, devs, held []Device, within time.Duration) (ConnectResult, error) {
	r := ConnectResult{Devices: len(devs) + len(held)}
	t0 := time.Now()
	if err := f.Start(ctx, devs); err != nil {
		return r, err
	}
	ok := waitFor(ctx, within, func() bool { return f.Ready() == len(devs) })
	r.Seconds = time.Since(t0).Seconds()
	r.FailedHandshakes, r.RefusedConnects = f.FailedHandshakes(), f.RefusedConnects()
	if !ok {
		return r, fmt.Errorf("only %d of %d devices connected within %s (failed handshakes %d, refused %d)",
			f.Ready(), len(devs), within, r.FailedHandshakes, r.RefusedConnects)
	}
	var cls []*Client
	for _, d := range held {
		tc, err := e.site.TLSConfig(d.Name)
		if err != nil {
			return r, err
		}
		c, err := Dial(ctx, e.addr, tc, ClientOptions{ClientID: d.Name, Version: 5, Clean: true, Keepalive: 60 * time.Second})
		if err != nil {
			return r, fmt.Errorf("connecting %s: %w", d.Name, err)
		}
		cls = append(cls, c)
	}
	r.Sessions = f.Connected() + int64(len(cls))
	r.Gateway = toGW(e.gwStats())
	for _, c := range cls {
		c.Close()
	}
	return r, nil
}

type buildingFlags struct {
	common
	duration time.Duration
	rate     float64
	burst    int
	cmdRate  float64
	payload  int
	within   time.Duration
}

func cmdBuilding(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var bf buildingFlags
	fs := flag.NewFlagSet("building", flag.ContinueOnError)
	bf.register(fs)
	fs.DurationVar(&bf.duration, "duration", 60*time.Second, "steady telemetry phase")
	fs.Float64Var(&bf.rate, "rate", 4, "telemetry messages per minute per device")
	fs.IntVar(&bf.burst, "burst", 0, "burst mode: every device also sends this many messages back to back at the start")
	fs.Float64Var(&bf.cmdRate, "cmd-rate", 1, "commands per minute to each light and lock")
	fs.IntVar(&bf.payload, "payload", 64, "telemetry payload bytes")
	fs.DurationVar(&bf.within, "connect-within", 120*time.Second, "fail unless every device is connected within this")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	res, err := runBuilding(ctx, &bf, stdout)
	if err != nil {
		return err
	}
	res.Command = "edgegw-load building " + strings.Join(args, " ")
	if bf.jsonOut {
		printJSON(stdout, res)
	}
	if !res.Pass {
		return errFailed
	}
	return nil
}

func runBuilding(ctx context.Context, bf *buildingFlags, stdout io.Writer) (*BuildingResult, error) {
	out := stdout
	if bf.jsonOut {
		out = io.Discard
	}
	res := &BuildingResult{Machine: machine(), Date: time.Now().UTC().Format(time.DateOnly)}
	fail := func(format string, a ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, a...)) }

	// The cloud: mosquitto over mTLS with an ACL; the gateway bridges
	// telemetry to it and commands from it. With --addr the gateway is not
	// ours to configure: commands are published locally instead.
	var gc GatewayConfig
	var up *Upstream
	var upki *UpstreamPKI
	if bf.addr == "" {
		if bf.runDir == "" {
			d, err := os.MkdirTemp("", "edgegw-load-*")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(d)
			bf.runDir = d
		}
		upDir := filepath.Join(bf.runDir, "upstream")
		if err := os.MkdirAll(upDir, 0o755); err != nil {
			return nil, err
		}
		var err error
		if upki, err = OpenUpstreamPKI(ctx, filepath.Clean(bf.siteDir)+"-upstream-pki"); err != nil {
			return nil, err
		}
		if up, err = StartUpstreamTLS(upDir, upki); err != nil {
			return nil, err
		}
		defer func() { _ = up.Stop() }()
		fmt.Fprintf(out, "upstream: mosquitto (pid %d) on %s, mTLS, ACL sites/%s/# for %s\n", up.proc.Cmd.Process.Pid, up.Addr, building, gatewayThing)
		gc = GatewayConfig{Upstream: "mqtts://" + up.Addr, UpstreamTLS: upki, CmdRoute: true, RunDir: bf.runDir}
	}
	e, err := prepare(ctx, &bf.common, out, gc)
	if err != nil {
		return nil, err
	}
	defer e.close()

	ledger, cmds, probes := NewLedger(), NewLedger(), NewLedger()
	mon, err := StartMonitor(ctx, e.site, e.addr, monitorThing, "building/#", ledger, probes)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	defer mon.Close()
	var upLedger *Ledger
	var cloudTLS *tls.Config
	if up != nil {
		if cloudTLS, err = upki.TLSConfig(cloudThing); err != nil {
			return nil, err
		}
		upLedger = NewLedger()
		sctx, stopSink := context.WithCancel(ctx)
		defer stopSink()
		sink := &Sink{ledger: upLedger, tls: cloudTLS}
		go sink.run(sctx, up.Addr, "sites/"+building+"/building/#")
		if !waitFor(ctx, 10*time.Second, sink.up.Load) {
			return nil, errors.New("the cloud subscriber could not connect to mosquitto")
		}
	}

	bad := compromised(e.site)
	devs := without(e.site.Devices, bad)
	var interval time.Duration
	if bf.rate > 0 {
		interval = time.Duration(float64(time.Minute) / bf.rate)
	}
	fctx, stopFleet := context.WithCancel(ctx)
	defer func() { stopFleet() }()
	f := &Fleet{Site: e.site, Addr: e.addr, Version: bf.mqtt, Ledger: ledger, Upstream: upLedger, Cmds: cmds, Interval: interval, Payload: bf.payload}
	f.Pause(true) // telemetry starts with the steady phase
	fmt.Fprintf(out, "connecting %d devices at once (MQTT %s)...\n", len(e.site.Devices), bf.mqtt)
	res.Connect, err = connectFleet(fctx, e, f, devs, bad, bf.within)
	if err != nil {
		stopFleet()
		f.Wait()
		return nil, err
	}
	c := res.Connect
	fmt.Fprintf(out, "  %d device sessions at once after %.1fs; failed handshakes %d (retried), refused %d; gateway RSS %s (peak %s), CPU %.1fs\n",
		c.Sessions, c.Seconds, c.FailedHandshakes, c.RefusedConnects, mib(c.Gateway.RSSBytes), mib(c.Gateway.PeakRSS), c.Gateway.CPUSeconds)
	if c.Sessions < int64(c.Devices) {
		fail("only %d of %d device sessions open at once", c.Sessions, c.Devices)
	}

	// Blast radius while the building is connected (telemetry paused).
	fmt.Fprintf(out, "blast radius (one compromised device per role; every other topic and action):\n")
	for _, d := range bad {
		br, err := Blast(ctx, e.site, e.addr, d, probes)
		if err != nil {
			return nil, fmt.Errorf("blast radius of %s: %w", d.Name, err)
		}
		br.Print(out)
		res.Blast = append(res.Blast, br)
		if br.Unauthorized > 0 {
			fail("%s: %d unauthorized actions accepted", d.Name, br.Unauthorized)
		}
		if br.Refused > 0 {
			fail("%s: %d of its own actions refused", d.Name, br.Refused)
		}
		if len(br.Reachable) != 1 || br.Reachable[0] != d.Name {
			fail("%s: blast radius %d/%d: %v", d.Name, len(br.Reachable), br.Devices, br.Reachable)
		}
	}

	// Commands: from the cloud through the bridge (or locally with --addr).
	var cs *cmdSender
	if bf.cmdRate > 0 {
		if cs, err = newCmdSender(ctx, e, up, cloudTLS, devs, cmds); err != nil {
			return nil, err
		}
		defer cs.c.Close()
		if up != nil {
			// The bridge subscribes upstream once it is connected; until
			// then mosquitto answers PUBACK 0x10 (no matching subscribers).
			if err := cs.warmUp(ctx, 30*time.Second); err != nil {
				return nil, fmt.Errorf("%w; gateway log:\n%s", err, e.gw.Tail(1500))
			}
		}
	}

	// Steady phase: telemetry and commands.
	fmt.Fprintf(out, "steady phase: %s, %.1f msg/min/device, burst %d, commands %.1f/min to each light and lock (%s)\n",
		bf.duration, bf.rate, bf.burst, bf.cmdRate, cs.origin())
	cpu0 := e.gwStats().CPU
	f.Pause(false)
	if bf.burst > 0 {
		f.Burst(bf.burst)
	}
	var wg sync.WaitGroup
	cctx, stopCmds := context.WithTimeout(ctx, bf.duration)
	var cmdErr error
	if cs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmdErr = cs.run(cctx, bf.cmdRate)
		}()
	}
	sleep(ctx, bf.duration)
	stopCmds()
	f.Pause(true)
	wg.Wait()
	res.SteadyCPU = (e.gwStats().CPU - cpu0).Seconds()
	if cmdErr != nil {
		fail("commander: %v", cmdErr)
	}
	// Let the last messages arrive.
	waitFor(ctx, 30*time.Second, func() bool {
		t, k := ledger.Report(0), cmds.Report(0)
		return t.Lost == 0 && k.Lost == 0 && (upLedger == nil || upLedger.Report(0).Lost == 0)
	})
	time.Sleep(200 * time.Millisecond)
	res.Gateway = toGW(e.gwStats())
	stopFleet()
	f.Wait()

	res.Telemetry, res.Commands, res.ProbeLedger = ledger.Report(0), cmds.Report(0), probes.Report(0)
	res.Misdelivered = f.Misdelivered.Load()
	res.Telemetry.Print(out, "telemetry ledger (device -> gateway -> local subscriber):")
	if upLedger != nil {
		r := upLedger.Report(0)
		res.Upstream = &r
		r.Print(out, "telemetry ledger upstream (device -> gateway -> queue -> bridge -> mosquitto -> cloud subscriber):")
	}
	res.Commands.Print(out, "command ledger ("+cs.origin()+" -> light/lock):")
	fmt.Fprintf(out, "gateway: CPU %.1fs (steady phase %.1fs), RSS %s, peak RSS (VmHWM) %s\n", res.Gateway.CPUSeconds, res.SteadyCPU, mib(res.Gateway.RSSBytes), mib(res.Gateway.PeakRSS))
	if !res.Telemetry.OK() || res.Telemetry.Lost > 0 {
		fail("telemetry ledger: %d lost (%v), %d delivered though refused, %d unknown", res.Telemetry.Lost, ledger.LostKeys(5), res.Telemetry.DeliveredRefused, res.Telemetry.Unknown)
	}
	if r := res.Upstream; r != nil && (!r.OK() || r.Lost > 0 || r.Delivered < r.Acked) {
		fail("upstream telemetry ledger: %d of %d acknowledged delivered, %d lost (%v), %d unknown", r.Delivered, r.Acked, r.Lost, upLedger.LostKeys(5), r.Unknown)
	}
	if !res.Commands.OK() || res.Commands.Lost > 0 {
		fail("command ledger: %d lost (%v)", res.Commands.Lost, cmds.LostKeys(5))
	}
	if res.Misdelivered > 0 {
		fail("%d commands delivered to the wrong device", res.Misdelivered)
	}
	if res.ProbeLedger.DeliveredRefused > 0 {
		fail("%d refused probe messages were delivered anyway", res.ProbeLedger.DeliveredRefused)
	}
	if res.Telemetry.Acked == 0 && bf.rate > 0 {
		fail("no telemetry acknowledged")
	}
	res.Pass = len(res.Failures) == 0
	for _, s := range res.Failures {
		fmt.Fprintf(out, "FAIL: %s\n", s)
	}
	if res.Pass {
		fmt.Fprintf(out, "PASS: %d devices, 0 unauthorized actions accepted, 0 lost\n", res.Connect.Devices)
	}
	return res, nil
}

// cmdSender publishes commands to every light and lock: from the cloud
// application on the upstream broker (sites/<site>/<local topic>, mapped by
// the gateway's inbound route to the device's command topic), or, with
// --addr, as the local commander thing.
type cmdSender struct {
	c       *Client
	remote  bool
	targets []Device
	led     *Ledger
	seqs    map[string]uint64
}

func newCmdSender(ctx context.Context, e *env, up *Upstream, cloudTLS *tls.Config, devs []Device, led *Ledger) (*cmdSender, error) {
	s := &cmdSender{led: led, seqs: map[string]uint64{}, remote: up != nil}
	for _, d := range devs {
		if d.CmdTopic() != "" {
			s.targets = append(s.targets, d)
		}
	}
	if len(s.targets) == 0 {
		return nil, errors.New("no lights or locks to command")
	}
	var err error
	if up != nil {
		s.c, err = Dial(ctx, up.Addr, cloudTLS, ClientOptions{ClientID: "edgegw-load-commander", Version: 5, Clean: true, Keepalive: 60 * time.Second})
	} else {
		var tc *tls.Config
		if tc, err = e.site.TLSConfig(commanderThing); err != nil {
			return nil, err
		}
		s.c, err = Dial(ctx, e.addr, tc, ClientOptions{ClientID: commanderThing, Version: 5, Clean: true, Keepalive: 60 * time.Second})
	}
	if err != nil {
		return nil, fmt.Errorf("commander: %w", err)
	}
	return s, nil
}

func (s *cmdSender) origin() string {
	switch {
	case s == nil:
		return "none"
	case s.remote:
		return "cloud -> mosquitto -> bridge -> gateway"
	}
	return "local commander -> gateway"
}

func (s *cmdSender) topic(d Device) string {
	if s.remote {
		return "sites/" + building + "/" + d.CmdTopic()
	}
	return d.CmdTopic()
}

// pubackNoSubscribers is MQTT 5's PUBACK 0x10: accepted, delivered to nobody.
const pubackNoSubscribers = 0x10

// send publishes the next command to d and records it.
func (s *cmdSender) send(ctx context.Context, d Device) (byte, error) {
	s.seqs[d.Name]++
	seq, now := s.seqs[d.Name], time.Now().UnixNano()
	s.led.Sent(d.Name, seq, now)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	code, err := s.c.Publish(pctx, s.topic(d), encodePayload(d.Name, seq, now, 16), 1, false)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("publishing to %s: %w", s.topic(d), err)
	}
	if code == pubackNoSubscribers {
		s.led.Forget(d.Name, seq) // the broker promised nothing
	} else {
		s.led.Acked(d.Name, seq, code)
	}
	return code, nil
}

// warmUp commands the first target until the upstream has a subscriber
// for it (the bridge is connected and subscribed) and it was delivered.
func (s *cmdSender) warmUp(ctx context.Context, within time.Duration) error {
	d := s.targets[0]
	ok := waitFor(ctx, within, func() bool {
		code, err := s.send(ctx, d)
		if err != nil || code != 0 {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		return waitFor(ctx, 5*time.Second, func() bool { return s.led.Report(0).Lost == 0 })
	})
	if !ok {
		return fmt.Errorf("no command from the cloud reached %s within %s: is the bridge's inbound route subscribed upstream?", d.Name, within)
	}
	return nil
}

// run commands every target at rate per minute each until ctx ends.
func (s *cmdSender) run(ctx context.Context, rate float64) error {
	step := time.Duration(float64(time.Minute) / rate / float64(len(s.targets)))
	t := time.NewTicker(step)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d := s.targets[i%len(s.targets)]
		code, err := s.send(context.Background(), d)
		if err != nil {
			return err
		}
		switch {
		case code == pubackNoSubscribers:
			return fmt.Errorf("command to %s: PUBACK 0x10, no subscriber upstream (the bridge lost its subscription)", s.topic(d))
		case code >= 0x80:
			return fmt.Errorf("command to %s refused: 0x%02x", s.topic(d), code)
		}
	}
}
