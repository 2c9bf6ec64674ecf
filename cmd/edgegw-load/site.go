package main

// The simulated site: a site CA made by gateway/pki (the code path of
// `edgegw pki init` and `edgegw pki issue --batch`), one certificate per
// device, the building's registry and policies. A site is cached in a
// directory and reused while its shape (floors x devices per floor) matches.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
)

//go:embed policies/*.json
var policyFS embed.FS

// Roles of the building, in the order devices are numbered on each floor
// (the seed's worked example: 001-025 temperature, 026-050 occupancy,
// 051-075 light, 076-100 lock).
var roles = []struct{ typ, prefix, sub string }{
	{"temperature", "temp", "temp"}, {"occupancy", "occ", "occupancy"}, {"light", "light", "light"}, {"lock", "lock", "lock"},
}

// Service things of the simulation.
const (
	monitorThing   = "monitor"   // subscribes building/# (a local service)
	commanderThing = "commander" // publishes commands to lights and locks
	building       = "hq"
)

// Device is one simulated thing.
type Device struct {
	Name  string
	Role  string // temperature, occupancy, light, lock, service
	Floor int
	Index int // 1-based on its floor
}

// Topic is where the device publishes telemetry (allowed by its policy).
func (d Device) Topic() string {
	base := fmt.Sprintf("building/%s/floor/%02d/", building, d.Floor)
	switch d.Role {
	case "temperature":
		return base + "temp/" + d.Name
	case "occupancy":
		return base + "occupancy/" + d.Name
	case "light":
		return base + "light/" + d.Name + "/status"
	case "lock":
		return base + "lock/" + d.Name + "/audit"
	}
	return ""
}

// CmdTopic is where lights and locks receive commands ("" for sensors).
func (d Device) CmdTopic() string {
	switch d.Role {
	case "light", "lock":
		return fmt.Sprintf("building/%s/floor/%02d/%s/%s/cmd", building, d.Floor, d.Role, d.Name)
	}
	return ""
}

// Site is a generated site directory.
type Site struct {
	Dir     string
	Floors  int
	PerFlr  int
	Devices []Device

	mu    sync.Mutex
	certs map[string]*tls.Certificate
	pool  *x509.CertPool
}

// siteLayout numbers the layout of a generated site (policies, registry
// groups); a cached site of another layout is generated again.
// 2: every device may use its own Device Shadow (policies/shadow.json).
// 3: every device may renew its certificate over MQTT (edgegw-renew, enrol.RenewPolicy).
const siteLayout = 3

type siteMeta struct {
	Layout  int       `json:"layout"`
	Floors  int       `json:"floors"`
	PerFlr  int       `json:"per_floor"`
	Created time.Time `json:"created"`
}

func (s *Site) PKIDir() string      { return filepath.Join(s.Dir, "pki") }
func (s *Site) CertDir() string     { return filepath.Join(s.Dir, "certs") }
func (s *Site) DevicesFile() string { return filepath.Join(s.Dir, "devices.yaml") }
func (s *Site) PolicyDir() string   { return filepath.Join(s.Dir, "policies") }

func buildDevices(floors, perFloor int) []Device {
	var ds []Device
	for f := 1; f <= floors; f++ {
		for i := 1; i <= perFloor; i++ {
			r := roles[(i-1)*len(roles)/perFloor]
			ds = append(ds, Device{Name: fmt.Sprintf("%s-f%02d-%03d", r.prefix, f, i), Role: r.typ, Floor: f, Index: i})
		}
	}
	return ds
}

const registryHeader = `# The simulated building of edgegw-load: things are added by gateway/pki
# (the code path of ` + "`edgegw pki issue --batch`" + `); groups attach the role policies by type.
version: 1
default: {policies: []}
groups:
  - name: temperature-sensors
    match: {type: temperature}
    policies: [temperature, baseline, shadow, edgegw-renew]
  - name: occupancy-sensors
    match: {type: occupancy}
    policies: [occupancy, baseline, shadow, edgegw-renew]
  - name: lights
    match: {type: light}
    policies: [light, baseline, shadow, edgegw-renew]
  - name: locks
    match: {type: lock}
    policies: [lock, baseline, shadow, edgegw-renew]
things: []
`

