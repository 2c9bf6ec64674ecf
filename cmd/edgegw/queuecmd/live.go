package queuecmd

// The queue commands while the daemon runs: the daemon holds the queue's
// lock, so peek, export, purge and replay go through its admin socket
// (observe's queue operations), where each is audited.

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/store"
)

// liveSocket is the admin socket to ask when openQueue failed because the
// daemon holds the queue ("" otherwise: the error stands).
func liveSocket(err error, cfg *config.Config) string {
	var ee *ExitError
	if err != nil && errors.As(err, &ee) && ee.Err != nil && ee.Err.Error() == errDaemonRunning && cfg != nil {
		return cfg.Admin.Socket
	}
	return ""
}

func (a *app) liveError(sock string, err error) error {
	if errors.Is(err, observe.ErrNotRunning) {
		return &ExitError{Code: 1, Err: fmt.Errorf("the queue is locked but no daemon answers at %s: %w", sock, err)}
	}
	return a.AdminError(sock, err)
}

func queueQuery(f *queueFlags, dead bool) url.Values {
	v := url.Values{}
	if f.bridge != "" {
		v.Set("bridge", f.bridge)
	}
	route := f.route
	if route != "" {
		v.Set("route", route)
	}
	if dead {
		v.Set("dead", "1")
	}
	return v
}

