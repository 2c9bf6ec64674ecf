package observe

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/presence"
	"github.com/edgegw/edgegw/store"
	"golang.org/x/crypto/bcrypt"
)

type pageQueue struct{ st store.Stats }

func (f pageQueue) Stats() store.Stats { return f.st }

type fakePresence []presence.Device

func (f fakePresence) Devices() []presence.Device { return f }

type fakeThings map[string]string

func (f fakeThings) ThingType(name string) (string, bool) { t, ok := f[name]; return t, ok }

// TestStatusPageRoutes: the page shows each route's depth, oldest age, drops
// and dead letters, and the devices with their state.
func TestStatusPageRoutes(t *testing.T) {
	cfg := &config.Config{Site: "plant-7", Metrics: config.MetricsConfig{Address: "127.0.0.1:9641"}}
	o := New(cfg, nil)
	o.queue = pageQueue{store.Stats{Depth: 120, Routes: []store.RouteStats{{Name: "telemetry", Depth: 120, OldestAge: 95 * time.Second,
		Drops: map[string]uint64{"max-age": 2, "overflow-count": 1}, DeadLetters: 4}}}}
	o.presence = fakePresence{{Thing: "temp-1", State: presence.Online, Connected: true}, {Thing: "temp-2", State: presence.Offline, LastSeen: time.Now().Add(-time.Hour)}}
	o.guard = &pageGuard{open: cfg.Metrics.StatusPageOpen()}
	rec := httptest.NewRecorder()
	o.serveStatusPage(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d; want 200: %s", rec.Code, body)
	}
	for _, want := range []string{"<td>telemetry</td><td>120</td><td>1m35s</td>", `<td class="warn">3</td><td class="bad">4</td>`,
		`id="online-count">1<`, `id="offline-count" class="bad">1<`, `data-thing="temp-2"`, "1h0m ago"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestStatusPageAccess(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw := listen.Passwords{"engineer": hash}
	cert := func(cn string) *tls.ConnectionState {
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
	things := fakeThings{"laptop": config.OperatorType, "temp-1": "temperature"}
	tests := []struct {
		name       string
		guard      pageGuard
		tls        *tls.ConnectionState
		user, pass string
		want       int
	}{
		{name: "loopback, no TLS", guard: pageGuard{open: true}, want: 200},
		{name: "LAN without TLS", guard: pageGuard{}, want: 403},
		{name: "operator certificate", guard: pageGuard{tls: true}, tls: cert("laptop"), want: 200},
		{name: "sensor certificate", guard: pageGuard{tls: true}, tls: cert("temp-1"), want: 403},
		{name: "unlisted certificate", guard: pageGuard{tls: true}, tls: cert("stranger"), want: 403},
		{name: "basic auth", guard: pageGuard{tls: true, passwords: pw}, user: "engineer", pass: "pw", want: 200},
		{name: "basic auth, wrong password", guard: pageGuard{tls: true, passwords: pw}, user: "engineer", pass: "x", want: 401},
		{name: "basic auth, sensor certificate, no password", guard: pageGuard{tls: true, passwords: pw}, tls: cert("temp-1"), want: 401},
		{name: "basic auth configured, operator certificate", guard: pageGuard{tls: true, passwords: pw}, tls: cert("laptop"), want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &Observer{guard: &tt.guard, things: things}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.TLS = tt.tls
			if tt.user != "" {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			if got, why := o.pageAccess(r); got != tt.want {
				t.Errorf("got %d (%s); want %d", got, why, tt.want)
			}
		})
	}
}

// TestPresenceStatusCap: status lists the longest silent things, capped
// unless all are asked for; counts always cover everything.
func TestPresenceStatusCap(t *testing.T) {
	var devs fakePresence
	now := time.Now()
	for i := range 30 {
		devs = append(devs, presence.Device{Thing: fmt.Sprintf("t-%02d", i), State: presence.Offline, LastSeen: now.Add(-time.Duration(i) * time.Minute)})
	}
	devs = append(devs, presence.Device{Thing: "never", State: presence.NeverSeen}, presence.Device{Thing: "on", State: presence.Online})
	o := &Observer{presence: devs}
	tests := []struct {
		name      string
		all       bool
		listed    int
		truncated int
		first     string
	}{
		{name: "capped", listed: statusOfflineCap, truncated: 31 - statusOfflineCap, first: "never"},
		{name: "all", all: true, listed: 31, first: "never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := o.presenceStatus(tt.all)
			if len(ps.NotConnected) != tt.listed || ps.Truncated != tt.truncated || ps.NotConnected[0].Thing != tt.first {
				t.Errorf("got %d listed, %d truncated, first %s; want %d, %d, %s", len(ps.NotConnected), ps.Truncated, ps.NotConnected[0].Thing, tt.listed, tt.truncated, tt.first)
			}
			if ps.NotConnected[1].Thing != "t-29" {
				t.Errorf("second: got %s; want t-29, the longest silent", ps.NotConnected[1].Thing)
			}
			if ps.Counts["offline"] != 30 || ps.Counts["online"] != 1 || ps.Registered != 32 {
				t.Errorf("counts %v, registered %d; want 30 offline, 1 online, 32 registered", ps.Counts, ps.Registered)
			}
		})
	}
}

// TestStatusPageSeveralBridges: with several bridges every queue's routes
// are shown, named bridge/route.
func TestStatusPageSeveralBridges(t *testing.T) {
	cfg := &config.Config{Site: "plant-7", Metrics: config.MetricsConfig{Address: "127.0.0.1:9641"}}
	o := New(cfg, nil)
	o.setSources(Sources{Bridges: []BridgeSource{
		{Name: "cloud", Queue: pageQueue{store.Stats{Routes: []store.RouteStats{{Name: "telemetry", Depth: 7}}}}},
		{Name: "lab", Queue: pageQueue{store.Stats{Routes: []store.RouteStats{{Name: "metrics", Depth: 9}}}}},
	}})
	o.guard = &pageGuard{open: true}
	rec := httptest.NewRecorder()
	o.serveStatusPage(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	for _, want := range []string{"<td>cloud/telemetry</td><td>7</td>", "<td>lab/metrics</td><td>9</td>"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
