package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
)

// TestInflightFullCounted: a subscriber that never acknowledges falls
// MaximumInflight messages behind; mochi drops every further QoS 1 delivery
// to it without calling a hook ("client store quota reached"). Each drop is
// counted in InflightFull (equal to mochi's own Info.InflightDropped), and
// audited for the subscriber: at most DenyBurst drop lines per window, the
// rest in a deny_suppressed summary, together adding up to the drops.
func TestInflightFullCounted(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "drops.log")
	e := newEnv(t, func(o *Options) {
		aud, err := audit.New(audit.Options{File: auditFile, DenyBurst: 3, DenyWindow: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { aud.Close() })
		o.Audit = aud
	})
	// The slow subscriber: MQTT 5 with Receive Maximum 1 (so one publisher
	// timeout marks it stuck and later publishes do not wait for it), reads
	// everything, acknowledges nothing.
	conn := e.dialThing(t, "monitor")
	sub := &raw{conn: conn, r: bufio.NewReader(conn), v: 5}
	one := uint16(1)
	sub.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect:    packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "monitor"},
		Properties: packets.Properties{ReceiveMaximum: one}})
	if pk, err := sub.read(t); err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("monitor CONNECT: %v %+v", err, pk.FixedHeader)
	}
	sub.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "sensors/#", Qos: 1}}})
	if pk, err := sub.read(t); err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("monitor SUBSCRIBE: %v %+v", err, pk.FixedHeader)
	}
	_ = conn.SetReadDeadline(time.Time{})
	drained := make(chan struct{})
	go func() { defer close(drained); _, _ = io.Copy(io.Discard, sub.r) }()
	t.Cleanup(func() { conn.Close(); <-drained })

	pub, err := e.connectV5(t, e.pki.Issue(t, "load-00"), "load-00")
	if err != nil {
		t.Fatal(err)
	}
	limit := int(e.b.srv.Options.Capabilities.MaximumInflight)
	over := 40
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range limit + over {
		if _, err := pub.C.Publish(ctx, &paho.Publish{Topic: "sensors/load-00/t", QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// The last PUBACK can precede the last delivery attempt (pipelined
	// acknowledgements, pipeline.go): wait, bounded, for the drops.
	var full, dropped int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		full = e.metrics.InflightFull.Load()
		dropped = full + e.metrics.DroppedQoS1.Load()
		if dropped >= int64(over) || time.Now().After(deadline) {
			break
		}
	}
	if full == 0 || dropped != int64(over) {
		mc, _ := e.b.srv.Clients.Get("monitor")
		t.Fatalf("in-flight limit drops %d, write-queue drops %d; want %d dropped in all, some at the in-flight limit (inflight %d, info %d, mochi dropped %d)", full, dropped-full, over, mc.State.Inflight.Len(), e.b.srv.Info.Inflight, e.b.srv.Info.InflightDropped)
	}
	if mochi := e.b.srv.Info.InflightDropped; full != mochi {
		t.Fatalf("InflightFull %d; mochi's Info.InflightDropped %d: mochi dropped deliveries we did not see", full, mochi)
	}
	// Audit: drop lines for monitor (at most the burst per window) plus the
	// suppressed counts add up to the drops; the summary comes when the
	// window ends (bounded wait).
	var lines, suppressed int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		lines, suppressed = 0, 0
		for _, ev := range auditLines(t, auditFile) {
			switch {
			case ev.Event == audit.EventDrop && ev.Device == "monitor":
				lines++
				if !strings.Contains(ev.Reason, "in flight") && !strings.Contains(ev.Reason, "write queue full") {
					t.Fatalf("drop line reason %q", ev.Reason)
				}
			case ev.Event == audit.EventDenySuppressed && ev.Device == "monitor" && ev.Reason == audit.EventDrop:
				suppressed += int64(ev.Count)
			}
		}
		if lines+suppressed == dropped || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lines+suppressed != dropped || suppressed == 0 {
		t.Fatalf("audit: %d drop lines + %d suppressed; want %d, rate limited", lines, suppressed, dropped)
	}
	t.Logf("in-flight limit %d: %d drops at the limit, %d at the write queue; audit: %d lines, %d in summaries", limit, full, dropped-full, lines, suppressed)
}

// auditLines reads the complete lines of an audit file being written.
func auditLines(t *testing.T, path string) []audit.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	} else {
		return nil
	}
	var out []audit.Event
	for _, l := range bytes.Split(data, []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, ev)
	}
	return out
}

// TestQuotaWarningCountedAtDebug: mochi's per-drop "client store quota
// reached" warning reaches the counter even when the log is above Warn,
// names the client, and is written at Debug only; other warnings are left
// as they are.
func TestQuotaWarningCountedAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelError, slog.LevelDebug} {
		var buf bytes.Buffer
		var got []string
		log := slog.New(packetRedactor{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}), func(id string) { got = append(got, id) }})
		log.Warn(mochiQuotaReached, "client", "sensor-7", "listener", "lan")
		log.Warn("some other warning", "client", "sensor-8")
		if len(got) != 1 || got[0] != "sensor-7" {
			t.Errorf("log at %v: quota callback got %q; want [sensor-7]", level, got)
		}
		out := buf.String()
		if strings.Contains(out, "level=WARN msg=\""+mochiQuotaReached) {
			t.Errorf("log at %v: the quota record is still a warning: %q", level, out)
		}
		wantQuota := level == slog.LevelDebug
		if strings.Contains(out, "level=DEBUG msg=\""+mochiQuotaReached+"\" client=sensor-7") != wantQuota {
			t.Errorf("log at %v: quota record at Debug written: %v; want %v (%q)", level, !wantQuota, wantQuota, out)
		}
		if strings.Contains(out, "level=WARN msg=\"some other warning\"") == (level == slog.LevelError) {
			t.Errorf("log at %v: other warning wrongly filtered: %q", level, out)
		}
	}
}