// OpenSite returns the site in dir, generating it when absent or of another
// shape. perFloor must be a multiple of 4 (one quarter per role).
func OpenSite(ctx context.Context, dir string, floors, perFloor int) (*Site, bool, error) {
	if floors < 1 || perFloor < 4 || perFloor%4 != 0 || perFloor > 999 || floors > 99 {
		return nil, false, fmt.Errorf("site shape %dx%d: want 1-99 floors and 4-996 devices per floor, a multiple of 4", floors, perFloor)
	}
	s := &Site{Dir: dir, Floors: floors, PerFlr: perFloor, Devices: buildDevices(floors, perFloor), certs: map[string]*tls.Certificate{}}
	var m siteMeta
	if b, err := os.ReadFile(filepath.Join(dir, "site.json")); err == nil && json.Unmarshal(b, &m) == nil &&
		m.Layout == siteLayout && m.Floors == floors && m.PerFlr == perFloor {
		return s, true, s.loadPool()
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, false, fmt.Errorf("clearing site %s: %w", dir, err)
	}
	if err := s.generate(ctx); err != nil {
		return nil, false, fmt.Errorf("generating site %s: %w", dir, err)
	}
	return s, false, s.loadPool()
}

func (s *Site) generate(ctx context.Context) error {
	if err := os.MkdirAll(s.PolicyDir(), 0o755); err != nil {
		return err
	}
	ents, err := fs.ReadDir(policyFS, "policies")
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, _ := policyFS.ReadFile("policies/" + e.Name())
		if err := os.WriteFile(filepath.Join(s.PolicyDir(), e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	// The renewal scenario's requests: the product's own policy for it (no template: renewal
	// is CreateCertificateFromCsr alone).
	if err := os.WriteFile(filepath.Join(s.PolicyDir(), enrol.RenewPolicyName+".json"), enrol.RenewPolicy(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(s.DevicesFile(), []byte(registryHeader), 0o644); err != nil {
		return err
	}
	o := pki.Options{Dir: s.PKIDir(), Devices: s.DevicesFile()}
	if _, err := pki.Init(ctx, o, pki.InitOptions{CN: "edgegw-load site CA", Hosts: []string{"localhost", "127.0.0.1", "::1"}}); err != nil {
		return err
	}
	reqs := []pki.IssueRequest{
		{Thing: monitorThing, Type: "service", Policies: []string{"monitor"}},
		{Thing: commanderThing, Type: "service", Policies: []string{"commander"}},
	}
	for _, d := range s.Devices {
		reqs = append(reqs, pki.IssueRequest{Thing: d.Name, Type: d.Role,
			Attributes: map[string]string{"building": building, "floor": fmt.Sprintf("%02d", d.Floor)}})
	}
	if _, err := pki.Issue(ctx, o, s.CertDir(), reqs...); err != nil {
		return err
	}
	m, _ := json.Marshal(siteMeta{Layout: siteLayout, Floors: s.Floors, PerFlr: s.PerFlr, Created: time.Now().UTC()})
	return os.WriteFile(filepath.Join(s.Dir, "site.json"), m, 0o644)
}

func (s *Site) loadPool() error {
	b, err := os.ReadFile(filepath.Join(s.PKIDir(), pki.CACertFile))
	if err != nil {
		return err
	}
	s.pool = x509.NewCertPool()
	if !s.pool.AppendCertsFromPEM(b) {
		return errors.New("no CA certificate in " + pki.CACertFile)
	}
	return nil
}

// Cert returns the thing's client certificate (loaded once).
func (s *Site) Cert(thing string) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.certs[thing]; c != nil {
		return c, nil
	}
	c, err := tls.LoadX509KeyPair(filepath.Join(s.CertDir(), thing+".crt"), filepath.Join(s.CertDir(), thing+".key"))
	if err != nil {
		return nil, fmt.Errorf("loading certificate of %s: %w", thing, err)
	}
	s.certs[thing] = &c
	return &c, nil
}

// TLSConfig is a device's client TLS configuration.
func (s *Site) TLSConfig(thing string) (*tls.Config, error) {
	c, err := s.Cert(thing)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: s.pool, Certificates: []tls.Certificate{*c}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// ByRole returns the devices of one role.
func (s *Site) ByRole(role string) []Device {
	var out []Device
	for _, d := range s.Devices {
		if d.Role == role {
			out = append(out, d)
		}
	}
	return out
}

// GatewayConfig is what the tool writes as edgegw.yaml for one run.
type GatewayConfig struct {
	Listen   string // 127.0.0.1:PORT
	RunDir   string // queue, audit, state
	Metrics  string // "" none
	Upstream string // "" no bridge; else mqtt://127.0.0.1:PORT or mqtts://127.0.0.1:PORT
	// UpstreamTLS is the gateway's trust and identity towards an mqtts:// upstream.
	UpstreamTLS *UpstreamPKI
	// Route limits of the outbound route (chaos: small, to force drops).
	RouteMaxMessages int64
	RouteMaxBytes    string
	CmdRoute         bool // an inbound route for commands
	LogLevel         string
	WriteQueue       int // limits.client_write_queue; 0 = default
	// Enrol adds an enrolment section on the site CA (renewal over MQTT) with this
	// renewal_grace; 0 = none.
	Enrol time.Duration
}

// WriteConfig writes RunDir/edgegw.yaml and returns its path.
func (s *Site) WriteConfig(g GatewayConfig) (string, error) {
	if err := os.MkdirAll(g.RunDir, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	wq := ""
	if g.WriteQueue > 0 {
		wq = fmt.Sprintf("  client_write_queue: %d\n", g.WriteQueue)
	}
	lvl := g.LogLevel
	if lvl == "" {
		lvl = "warn"
	}
	fmt.Fprintf(&b, `# written by edgegw-load for one run
version: 1
site: %s
state_dir: %s
log: {level: %s}
listeners:
  - name: lan
    address: %q
    tls:
      ca: %s
      cert: %s
      key: "file:%s"
      crl: %s
      min_version: "1.2"
devices: %s
policies: %s
store:
  dir: %s
  max_bytes: 1GiB
  min_free: 16MiB
limits:
  max_pending_handshakes: 512
  max_clients: 5000
%s`, building, filepath.Join(g.RunDir, "state"), lvl, g.Listen,
		filepath.Join(s.PKIDir(), "ca.crt"), filepath.Join(s.PKIDir(), "server.crt"), filepath.Join(s.PKIDir(), "server.key"),
		filepath.Join(s.PKIDir(), "crl.pem"), s.DevicesFile(), s.PolicyDir()+"/", filepath.Join(g.RunDir, "queue"), wq)
	if g.Metrics != "" {
		fmt.Fprintf(&b, "metrics: {address: %q}\n", g.Metrics)
	} else {
		b.WriteString("metrics: {address: \"\"}\n")
	}
	fmt.Fprintf(&b, "admin: {socket: %s}\naudit: {file: %s}\n", filepath.Join(g.RunDir, "admin.sock"), filepath.Join(g.RunDir, "audit.log"))
	b.WriteString("shadows: {}\n") // every device has its own Device Shadow
	if g.Enrol > 0 {
		// Renewal only: a template is required, CreateCertificateFromCsr never uses it.
		fmt.Fprintf(&b, `enrolment:
  pki_dir: %s
  renewal_grace: %s
  templates:
    - name: renewal
      thing_name: "${AWS::IoT::Certificate::CommonName}"
`, s.PKIDir(), g.Enrol)
	}
	if g.Upstream != "" {
		fmt.Fprintf(&b, `bridge:
  upstreams: [{url: %q}]
  client_id: %s
  keepalive: 5s
  connect_timeout: 2s
  backoff: {min: 100ms, max: 1s}
`, g.Upstream, gatewayThing)
		if p := g.UpstreamTLS; p != nil {
			fmt.Fprintf(&b, "  tls: {ca: %s, cert: %s, key: \"file:%s\"}\n", p.CA(), p.Cert(gatewayThing), p.Key(gatewayThing))
		}
		fmt.Fprintf(&b, `  routes:
    - name: telemetry
      topic: "building/#"
      direction: out
      qos: 1
      remote_prefix: "sites/%s/"
`, building)
		if g.RouteMaxMessages > 0 {
			fmt.Fprintf(&b, "      max_messages: %d\n", g.RouteMaxMessages)
		}
		if g.RouteMaxBytes != "" {
			fmt.Fprintf(&b, "      max_bytes: %s\n", g.RouteMaxBytes)
		}
		b.WriteString("      overflow: drop-oldest\n")
		if g.CmdRoute {
			fmt.Fprintf(&b, `    - name: commands
      topic: "building/+/floor/+/+/+/cmd"
      direction: in
      qos: 1
      remote_prefix: "sites/%s/"
`, building)
		}
	}
	p := filepath.Join(g.RunDir, "edgegw.yaml")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}
