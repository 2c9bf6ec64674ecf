package gateway

import (
	"context"
	"log/slog"
)

// componentHandler keeps exactly one `component` key on every line: a
// logger derived with With("component", X) replaces the component it was
// derived from instead of adding a second one (slog handlers append
// With attributes, so g.log.With("component", "broker") would otherwise
// print `component=gateway component=broker`). The component goes first on
// the line, before the other With attributes; a `component` given on the
// record itself wins.
type componentHandler struct {
	h         slog.Handler
	component string
}

// withComponents wraps l so that component attributes replace each other.
func withComponents(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(*componentHandler); ok {
		return l
	}
	return slog.New(&componentHandler{h: l.Handler()})
}

func (c *componentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return c.h.Enabled(ctx, l)
}

func (c *componentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &componentHandler{h: c.h, component: c.component}
	rest := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if a.Key == "component" {
			n.component = a.Value.String()
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) > 0 {
		n.h = n.h.WithAttrs(rest)
	}
	return n
}

// WithGroup fixes the component at the top level: attributes after a group
// belong to the group.
func (c *componentHandler) WithGroup(name string) slog.Handler {
	h := c.h
	if c.component != "" {
		h = h.WithAttrs([]slog.Attr{slog.String("component", c.component)})
	}
	return h.WithGroup(name)
}

func (c *componentHandler) Handle(ctx context.Context, r slog.Record) error {
	if c.component == "" {
		return c.h.Handle(ctx, r)
	}
	own := false
	r.Attrs(func(a slog.Attr) bool {
		own = a.Key == "component"
		return !own
	})
	if own {
		return c.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(slog.String("component", c.component))
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return c.h.Handle(ctx, out)
}
