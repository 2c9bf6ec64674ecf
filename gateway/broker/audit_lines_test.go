package broker

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

func readAudit(t *testing.T, path string) []audit.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev audit.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, ev)
	}
	return out
}

// TestAuditRefusalsAndDisconnects: a revoked or expired device refused at
// the handshake is named in its audit line with its hex serial; an accepted
// client that goes away leaves a disconnect line with the reason and how
// long it was connected.
func TestAuditRefusalsAndDisconnects(t *testing.T) {
	e := newEnv(t, nil)
	revoked := e.pki.Issue(t, "sensor-b")
	e.pki.Revoke(t, revoked.Cert)
	if err := e.b.Reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	expired := e.pki.Issue(t, "sensor-a", gatewaytest.Expired())
	for _, c := range []*gatewaytest.Client{revoked, expired} {
		conn, err := e.dialTLS(t, c, e.pki)
		if err == nil {
			_, err = gatewaytest.ConnectV5(t, conn, c.Cert.Subject.CommonName)
		}
		if err == nil {
			t.Fatalf("%s connected; want refused", c.Cert.Subject.CommonName)
		}
	}
	ok, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil || ok.Ack.ReasonCode != 0 {
		t.Fatalf("sensor-a connect: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	_ = ok.C.Disconnect(&paho.Disconnect{ReasonCode: 0})
	for i := 0; i < 200 && e.b.Clients() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	e.b.audit.Close()

	evs := readAudit(t, e.audit)
	find := func(event, device string) *audit.Event {
		for i := range evs {
			if evs[i].Event == event && evs[i].Device == device {
				return &evs[i]
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		device string
		serial string
	}{
		{"revoked", "sensor-b", revoked.Cert.SerialNumber.Text(16)},
		{"expired", "sensor-a", expired.Cert.SerialNumber.Text(16)},
	} {
		ev := find(audit.EventHandshakeFailed, tc.device)
		switch {
		case ev == nil:
			t.Errorf("%s: no handshake_failed line with device %q in %+v", tc.name, tc.device, evs)
		case ev.Serial != tc.serial:
			t.Errorf("%s: serial %q; want %q (hex)", tc.name, ev.Serial, tc.serial)
		case strings.Contains(ev.Reason, revoked.Cert.SerialNumber.String()) && revoked.Cert.SerialNumber.String() != tc.serial:
			t.Errorf("%s: reason %q has the decimal serial; want hex", tc.name, ev.Reason)
		}
	}
	d := find(audit.EventDisconnect, "sensor-a")
	if d == nil {
		t.Fatalf("no disconnect line for sensor-a in %+v", evs)
	}
	if d.Reason != "client disconnected" || d.Duration <= 0 || d.Serial == "" || d.ClientID != "sensor-a" {
		t.Errorf("disconnect line %+v; want reason \"client disconnected\", a duration, the serial and client ID", *d)
	}
}
