package enrolrun

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/pki"
)

// fakeBroker records what SetEnrol installed.
type fakeBroker struct {
	mu    sync.Mutex
	calls []broker.EnrolService
}

func (b *fakeBroker) SetEnrol(s broker.EnrolService) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, s)
}

type nopAuditor struct{}

func (nopAuditor) Record(audit.Event) {}

// siteConfig writes a site (devices, policies) with an enrolment section whose pki_dir is
// pki, and parses it.
func siteConfig(t *testing.T, dir string, withEnrolment bool) *config.Config {
	t.Helper()
	gatewaytest.WriteSite(t, dir)
	src := `version: 1
site: lab
state_dir: state
listeners: [{name: l, address: "127.0.0.1:1883"}]
devices: devices.yaml
policies: policies/
metrics: {address: ""}
audit: {file: ""}
admin: {socket: ""}
`
	if withEnrolment {
		src += `enrolment:
  pki_dir: pki
  templates:
    - name: sensors
      thing_name: "sensor-${SerialNumber}"
      parameters: [{name: SerialNumber}]
      policies: [sensor]
`
	}
	cfg, err := config.Parse(filepath.Join(dir, "edgegw.yaml"), dir, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Open installs the service on the broker and Close takes it off again (the provisioning
// topics become ordinary topics); without an enrolment section nothing is opened, and the
// nil Enrolment is safe to use.
func TestOpenInstallsAndCloseRemoves(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	b := &fakeBroker{}
	e, err := Open(siteConfig(t, dir, false), b, nopAuditor{}, log)
	if e != nil || err != nil {
		t.Fatalf("no enrolment section: got %v, %v; want nil, nil", e, err)
	}
	e.Close()
	if e.Service() != nil || len(b.calls) != 0 {
		t.Fatalf("no enrolment section: service %v, SetEnrol calls %d; want none", e.Service(), len(b.calls))
	}

	cfg := siteConfig(t, dir, true)
	if _, err := pki.Init(context.Background(), pki.Options{Dir: filepath.Join(dir, "pki")}, pki.InitOptions{CN: "test CA"}); err != nil {
		t.Fatal(err)
	}
	if e, err = Open(cfg, b, nopAuditor{}, log); err != nil {
		t.Fatal(err)
	}
	if e.Service() == nil || len(b.calls) != 1 || b.calls[0] != broker.EnrolService(e.Service()) {
		t.Fatalf("SetEnrol calls %v; want the service %p installed once", b.calls, e.Service())
	}
	e.Close()
	if len(b.calls) != 2 || b.calls[1] != nil {
		t.Fatalf("SetEnrol calls %v; want the service taken off (nil) by Close", b.calls)
	}
}

// Preflight names the missing site CA at enrolment.pki_dir and writes nothing.
func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	if err := Preflight(siteConfig(t, dir, false), nil); err != nil {
		t.Fatalf("no enrolment section: %v", err)
	}
	cfg := siteConfig(t, dir, true)
	err := Preflight(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "enrolment.pki_dir: "+filepath.Join(dir, "pki")+": no site CA there") {
		t.Fatalf("got %v; want the missing site CA at enrolment.pki_dir", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pki")); !os.IsNotExist(err) {
		t.Errorf("preflight made %s (stat err %v); it must write nothing", filepath.Join(dir, "pki"), err)
	}
}

// Every enrolment event becomes its audit event; a refusal carries its code and message.
func TestEnrolAudit(t *testing.T) {
	for _, tc := range []struct {
		in   enrol.Event
		want audit.Event
	}{
		{enrol.Event{Kind: enrol.EventIssued, Device: "sensor-1", Serial: "0a", Caller: "01"},
			audit.Event{Event: audit.EventEnrolIssued, Device: "sensor-1", Serial: "0a", Resource: "certificate/01"}},
		{enrol.Event{Kind: enrol.EventIssued, Device: "sensor-1", Serial: "0b", Renewal: true},
			audit.Event{Event: audit.EventEnrolRenewed, Device: "sensor-1", Serial: "0b"}},
		{enrol.Event{Kind: enrol.EventRegistered, Device: "sensor-1", ClientID: "sensor-1"},
			audit.Event{Event: audit.EventEnrolRegistered, Device: "sensor-1", ClientID: "sensor-1"}},
		{enrol.Event{Kind: enrol.EventRefused, Device: "x", Code: "InvalidCSR", Reason: "bad signature"},
			audit.Event{Event: audit.EventEnrolRefused, Device: "x", Reason: "InvalidCSR: bad signature"}},
		{enrol.Event{Kind: enrol.EventSuperseded, Serial: "0a"}, audit.Event{Event: audit.EventEnrolSuperseded, Serial: "0a"}},
		{enrol.Event{Kind: enrol.EventAbandoned, Serial: "0c"}, audit.Event{Event: audit.EventEnrolAbandoned, Serial: "0c"}},
	} {
		if got := enrolAudit(tc.in); got != tc.want {
			t.Errorf("enrolAudit(%+v) = %+v; want %+v", tc.in, got, tc.want)
		}
	}
}
