package broker

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestNoPayloadInLogs: publishes that mochi refuses or fails log the packet
// (at Error and Debug); the payload never reaches the log, at any level.
func TestNoPayloadInLogs(t *testing.T) {
	var out gatewaytest.Buffer
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "SECRET-7f3a"
	// Retain without iot:RetainPublish: the hook refuses with 0x87, which
	// mochi logs at Error with the packet.
	if rc, _ := a.Publish(t, "sensors/sensor-a/temp", 1, true, secret); rc != 0x87 {
		t.Fatalf("retained publish: PUBACK 0x%02x; want 0x87", rc)
	}
	// Another device's topic: refused in the ACL check.
	if rc, _ := a.Publish(t, "sensors/sensor-b/temp", 1, false, secret); rc != 0x87 {
		t.Fatalf("forged publish: PUBACK 0x%02x; want 0x87", rc)
	}
	if rc, err := a.Publish(t, "sensors/sensor-a/temp", 1, false, secret); rc != 0 || err != nil {
		t.Fatalf("own topic: 0x%02x %v", rc, err)
	}
	log := out.String()
	if !strings.Contains(log, "publish packet error") {
		t.Fatalf("mochi's refusal log line is missing (the test no longer exercises it):\n%s", log)
	}
	if !strings.Contains(log, "packet.payload_bytes=11") {
		t.Errorf("the refused packet is not summarized (packet.payload_bytes=11):\n%s", log)
	}
	asBytes := strings.Trim(fmt.Sprint([]byte(secret)), "[]") // how %v prints a []byte field
	for _, leak := range []string{secret, asBytes} {
		if strings.Contains(log, leak) {
			t.Errorf("the log holds the payload (%q):\n%s", leak, log)
		}
	}
}

// A sensor that drops its connection without DISCONNECT (power loss) is
// routine: mochi's listener reports it as Warn with an empty message; the
// log gets a Debug line that names it, and nothing at Info.
func TestDroppedConnectionLogsQuietly(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		t.Run(level.String(), func(t *testing.T) {
			var out gatewaytest.Buffer
			e := newEnv(t, func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
			})
			conn := e.dialThing(t, "sensor-a")
			a, err := gatewaytest.ConnectV5(t, conn, "sensor-a")
			if err != nil || a.Ack.ReasonCode != 0 {
				t.Fatalf("connect: %v", err)
			}
			conn.Close() // no DISCONNECT
			eventually(t, "the broker lets the dropped client go", func() bool { return e.b.Clients() == 0 })
			if level == slog.LevelDebug { // the listener logs after OnDisconnect returned
				eventually(t, "the drop is logged", func() bool { return strings.Contains(out.String(), "client connection closed") })
			}
			log := out.String()
			if strings.Contains(log, `msg=""`) {
				t.Errorf("a line without a message:\n%s", log)
			}
			if strings.Contains(log, "level=WARN") {
				t.Errorf("a dropped connection logged a warning:\n%s", log)
			}
			want := level == slog.LevelDebug
			if got := strings.Contains(log, `level=DEBUG msg="client connection closed"`); got != want {
				t.Errorf("Debug line for the drop present: %v, want %v:\n%s", got, want, log)
			}
		})
	}
}
