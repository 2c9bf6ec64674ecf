// Command edgegw-load is edgegw's load and scenario tool: it simulates a site
// of devices, each with its own certificate from the site CA (gateway/pki, the
// code path of `edgegw pki issue`), connecting over mTLS with MQTT 3.1.1 or 5
// to one `edgegw run`, and counts every message end to end by (device,
// sequence).
//
//	edgegw-load building   the seed's building: 20 floors x 100 devices, telemetry
//	                       bridged to an upstream mosquitto (mTLS, ACL), commands
//	                       from that upstream to lights and locks, blast radius of
//	                       one compromised device per role
//	edgegw-load storm      all devices reconnect at once (a power cut on the LAN)
//	edgegw-load chaos      faults during a steady stream; every acked message is
//	                       delivered upstream or counted as a drop
//	edgegw-load renew      every device renews its certificate over MQTT within a
//	                       window while the fleet publishes; nothing lost, every old
//	                       certificate revoked
//
// Every subcommand exits non-zero when its acceptance check fails. It is a
// command of this module (cmd/...), so it may import gateway/pki; it speaks
// MQTT with its own small client (mqtt.go) and must not import mochi-mqtt.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: edgegw-load building|storm|chaos|renew [flags]
  building  2,000 devices (20 floors x 100) on one edgegw run bridged to mosquitto: telemetry, commands from upstream, blast radius
  storm     connect the building, then every device reconnects at once
  chaos     faults during a steady stream; the ledger must balance
  renew     every device renews its certificate over MQTT within --window under load; 0 lost, old certificates revoked