func (a *app) queuePeekLive(f *queueFlags, sock string) error {
	v := queueQuery(f, f.dead)
	v.Set("n", strconv.Itoa(f.n))
	var p observe.QueuePeek
	if err := observe.AdminGet(a.Context(), sock, "/queue/peek?"+v.Encode(), &p); err != nil {
		return a.liveError(sock, err)
	}
	if f.asJSON {
		return a.WriteJSON(a.Stdout(), p)
	}
	tw := tabwriter.NewWriter(a.Stdout(), 0, 4, 2, ' ', 0)
	if f.dead {
		fmt.Fprintln(tw, "SEQ\tROUTE\tTOPIC\tDEVICE\tBYTES\tREASON")
		for _, m := range p.Messages {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", m.Seq, m.Route, m.Topic, m.Device, m.SizeBytes, m.Reason)
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "SEQ\tROUTE\tTOPIC\tDEVICE\tQOS\tTIME\tBYTES\tPAYLOAD")
	for _, m := range p.Messages {
		pl, more := m.Payload, ""
		if len(pl) > 40 {
			pl, more = pl[:40], "..."
		}
		ts := "-"
		if !m.Time.IsZero() {
			ts = m.Time.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%q%s\n", m.Seq, m.Route, m.Topic, m.Device, m.QoS, ts, m.SizeBytes, pl, more)
	}
	return tw.Flush()
}

func (a *app) queueExportLive(f *queueFlags, sock string) error {
	if err := observe.AdminCopy(a.Context(), sock, "/queue/export?"+queueQuery(f, f.dead).Encode(), a.Stdout()); err != nil {
		return a.liveError(sock, err)
	}
	return nil
}

func (a *app) queuePurgeLive(f *queueFlags, older time.Duration, sock string) error {
	v := queueQuery(f, f.dead)
	if older > 0 {
		v.Set("older_than_seconds", strconv.FormatInt(int64(older/time.Second), 10))
	}
	var res observe.QueueOpResult
	if err := observe.AdminPost(a.Context(), sock, "/queue/purge?"+v.Encode(), &res); err != nil {
		return a.liveError(sock, err)
	}
	if f.asJSON {
		return a.WriteJSON(a.Stdout(), res)
	}
	what := "messages"
	if f.dead {
		what = "dead letters"
	}
	fmt.Fprintf(a.Stdout(), "purged %d %s from route %s (daemon running)\n", res.Count, what, f.route)
	return nil
}

// newQueueReplayCmd is `edgegw queue replay`: dead letters back into their
// route, through the running daemon or, stopped, on the queue directly.
func newQueueReplayCmd(a *app, f *queueFlags) *cobra.Command {
	var reason, newerThan string
	cmd := &cobra.Command{
		Use:   "replay [--route R] [--reason TEXT] [--older-than D|TIME] [--newer-than D|TIME]",
		Short: "Send dead letters again: all, or by route, reason and age; back into their route, in order",
		Long: `Replay moves dead letters (messages the upstream refused, e.g. for an ACL that has
since been fixed) back into their route: they are queued again in their order, behind
what the route holds, and sent by the bridge; only then is each removed from the
dead-letter area. Without filters every dead letter of every route is replayed; the
filters narrow that, and every one given must match:

  --route R             the dead letters of route R only
  --reason TEXT         those whose recorded reason contains TEXT (case folded); the
                        reason is what 'edgegw queue peek --dead' shows, e.g.
                        "upstream PUBACK 0x87 Not authorized": --reason 0x87
  --older-than D|TIME   moved to the dead letters more than D ago (36h, 7d), or
                        before TIME (RFC 3339: 2026-12-01T08:00:00Z, or a date)
  --newer-than D|TIME   moved less than D ago, or at or after TIME

Ages count from the move to the dead-letter area and need a set clock (a durations
filter is refused while the clock is not set; times work). Dead letters that do not
match stay where they are and are counted as kept; damaged records are never
replayed. Dead letters that arrive while the replay runs (the upstream still
refuses) are not replayed by it. A crash during a replay may send a message twice,
never loses one.

While the daemon runs, the replay goes through its admin socket (-c); when it is
stopped, the queue is changed directly and the daemon sends the messages when it
starts. Either way each route replayed is audited (queue_replay, with the count and
the filter) in the audit file; with --dir the audit line goes to the log (stderr).

With -o json it prints the replay's result (see 'edgegw help' for the convention):
{"operation": "replay", "count": N, "routes": [{"route", "count"}], "kept": N,
 "skipped": [{"route", "reason"}], "filter": TEXT}.

Exit status: 0 replayed (the count may be 0), 1 error, 2 usage, 3 the queue is
locked but the daemon does not answer.`,
		Example: `  edgegw queue replay
  edgegw queue replay --route telemetry --reason 0x87
  edgegw queue replay --newer-than 2h
  edgegw queue replay --older-than 2026-12-01T08:00:00Z -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.queueReplay(f, reason, newerThan) },
	}
	cmd.Flags().StringVar(&f.route, "route", "", "route name (default: every route with dead letters)")
	cmd.Flags().StringVar(&reason, "reason", "", "only dead letters whose reason contains this (e.g. 0x87; as queue peek --dead shows it)")
	cmd.Flags().StringVar(&f.olderThan, "older-than", "", "only dead letters moved more than this ago (36h, 7d) or before this RFC 3339 time")
	cmd.Flags().StringVar(&newerThan, "newer-than", "", "only dead letters moved less than this ago (2h) or at or after this RFC 3339 time")
	a.OutputFlags(cmd, &f.output, &f.asJSON)
	return cmd
}

// queueReplay runs `edgegw queue replay`: through the running daemon's admin
// socket when the queue is locked by it, on the queue directly otherwise.
func (a *app) queueReplay(f *queueFlags, reason, newerThan string) error {
	isJSON, err := a.JSONOutput(f.output, f.asJSON)
	if err != nil {
		return err
	}
	f.asJSON = isJSON
	df := store.DeadFilter{Route: f.route, Reason: reason}
	if df.OlderThan, df.Until, err = ageOrTime("--older-than", f.olderThan); err != nil {
		return err
	}
	if df.NewerThan, df.Since, err = ageOrTime("--newer-than", newerThan); err != nil {
		return err
	}
	q, cfg, err := a.openQueue(f)
	var res observe.QueueOpResult
	live := false
	if sock := liveSocket(err, cfg); sock != "" {
		v := observe.ReplayQuery(df)
		if f.bridge != "" {
			v.Set("bridge", f.bridge)
		}
		if err := observe.AdminPost(a.Context(), sock, "/queue/replay?"+v.Encode(), &res); err != nil {
			return a.liveError(sock, err)
		}
		live = true
	} else if err != nil {
		return err
	} else if res, err = a.replayOffline(q, cfg, df); err != nil {
		return err
	}
	if f.asJSON {
		return a.WriteJSON(a.Stdout(), res)
	}
	printReplay(a.Stdout(), res, live)
	return nil
}

// printReplay prints a replay's result: the count per route, what was kept and
// why, and, when the daemon is stopped (not live), when the messages go out.
func printReplay(w io.Writer, res observe.QueueOpResult, live bool) {
	fmt.Fprintf(w, "replayed %d dead letters (filter: %s)\n", res.Count, res.Filter)
	for _, r := range res.Routes {
		fmt.Fprintf(w, "  %s: %d\n", r.Route, r.Count)
	}
	if res.Kept > 0 {
		fmt.Fprintf(w, "kept %d dead letters\n", res.Kept)
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.Route, s.Reason)
		}
	}
	if !live && res.Count > 0 {
		fmt.Fprintln(w, "the daemon is stopped: it sends them when it starts")
	}
}

// ageOrTime reads a replay age flag: a duration (36h, 7d) or a time
// (RFC 3339, or a date taken as midnight UTC).
func ageOrTime(flag, s string) (time.Duration, time.Time, error) {
	if s == "" {
		return 0, time.Time{}, nil
	}
	if d, err := config.ParseDuration(s); err == nil {
		if d.D() < time.Second {
			return 0, time.Time{}, usageError("queue replay: %s %q: want a duration of at least 1s", flag, s)
		}
		return d.D(), time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return 0, t, nil
		}
	}
	return 0, time.Time{}, usageError("queue replay: %s %q: want a duration such as 36h or 7d, or an RFC 3339 time such as 2026-12-01T08:00:00Z", flag, s)
}

// replayOffline is the replay on the stopped daemon's queue (q, closed
// here), audited in the config's audit file (the log without one).
func (a *app) replayOffline(q *store.Queue, cfg *config.Config, f store.DeadFilter) (observe.QueueOpResult, error) {
	log, err := a.Logger(cfg)
	if err != nil {
		q.Close()
		return observe.QueueOpResult{}, err
	}
	ao := audit.Options{Log: log}
	if cfg != nil {
		ao.File, ao.Site, ao.Journal = cfg.Audit.File, cfg.Site, cfg.Audit.Journal
	}
	aud, err := audit.New(ao)
	if err != nil {
		q.Close()
		return observe.QueueOpResult{}, &ExitError{Code: 1, Err: fmt.Errorf("opening the audit log (a replay is audited): %w", err)}
	}
	res, err := observe.Replay(a.Context(), q, f, aud.Record)
	if cerr := q.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the queue after the replay: %w", cerr)
	}
	if cerr := aud.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the audit log: %w", cerr)
	}
	if err != nil {
		return res, &ExitError{Code: 1, Err: err}
	}
	return res, nil
}

// queuePeekJSON is `queue peek -o json` on the stopped daemon's queue: the
// same document the daemon answers (observe.QueuePeek).
func (a *app) queuePeekJSON(q *store.Queue, f *queueFlags) error {
	p := observe.QueuePeek{Dead: f.dead, Messages: []observe.QueueMessage{}}
	if f.dead {
		dls, err := q.DeadLetters(f.route, f.n)
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		for _, d := range dls {
			m := observe.QueueMessageOf(&d.Message)
			m.Reason = d.Reason
			p.Messages = append(p.Messages, m)
		}
	} else {
		ms, err := q.Peek(f.route, f.n)
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		for i := range ms {
			p.Messages = append(p.Messages, observe.QueueMessageOf(&ms[i]))
		}
	}
	return a.WriteJSON(a.Stdout(), p)
}
