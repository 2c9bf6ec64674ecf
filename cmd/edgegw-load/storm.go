package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// StormRound is one reconnect storm.
type StormRound struct {
	Seconds          float64 `json:"seconds"` // until every device was connected and subscribed again
	FailedHandshakes int64   `json:"failed_handshakes"`
	RefusedConnects  int64   `json:"refused_connects"`
	GatewayCPU       float64 `json:"gateway_cpu_seconds"`
	AllBack          bool    `json:"all_back"`
}

// StormResult is the storm scenario's outcome.
type StormResult struct {
	Machine string        `json:"machine"`
	Date    string        `json:"date"`
	Command string        `json:"command"`
	Connect ConnectResult `json:"connect"`
	Rounds  []StormRound  `json:"rounds"`
	Gateway GatewayStats  `json:"gateway"` // at the end: peak RSS covers every round
	Ledger  Report        `json:"telemetry"`
	Pass    bool          `json:"pass"`
}

func cmdStorm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var rounds int
	var within time.Duration
	var rate float64
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	c.register(fs)
	fs.IntVar(&rounds, "rounds", 3, "reconnect storms")
	fs.DurationVar(&within, "within", 30*time.Second, "fail unless every device is back within this")
	fs.Float64Var(&rate, "rate", 4, "telemetry messages per minute per device during the storm")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	out := stdout
	if c.jsonOut {
		out = io.Discard
	}
	e, err := prepare(ctx, &c, out, GatewayConfig{})
	if err != nil {
		return err
	}
	defer e.close()
	res := &StormResult{Machine: machine(), Date: time.Now().UTC().Format(time.DateOnly), Command: "edgegw-load storm " + strings.Join(args, " ")}
	ledger := NewLedger()
	mon, err := StartMonitor(ctx, e.site, e.addr, monitorThing, "building/#", ledger, nil)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	defer mon.Close()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Minute) / rate)
	}
	fctx, stop := context.WithCancel(ctx)
	f := &Fleet{Site: e.site, Addr: e.addr, Version: c.mqtt, Ledger: ledger, Interval: interval, Payload: 64}
	defer func() { stop(); f.Wait() }()
	fmt.Fprintf(out, "connecting %d devices at once (MQTT %s)...\n", len(e.site.Devices), c.mqtt)
	res.Connect, err = connectFleet(fctx, e, f, e.site.Devices, nil, 2*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  all %d connected after %.1fs (failed handshakes %d); gateway RSS %s\n",
		res.Connect.Sessions, res.Connect.Seconds, res.Connect.FailedHandshakes, mib(res.Connect.Gateway.RSSBytes))
	res.Pass = true
	for i := 1; i <= rounds; i++ {
		h0, r0 := f.FailedHandshakes(), f.RefusedConnects()
		cpu0 := e.gwStats().CPU
		gens := f.generations()
		t0 := time.Now()
		f.DropAll() // the LAN loses power: no DISCONNECT, sockets just close
		back := waitFor(ctx, within, func() bool { return f.allReconnected(gens) })
		r := StormRound{Seconds: time.Since(t0).Seconds(), FailedHandshakes: f.FailedHandshakes() - h0,
			RefusedConnects: f.RefusedConnects() - r0, GatewayCPU: (e.gwStats().CPU - cpu0).Seconds(), AllBack: back}
		if !back {
			res.Pass = false
			r.Seconds = within.Seconds()
		}
		res.Rounds = append(res.Rounds, r)
		fmt.Fprintf(out, "storm %d: %d devices reconnected in %.2fs (all back: %v), failed handshakes %d, refused %d, gateway CPU %.2fs\n",
			i, len(e.site.Devices), r.Seconds, back, r.FailedHandshakes, r.RefusedConnects, r.GatewayCPU)
		sleep(ctx, 2*time.Second)
	}
	f.Pause(true)
	waitFor(ctx, 10*time.Second, func() bool { return ledger.Report(0).Lost == 0 })
	res.Gateway = toGW(e.gwStats())
	res.Ledger = ledger.Report(0)
	fmt.Fprintf(out, "gateway: CPU %.1fs, RSS %s, peak RSS (VmHWM) %s\n", res.Gateway.CPUSeconds, mib(res.Gateway.RSSBytes), mib(res.Gateway.PeakRSS))
	res.Ledger.Print(out, "telemetry ledger during the storms:")
	if !res.Ledger.OK() || res.Ledger.Lost > 0 {
		res.Pass = false
		fmt.Fprintf(out, "FAIL: %d acknowledged messages lost: %v\n", res.Ledger.Lost, ledger.LostKeys(5))
	}
	if c.jsonOut {
		printJSON(stdout, res)
	}
	if !res.Pass {
		fmt.Fprintf(out, "FAIL: not every device was back within %s\n", within)
		return errFailed
	}
	fmt.Fprintf(out, "PASS: %d rounds, every device back within %s\n", rounds, within)
	return nil
}

// generations snapshots every device's connect count.
func (f *Fleet) generations() []int64 {
	g := make([]int64, len(f.devs))
	for i, d := range f.devs {
		g[i] = d.gen.Load()
	}
	return g
}

// allReconnected: every device has a newer session than in gens and is ready.
func (f *Fleet) allReconnected(gens []int64) bool {
	for i, d := range f.devs {
		if d.gen.Load() <= gens[i] || !d.ready.Load() {
			return false
		}
	}
	return true
}