Run 'edgegw-load COMMAND -h' for the flags.`

// errFailed marks an acceptance failure already reported on stdout.
var errFailed = errors.New("acceptance check failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "building":
		err = cmdBuilding(ctx, args[1:], stdout, stderr)
	case "storm":
		err = cmdStorm(ctx, args[1:], stdout, stderr)
	case "chaos":
		err = cmdChaos(ctx, args[1:], stdout, stderr)
	case "renew":
		err = cmdRenew(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "edgegw-load: unknown command %q\n%s\n", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errFailed):
		fmt.Fprintln(stderr, "edgegw-load: FAIL")
		return 1
	}
	fmt.Fprintf(stderr, "edgegw-load: %v\n", err)
	return 1
}

var errUsage = errors.New("usage")

// common are the flags every scenario shares.
type common struct {
	edgegw   string // path of the edgegw binary
	addr     string // an already running gateway (then edgegw is not started)
	siteDir  string
	runDir   string
	floors   int
	perFloor int
	mqtt     string
	jsonOut  bool
	logLevel string
	// Gateway tuning for comparisons (0/"" = edgegw's defaults).
	writeQueue int
	memLimit   string
	gogc       string
}

func (c *common) register(fs *flag.FlagSet) {
	cache, _ := os.UserCacheDir()
	if cache == "" {
		cache = os.TempDir()
	}
	fs.StringVar(&c.edgegw, "edgegw", "bin/edgegw", "edgegw binary to start (`edgegw run`)")
	fs.StringVar(&c.addr, "addr", "", "address of a running gateway's mTLS listener that trusts --site (then no edgegw is started)")
	fs.StringVar(&c.siteDir, "site", filepath.Join(cache, "edgegw-load", "building"), "site directory (CA, device certificates, registry, policies); generated once, reused")
	fs.StringVar(&c.runDir, "run-dir", "", "directory for this run's config, queue, logs (default: a new temporary directory)")
	fs.IntVar(&c.floors, "floors", 20, "floors")
	fs.IntVar(&c.perFloor, "per-floor", 100, "devices per floor (a multiple of 4: temperature, occupancy, light, lock)")
	fs.StringVar(&c.mqtt, "mqtt", "mixed", "MQTT version of the devices: 3 (3.1.1), 5 or mixed (every other device)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the result as JSON")
	fs.StringVar(&c.logLevel, "log-level", "warn", "edgegw log level for the run")
	fs.IntVar(&c.writeQueue, "client-write-queue", 0, "limits.client_write_queue of the started gateway (0 = edgegw's default)")
	fs.StringVar(&c.memLimit, "gomemlimit", "", "GOMEMLIMIT of the started gateway, e.g. 100MiB or off (\"\" = unset: limits.memory_limit applies)")
	fs.StringVar(&c.gogc, "gogc", "", "GOGC of the started gateway, e.g. 50 (\"\" = unset: Go's default, 100)")
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}

// env is a prepared run: site, gateway (started or given), fleet parts.
type env struct {
	c       *common
	site    *Site
	addr    string
	gw      *Proc    // nil with --addr
	gwEnv   []string // GOMEMLIMIT, GOGC of the started gateway (kept for restarts)
	cfg     string
	runDir  string
	cleanup []func()
	out     io.Writer
}

func (e *env) close() {
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
}

// prepare raises the file limit, opens (or generates) the site and starts
// the gateway unless --addr was given.
func prepare(ctx context.Context, c *common, out io.Writer, gc GatewayConfig) (*env, error) {
	n := c.floors * c.perFloor
	lim, err := RaiseNoFile(uint64(3*n + 1024))
	if err != nil {
		return nil, fmt.Errorf("raising the open file limit: %w", err)
	}
	if lim < uint64(2*n+256) {
		return nil, fmt.Errorf("open file limit %d is too low for %d devices (need %d): raise `ulimit -n`", lim, n, 2*n+256)
	}
	t0 := time.Now()
	site, cached, err := OpenSite(ctx, c.siteDir, c.floors, c.perFloor)
	if err != nil {
		return nil, err
	}
	how := "generated"
	if cached {
		how = "reused"
	}
	fmt.Fprintf(out, "site %s: %d devices (%d floors x %d), %s in %s\n", site.Dir, n, c.floors, c.perFloor, how, time.Since(t0).Round(time.Millisecond))
	e := &env{c: c, site: site, out: out}
	if c.addr != "" {
		e.addr = c.addr
		return e, nil
	}
	e.runDir = c.runDir
	if e.runDir == "" {
		d, err := os.MkdirTemp("", "edgegw-load-*")
		if err != nil {
			return nil, err
		}
		e.runDir = d
		e.cleanup = append(e.cleanup, func() { os.RemoveAll(d) })
	}
	if gc.Listen == "" {
		if gc.Listen, err = FreePort(); err != nil {
			return nil, err
		}
	}
	gc.RunDir, gc.LogLevel, gc.WriteQueue = e.runDir, c.logLevel, c.writeQueue
	e.cfg, err = site.WriteConfig(gc)
	if err != nil {
		return nil, err
	}
	e.addr = gc.Listen
	tc, err := site.TLSConfig(monitorThing)
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(c.edgegw)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("edgegw binary %s: %w (run `make build` or pass --edgegw)", bin, err)
	}
	c.edgegw = bin
	var envv []string
	if c.memLimit != "" {
		envv = append(envv, "GOMEMLIMIT="+c.memLimit)
	}
	if c.gogc != "" {
		envv = append(envv, "GOGC="+c.gogc)
	}
	e.gwEnv = envv
	e.gw, err = StartGateway(ctx, bin, e.cfg, e.addr, tc, envv...)
	if err != nil {
		e.close()
		return nil, err
	}
	fmt.Fprintf(out, "edgegw run (pid %d) on %s, config %s\n", e.gw.Cmd.Process.Pid, e.addr, e.cfg)
	e.cleanup = append(e.cleanup, func() { _ = e.gw.Stop(10 * time.Second) })
	return e, nil
}

// gwStats reads the gateway's CPU and memory (zero with --addr).
func (e *env) gwStats() ProcStats {
	if e.gw == nil || e.gw.Exited() {
		return ProcStats{}
	}
	s, _ := ReadProcStats(e.gw.Cmd.Process.Pid)
	return s
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
