package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"

	"github.com/mochi-mqtt/server/v2/packets"
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

// WithComponents wraps l so that component attributes replace each other.
func WithComponents(l *slog.Logger) *slog.Logger {
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

// packetRedactor stands between mochi and the log. mochi passes whole
// packets as log attributes: at Error when a hook refuses a publish with a
// reason code ("publish packet error"), at Warn when processing a packet
// fails, at Debug when a publish is rejected or a delivery fails. A packet
// carries its payload, and payloads are never logged: a packet attribute
// becomes its type, topic, QoS, packet ID and payload length. It also gives
// mochi's one record without a message its message and level
// (connectionEnded). It hands mochi's "client store quota reached" warning,
// a delivery dropped without any hook, to quota and logs it at Debug
// (drops.go); so it is enabled at Warn whatever the log's level.
type packetRedactor struct {
	h     slog.Handler
	quota func(clientID string) // nil: none
}

func (p packetRedactor) Enabled(ctx context.Context, l slog.Level) bool {
	return (p.quota != nil && l == slog.LevelWarn) || p.h.Enabled(ctx, l)
}

func (p packetRedactor) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactPacket(a)
	}
	return packetRedactor{p.h.WithAttrs(red), p.quota}
}

func (p packetRedactor) WithGroup(name string) slog.Handler {
	return packetRedactor{p.h.WithGroup(name), p.quota}
}

func (p packetRedactor) Handle(ctx context.Context, r slog.Record) error {
	level, msg := r.Level, r.Message
	if id, ok := quotaRecord(r); ok && p.quota != nil {
		p.quota(id)
		level = quotaLevel
	}
	if msg == "" {
		level, msg = connectionEnded(r)
	}
	if !p.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactPacket(a))
		return true
	})
	return p.h.Handle(ctx, out)
}

// connectionEnded names mochi's one message-less record: its listeners log
// every connection that ends with an error as Warn "" (listeners/net.go,
// tcp.go), a sensor that closed its socket without DISCONNECT included. A
// plain close (EOF, reset, closed connection) is routine on a site where
// sensors lose power: it goes to Debug, as OnDisconnect's own line does
// (refused connects and failed handshakes are in the audit log). Any other
// error stays a warning, now with a message.
func connectionEnded(r slog.Record) (slog.Level, string) {
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if e, ok := a.Value.Resolve().Any().(error); ok && a.Key == "error" {
			err = e
		}
		return err == nil
	})
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return slog.LevelDebug, "client connection closed"
	}
	return r.Level, "client connection ended with an error"
}

func redactPacket(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, m := range g {
			red[i] = redactPacket(m)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
	default:
		return a
	}
	var pk *packets.Packet
	switch x := v.Any().(type) {
	case packets.Packet:
		pk = &x
	case *packets.Packet:
		pk = x
	case []byte: // a payload by itself
		return slog.Int(a.Key+"_bytes", len(x))
	default:
		return a
	}
	if pk == nil {
		return a
	}
	return slog.Group(a.Key,
		slog.String("type", packets.PacketNames[pk.FixedHeader.Type]),
		slog.String("topic", pk.TopicName),
		slog.Int("qos", int(pk.FixedHeader.Qos)),
		slog.Int("id", int(pk.PacketID)),
		slog.Int("payload_bytes", len(pk.Payload)))
}
