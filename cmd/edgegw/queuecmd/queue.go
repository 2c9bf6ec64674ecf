package queuecmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/store"
)

// errDaemonRunning is what every queue subcommand says when the daemon holds
// the queue's lock.
const errDaemonRunning = "the daemon is running (queue locked); stop it or use `edgegw status`"

type queueFlags struct {
	config, dir, key string
	bridge           string // --bridge: that bridge's queue (bridges.go)
	route            string
	n                int
	olderThan        string
	dead, asJSON     bool
	output           string // -o table|json (read by the CLI's JSONOutput)
}

// New is `edgegw queue`: inspection of the durable queue in the store
// directory (store.dir of the config, or --dir), offline or through the
// running daemon. c is the command line around it; defaultConfig is -c's
// default.
func New(c CLI, defaultConfig string) *cobra.Command {
	a := &app{c}
	f := &queueFlags{}
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Inspect the queue: stats, peek, purge, export, replay of dead letters",
		Long: `Works on the queue directory (store.dir of the config given with -c, or --dir)
while the daemon is stopped. While it runs (it holds the queue's lock), stats, peek,
purge, export and replay go through its admin socket (with -c), audited. Replay of
dead letters (all, or by route, reason and age) works both ways and is audited
either way.

An encrypted queue needs its key: with -c it is read as the daemon reads it
(store.encryption_key); with --dir pass --encryption-key URI (file:PATH or
tpm-sealed:PATH).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.config, "config", "c", defaultConfig, "config file (store.dir, store.encryption_key, routes)")
	pf.StringVar(&f.dir, "dir", "", "queue directory (instead of the config's store.dir)")
	pf.StringVar(&f.key, "encryption-key", "", "with --dir: key URI of an encrypted queue (file:PATH | tpm-sealed:PATH)")
	pf.StringVar(&f.bridge, "bridge", "", "with -c: the queue of this bridge (default: the bridge named default, in store.dir)")

	stats := &cobra.Command{
		Use:   "stats",
		Short: "Per route: depth, bytes, oldest message, drops, dead letters",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.queueStats(f) },
	}
	a.OutputFlags(stats, &f.output, &f.asJSON)

	peek := &cobra.Command{
		Use:   "peek [--route R] [-n N]",
		Short: "Show the oldest messages (without removing them)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.queuePeek(f) },
	}
	peek.Flags().StringVar(&f.route, "route", "", "route name (default: every route)")
	peek.Flags().IntVarP(&f.n, "n", "n", 10, "messages per route")
	peek.Flags().BoolVar(&f.dead, "dead", false, "show dead letters instead")
	a.OutputFlags(peek, &f.output, &f.asJSON)

	purge := &cobra.Command{
		Use:   "purge --route R [--older-than D]",
		Short: "Delete a route's messages (all, or older than D); counted as drops",
		Example: `  edgegw queue purge --route telemetry --older-than 7d
  edgegw queue purge --route telemetry --dead`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.queuePurge(f) },
	}
	purge.Flags().StringVar(&f.route, "route", "", "route name (required)")
	purge.Flags().StringVar(&f.olderThan, "older-than", "", "only messages older than this (e.g. 36h, 7d); needs a set clock")
	purge.Flags().BoolVar(&f.dead, "dead", false, "purge the route's dead letters instead")
	a.OutputFlags(purge, &f.output, &f.asJSON)

	export := &cobra.Command{
		Use:   "export [--route R] [--dead]",
		Short: "Write messages as JSON lines (payload in base64) to stdout",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.queueExport(f) },
	}
	export.Flags().StringVar(&f.route, "route", "", "route name (default: every route)")
	export.Flags().BoolVar(&f.dead, "dead", false, "export the dead letters instead")

	cmd.AddCommand(stats, peek, purge, export, newQueueReplayCmd(a, f), newQueueSmokeCmd(a, f)) // smoke: hidden self-test (smoke.go)
	return cmd
}

// openQueue opens the queue for an offline command. It never creates a queue
// and never moves a damaged one aside (the daemon does that).
func (a *app) openQueue(f *queueFlags) (*store.Queue, *config.Config, error) {
	var cfg *config.Config
	var opts store.Options
	if f.dir != "" {
		opts.Dir = f.dir
		if f.key != "" {
			var err error
			cfg = &config.Config{Store: config.StoreConfig{Dir: f.dir, EncryptionKey: f.key}}
			if opts, err = uplink.StoreOptionsFromConfig(a.Context(), cfg); err != nil {
				return nil, nil, &ExitError{Code: 1, Err: err}
			}
			cfg = nil
		}
	} else {
		c, err := config.Load(f.config)
		if err != nil {
			return nil, nil, a.ConfigError(err)
		}
		cfg = c
		// Advice for the setup at hand, before the key is looked at: the
		// daemon creates the queue and its key at its first start with a
		// bridge, so a missing key is no reason to make one by hand.
		if err := queueAbsent(cfg); err != nil {
			return nil, cfg, err
		}
		if opts, err = bridgeStoreOptions(a.Context(), cfg, f.bridge); err != nil { // bridges.go
			return nil, cfg, &ExitError{Code: 1, Err: err}
		}
	}
	if _, err := os.Stat(opts.Dir); err != nil {
		return nil, cfg, &ExitError{Code: 1, Err: fmt.Errorf("no queue at %s: %w", opts.Dir, err)}
	}
	log, err := a.Logger(cfg)
	if err != nil {
		return nil, cfg, err
	}
	opts.Logger = log.With("component", "queue-cli")
	opts.KeepCorrupt = true
	opts.EnforceInterval = 1 << 62 // an inspection tool never drops by itself
	q, err := store.Open(opts)
	switch {
	case errors.Is(err, store.ErrLocked):
		return nil, cfg, &ExitError{Code: 1, Err: errors.New(errDaemonRunning)}
	case errors.Is(err, store.ErrWrongKey):
		return nil, cfg, &ExitError{Code: 1, Err: fmt.Errorf("%w (is store.encryption_key, or --encryption-key, the key this queue was created with?)", err)}
	case err != nil:
		return nil, cfg, &ExitError{Code: 1, Err: err}
	}
	return q, cfg, nil
}

// errNoQueue is openQueue's answer for a configuration that runs no queue
// (no bridge) or whose daemon has not created it yet.
type errNoQueue struct{ msg string }

func (e *errNoQueue) Error() string { return e.msg }

// queueAbsent explains, for a config, why there is no queue to open: no
// bridge section (local broker only), or a bridge whose daemon has not
// started yet. nil when the queue directory exists.
func queueAbsent(cfg *config.Config) error {
	if len(cfg.BridgeList()) == 0 {
		return &errNoQueue{fmt.Sprintf("no queue: %s has no bridge section (bridge: or bridges:), so edgegw runs as a local broker only and queues nothing; to forward upstream, add a bridge section (see /usr/share/doc/edgegw/examples) and restart: the daemon creates the queue and its key itself", cfg.File)}
	}
	if fi, err := os.Stat(cfg.Store.Dir); errors.Is(err, os.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return &errNoQueue{fmt.Sprintf("no queue at %s yet: the daemon creates it, and its encryption key, at its first start with this bridge (systemctl start edgegw)", cfg.Store.Dir)}
	}
	return nil
}

func (a *app) queueStats(f *queueFlags) error {
	isJSON, err := a.JSONOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	q, cfg, err := a.openQueue(f)
	if nq := (*errNoQueue)(nil); errors.As(err, &nq) {
		fmt.Fprintln(a.Stdout(), nq.msg) // a fact about the setup, not a failure
		return nil
	}
	var st store.Stats
	var ee *ExitError
	if err != nil && errors.As(err, &ee) && ee.Err != nil && ee.Err.Error() == errDaemonRunning && cfg != nil && cfg.Admin.Socket != "" {
		// The daemon runs: ask it.
		if aerr := observe.AdminGet(a.Context(), cfg.Admin.Socket, queueStatsPath(f.bridge), &st); aerr != nil {
			return &ExitError{Code: 1, Err: fmt.Errorf("%s; and asking it failed: %v", errDaemonRunning, aerr)}
		}
	} else if err != nil {
		return err
	} else {
		st = q.Stats()
		if err := q.Close(); err != nil {
			return &ExitError{Code: 1, Err: err}
		}
	}
	if isJSON {
		return a.WriteJSON(a.Stdout(), statsView(st))
	}
	printStats(a.Stdout(), st)
	return nil
}

func printStats(w io.Writer, st store.Stats) {
	capTxt := "no cap"
	if st.MaxBytes > 0 {
		capTxt = "cap " + config.Size(st.MaxBytes).String()
	}
	fmt.Fprintf(w, "%d messages, %s (%s), %d dead letters, next seq %d\n",
		st.Depth, config.Size(st.Bytes), capTxt, st.DeadLetters, st.NextSeq)
	if st.CorruptMovedTo != "" {
		fmt.Fprintf(w, "a damaged queue was moved aside to %s\n", st.CorruptMovedTo)
	}
	if len(st.Routes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tPRIORITY\tDEPTH\tBYTES\tOLDEST SEQ\tOLDEST AGE\tDEAD\tDROPS")
	for _, r := range st.Routes {
		name := r.Name
		if !r.Configured {
			name += " (not configured)"
		}
		age := "-"
		if r.OldestAge > 0 {
			age = r.OldestAge.Round(time.Second).String()
		}
		var drops []string
		for reason, n := range r.Drops {
			drops = append(drops, fmt.Sprintf("%s=%d", reason, n))
		}
		sort.Strings(drops)
		d := strings.Join(drops, ",")
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%d\t%s\n", name, r.Priority, r.Depth, config.Size(r.Bytes), r.OldestSeq, age, r.DeadLetters, d)
	}
	tw.Flush()
}

func (a *app) queuePeek(f *queueFlags) error {
	if f.n <= 0 {
		return usageError("queue peek: -n must be positive")
	}
	isJSON, err := a.JSONOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	f.asJSON = isJSON
	q, cfg, err := a.openQueue(f)
	if sock := liveSocket(err, cfg); sock != "" {
		return a.queuePeekLive(f, sock) // live.go
	}
	if err != nil {
		return err
	}
	defer q.Close()
	if f.asJSON {
		return a.queuePeekJSON(q, f) // live.go
	}
	tw := tabwriter.NewWriter(a.Stdout(), 0, 4, 2, ' ', 0)
	if f.dead {
		dls, err := q.DeadLetters(f.route, f.n)
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		fmt.Fprintln(tw, "SEQ\tROUTE\tTOPIC\tDEVICE\tBYTES\tREASON")
		for _, d := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", d.Seq, d.Route, d.Topic, d.Device, len(d.Payload), d.Reason)
		}
		return tw.Flush()
	}
	ms, err := q.Peek(f.route, f.n)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	fmt.Fprintln(tw, "SEQ\tROUTE\tTOPIC\tDEVICE\tQOS\tTIME\tBYTES\tPAYLOAD")
	for _, m := range ms {
		p := m.Payload
		more := ""
		if len(p) > 40 {
			p, more = p[:40], "..."
		}
		ts := "-"
		if m.Time > 0 {
			ts = time.Unix(0, m.Time).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%q%s\n", m.Seq, m.Route, m.Topic, m.Device, m.QoS, ts, len(m.Payload), p, more)
	}
	return tw.Flush()
}

func (a *app) queuePurge(f *queueFlags) error {
	if f.route == "" {
		return usageError("queue purge: --route is required")
	}
	isJSON, err := a.JSONOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	f.asJSON = isJSON
	var older time.Duration
	if f.olderThan != "" {
		if f.dead {
			return usageError("queue purge: --older-than does not apply to --dead")
		}
		d, err := config.ParseDuration(f.olderThan)
		if err != nil || d.D() <= 0 {
			return usageError("queue purge: --older-than %q: want a positive duration such as 36h or 7d", f.olderThan)
		}
		older = d.D()
	}
	q, cfg, err := a.openQueue(f)
	if sock := liveSocket(err, cfg); sock != "" {
		return a.queuePurgeLive(f, older, sock) // live.go
	}
	if err != nil {
		return err
	}
	var n int
	if f.dead {
		n, err = q.PurgeDeadLetters(f.route)
	} else {
		n, err = q.Purge(f.route, older)
	}
	if cerr := q.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	if f.asJSON {
		op := "purge"
		if f.dead {
			op = "purge_dead"
		}
		return a.WriteJSON(a.Stdout(), observe.QueueOpResult{Operation: op, Count: n,
			Routes: []observe.RouteCount{{Route: f.route, Count: n}}, Skipped: []observe.RouteReason{}})
	}
	what := "messages"
	if f.dead {
		what = "dead letters"
	}
	fmt.Fprintf(a.Stdout(), "purged %d %s from route %s\n", n, what, f.route)
	return nil
}

func (a *app) queueExport(f *queueFlags) error {
	q, cfg, err := a.openQueue(f)
	if sock := liveSocket(err, cfg); sock != "" {
		return a.queueExportLive(f, sock) // live.go
	}
	if err != nil {
		return err
	}
	defer q.Close()
	var n int
	if f.dead {
		n, err = q.ExportDeadLetters(f.route, a.Stdout())
	} else {
		n, err = q.Export(f.route, a.Stdout())
	}
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	slog.New(slog.NewTextHandler(a.Stderr(), nil)).Debug("exported", "n", n)
	return nil
}
