package main

// The queue commands while the daemon runs: the daemon holds the queue's
// lock, so peek, export, purge and replay go through its admin socket
// (observe's queue operations), where each is audited.

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/store"
)

// liveSocket is the admin socket to ask when openQueue failed because the
// daemon holds the queue ("" otherwise: the error stands).
func liveSocket(err error, cfg *config.Config) string {
	var ee *exitError
	if err != nil && errors.As(err, &ee) && ee.err != nil && ee.err.Error() == errDaemonRunning && cfg != nil {
		return cfg.Admin.Socket
	}
	return ""
}

func (a *app) liveError(sock string, err error) error {
	if errors.Is(err, observe.ErrNotRunning) {
		return &exitError{code: 1, err: fmt.Errorf("the queue is locked but no daemon answers at %s: %w", sock, err)}
	}
	return adminError(sock, err)
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
	if err := observe.AdminGet(a.ctx, sock, "/queue/peek?"+v.Encode(), &p); err != nil {
		return a.liveError(sock, err)
	}
	if f.asJSON {
		return writeJSONOut(a.stdout, p)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
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
	if err := observe.AdminCopy(a.ctx, sock, "/queue/export?"+queueQuery(f, f.dead).Encode(), a.stdout); err != nil {
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
	if err := observe.AdminPost(a.ctx, sock, "/queue/purge?"+v.Encode(), &res); err != nil {
		return a.liveError(sock, err)
	}
	if f.asJSON {
		return writeJSONOut(a.stdout, res)
	}
	what := "messages"
	if f.dead {
		what = "dead letters"
	}
	fmt.Fprintf(a.stdout, "purged %d %s from route %s (daemon running)\n", res.Count, what, f.route)
	return nil
}

// newQueueReplayCmd is `edgegw queue replay`: dead letters back into their
// route, through the running daemon.
func newQueueReplayCmd(a *app, f *queueFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "replay [--route R] [--older-than D] [--reason TEXT]",
		Short: "Send dead letters again: back into their route, in order (daemon running)",
		Long: `Replay moves the dead letters (messages the upstream refused, e.g. for an ACL that has
since been fixed) back into their route: they are queued again in their order, behind
what the route holds, and sent by the bridge; only then are they removed from the
dead-letter area. It needs the running daemon (edgegw status) and is audited.

The queue removes dead letters a route at a time: --older-than and --reason select
routes whose dead letters all match; a route with others is skipped and named.

Exit status: 0 replayed (the count may be 0), 1 error or a route skipped.`,
		Example: `  edgegw queue replay
  edgegw queue replay --route telemetry`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(f.output, f.asJSON)
			if err != nil {
				return err
			}
			f.asJSON = isJSON
			v := queueQuery(f, false)
			if f.olderThan != "" {
				d, err := config.ParseDuration(f.olderThan)
				if err != nil || d.D() < time.Second {
					return usageError("queue replay: --older-than %q: want a positive duration such as 36h or 7d", f.olderThan)
				}
				v.Set("older_than_seconds", strconv.FormatInt(int64(d.D()/time.Second), 10))
			}
			if reason != "" {
				v.Set("reason", reason)
			}
			cfg, err := config.Load(f.config)
			if err != nil {
				return a.reportConfigError(err)
			}
			if cfg.Admin.Socket == "" {
				return &exitError{code: 1, err: fmt.Errorf("%s: admin.socket is \"\": replay needs the daemon's admin socket", f.config)}
			}
			var res observe.QueueOpResult
			if err := observe.AdminPost(a.ctx, cfg.Admin.Socket, "/queue/replay?"+v.Encode(), &res); err != nil {
				return adminError(cfg.Admin.Socket, err)
			}
			if f.asJSON {
				if err := writeJSONOut(a.stdout, res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "replayed %d dead letters\n", res.Count)
				for _, r := range res.Routes {
					fmt.Fprintf(a.stdout, "  %s: %d\n", r.Route, r.Count)
				}
				for _, s := range res.Skipped {
					fmt.Fprintf(a.stdout, "  skipped %s: %s\n", s.Route, s.Reason)
				}
			}
			if len(res.Skipped) > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.route, "route", "", "route name (default: every route with dead letters)")
	cmd.Flags().StringVar(&f.olderThan, "older-than", "", "only routes whose dead letters are all older than this (e.g. 1h)")
	cmd.Flags().StringVar(&reason, "reason", "", "only routes whose dead letters all have this reason (as queue peek --dead shows it)")
	outputFlags(cmd, &f.output, &f.asJSON)
	return cmd
}

// queuePeekJSON is `queue peek -o json` on the stopped daemon's queue: the
// same document the daemon answers (observe.QueuePeek).
func (a *app) queuePeekJSON(q *store.Queue, f *queueFlags) error {
	p := observe.QueuePeek{Dead: f.dead, Messages: []observe.QueueMessage{}}
	if f.dead {
		dls, err := q.DeadLetters(f.route, f.n)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		for _, d := range dls {
			m := observe.QueueMessageOf(&d.Message)
			m.Reason = d.Reason
			p.Messages = append(p.Messages, m)
		}
	} else {
		ms, err := q.Peek(f.route, f.n)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		for i := range ms {
			p.Messages = append(p.Messages, observe.QueueMessageOf(&ms[i]))
		}
	}
	return writeJSONOut(a.stdout, p)
}
