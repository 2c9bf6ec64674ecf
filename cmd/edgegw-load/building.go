package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	Telemetry    Report         `json:"telemetry"`
	Commands     Report         `json:"commands"`
	Misdelivered int64          `json:"misdelivered_commands"`
	Blast        []*BlastResult `json:"blast_radius"`
	ProbeLedger  Report         `json:"probe_ledger"`
	Gateway      GatewayStats   `json:"gateway"`
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
	e, err := prepare(ctx, &bf.common, out, GatewayConfig{})
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &BuildingResult{Machine: machine(), Date: time.Now().UTC().Format(time.DateOnly)}
	fail := func(format string, a ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, a...)) }

	ledger, cmds, probes := NewLedger(), NewLedger(), NewLedger()
	mon, err := StartMonitor(ctx, e.site, e.addr, monitorThing, "building/#", ledger, probes)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	defer mon.Close()

	bad := compromised(e.site)
	devs := without(e.site.Devices, bad)
	var interval time.Duration
	if bf.rate > 0 {
		interval = time.Duration(float64(time.Minute) / bf.rate)
	}
	fctx, stopFleet := context.WithCancel(ctx)
	defer func() { stopFleet() }()
	f := &Fleet{Site: e.site, Addr: e.addr, Version: bf.mqtt, Ledger: ledger, Cmds: cmds, Interval: interval, Payload: bf.payload}
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

	// Steady phase: telemetry and commands.
	fmt.Fprintf(out, "steady phase: %s, %.1f msg/min/device, burst %d, commands %.1f/min to each light and lock\n",
		bf.duration, bf.rate, bf.burst, bf.cmdRate)
	f.Pause(false)
	if bf.burst > 0 {
		f.Burst(bf.burst)
	}
	var wg sync.WaitGroup
	cctx, stopCmds := context.WithTimeout(ctx, bf.duration)
	var cmdErr error
	if bf.cmdRate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmdErr = commander(cctx, e, devs, bf.cmdRate, cmds)
		}()
	}
	sleep(ctx, bf.duration)
	stopCmds()
	f.Pause(true)
	wg.Wait()
	if cmdErr != nil {
		fail("commander: %v", cmdErr)
	}
	// Let the last messages arrive.
	waitFor(ctx, 15*time.Second, func() bool {
		t, k := ledger.Report(0), cmds.Report(0)
		return t.Lost == 0 && k.Lost == 0
	})
	time.Sleep(200 * time.Millisecond)
	res.Gateway = toGW(e.gwStats())
	stopFleet()
	f.Wait()

	res.Telemetry, res.Commands, res.ProbeLedger = ledger.Report(0), cmds.Report(0), probes.Report(0)
	res.Misdelivered = f.Misdelivered.Load()
	res.Telemetry.Print(out, "telemetry ledger (device -> gateway -> local subscriber):")
	res.Commands.Print(out, "command ledger (commander -> gateway -> light/lock):")
	fmt.Fprintf(out, "gateway: CPU %.1fs, RSS %s, peak RSS (VmHWM) %s\n", res.Gateway.CPUSeconds, mib(res.Gateway.RSSBytes), mib(res.Gateway.PeakRSS))
	if !res.Telemetry.OK() || res.Telemetry.Lost > 0 {
		fail("telemetry ledger: %d lost (%v), %d delivered though refused, %d unknown", res.Telemetry.Lost, ledger.LostKeys(5), res.Telemetry.DeliveredRefused, res.Telemetry.Unknown)
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

// commander publishes commands to every light and lock at rate per minute
// each, as the commander service thing.
func commander(ctx context.Context, e *env, devs []Device, rate float64, led *Ledger) error {
	var targets []Device
	for _, d := range devs {
		if d.CmdTopic() != "" {
			targets = append(targets, d)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	tc, err := e.site.TLSConfig(commanderThing)
	if err != nil {
		return err
	}
	c, err := Dial(ctx, e.addr, tc, ClientOptions{ClientID: commanderThing, Version: 5, Clean: true, Keepalive: 60 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	step := time.Duration(float64(time.Minute) / rate / float64(len(targets)))
	t := time.NewTicker(step)
	defer t.Stop()
	seqs := map[string]uint64{}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d := targets[i%len(targets)]
		seqs[d.Name]++
		seq, now := seqs[d.Name], time.Now().UnixNano()
		led.Sent(d.Name, seq, now)
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, err := c.Publish(pctx, d.CmdTopic(), encodePayload(d.Name, seq, now, 16), 1, false)
		cancel()
		if err != nil {
			return fmt.Errorf("publishing to %s: %w", d.CmdTopic(), err)
		}
		led.Acked(d.Name, seq, code)
		if code >= 0x80 {
			return fmt.Errorf("command to %s refused: 0x%02x", d.CmdTopic(), code)
		}
	}
}
