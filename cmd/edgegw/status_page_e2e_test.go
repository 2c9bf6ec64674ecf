package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// chromium runs Debian's headless chromium with a fresh profile and returns
// its stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin := gatewaytest.Need(t, "chromium", "chromium")
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr (last 2 KiB): %s", args, err, gatewaytest.LastBytes(stderr.Bytes(), 2048))
	}
	return stdout.String()
}

// pageSite is a site made with edgegw's own pki: CA and server certificate
// (pki init), sensor-01..sensor-50 (type temperature) and the engineer's
// laptop (type operator) issued with `edgegw pki issue`.
type pageSite struct {
	dir, conf, certs string
	mqtt, metrics    string
	metricsExtra     string
}

const nSensors, nStopped = 50, 10

func newPageSite(t *testing.T) *pageSite {
	t.Helper()
	s := &pageSite{dir: t.TempDir()}
	s.conf, s.certs = filepath.Join(s.dir, "edgegw.yaml"), filepath.Join(s.dir, "certs")
	s.mqtt, s.metrics = gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	if err := os.MkdirAll(filepath.Join(s.dir, "state"), 0o750); err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteFile(t, filepath.Join(s.dir, "policies", "sensor.json"), []byte(gatewaytest.SensorPolicy), 0o644)
	s.writeConf(t)
	mustRun(t, "pki", "init", "-c", s.conf, "--host", "localhost", "--host", "127.0.0.1")
	var names []string
	for i := 1; i <= nSensors; i++ {
		names = append(names, fmt.Sprintf("sensor-%02d", i))
	}
	mustRun(t, append([]string{"pki", "issue", "-c", s.conf, "--type", "temperature", "--policy", "sensor", "--out", s.certs}, names...)...)
	mustRun(t, "pki", "issue", "-c", s.conf, "--type", "operator", "--out", s.certs, "laptop")
	return s
}

func (s *pageSite) writeConf(t *testing.T) {
	gatewaytest.WriteFile(t, s.conf, []byte(fmt.Sprintf(`version: 1
site: plant-7
state_dir: state
listeners:
  - name: lan
    address: %q
    tls: {ca: pki/ca.crt, cert: pki/server.crt, key: "file:pki/server.key", crl: pki/crl.pem}
devices: devices.yaml
policies: policies/
store: {dir: state/queue}
metrics:
  address: %q
%s
admin: {socket: state/admin.sock}
audit: {file: audit.log}
`, s.mqtt, s.metrics, s.metricsExtra)), 0o644)
}

// run starts the real binary on the site until the returned stop.
func (s *pageSite) run(t *testing.T) (stop func()) {
	t.Helper()
	log := new(gatewaytest.Buffer)
	cmd := exec.Command(gatewaytest.Edgegw(t), "run", "-c", s.conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		if !gatewaytest.Terminate(cmd.Process, exited, 15*time.Second) {
			t.Errorf("edgegw run did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("edgegw log (last 4 KiB):\n%s", gatewaytest.LastBytes([]byte(log.String()), 4096))
		}
	}
	t.Cleanup(stop)
	gatewaytest.WaitListening(t, s.mqtt, 20*time.Second)
	gatewaytest.WaitListening(t, s.metrics, 20*time.Second)
	return stop
}

func (s *pageSite) tlsFor(t *testing.T, thing string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(s.dir, "pki", "ca.crt"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("reading the site CA: %v", err)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if thing != "" {
		c, err := tls.LoadX509KeyPair(filepath.Join(s.certs, thing+".crt"), filepath.Join(s.certs, thing+".key"))
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc
}

func (s *pageSite) sensor(t *testing.T, name string) *gatewaytest.V5 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.mqtt, s.tlsFor(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cl, err := gatewaytest.ConnectV5(t, conn, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cl
}

// get fetches the page over TLS as thing ("" = no client certificate).
func (s *pageSite) get(t *testing.T, thing, user, pass string) (int, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: s.tlsFor(t, thing)}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+s.metrics+"/", nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

var rowRE = regexp.MustCompile(`<tr class="device (\w+)" data-thing="([^"]+)"`)

// TestStatusPageChromiumE2E is the status page acceptance: a live
// `edgegw run` with 50 sensors of which 10 are stopped; Debian's headless
// chromium renders the page (DOM checked, screenshot saved), which shows 40
// online and names the 10; the search works. Then the metrics listener with
// TLS ("on the LAN"): without a client certificate the page is refused,
// a sensor's certificate is refused, the operator certificate from
// `edgegw pki issue --type operator` gets it; with basic_auth_file a
// password from the bcrypt file does too.
func TestStatusPageChromiumE2E(t *testing.T) {
	gatewaytest.Need(t, "chromium", "chromium")
	s := newPageSite(t)
	stop := s.run(t)
	clients := map[string]*gatewaytest.V5{}
	for i := 1; i <= nSensors; i++ {
		name := fmt.Sprintf("sensor-%02d", i)
		clients[name] = s.sensor(t, name)
	}
	var stopped []string
	for i := nSensors - nStopped + 1; i <= nSensors; i++ {
		name := fmt.Sprintf("sensor-%02d", i)
		_ = clients[name].C.Disconnect(&paho.Disconnect{})
		stopped = append(stopped, name)
	}
	for i := 0; ; i++ {
		l := devicesJSON(t, "-c", s.conf, "--offline")
		if l.Count == nStopped {
			break
		}
		if i == 250 {
			t.Fatalf("devices --offline: got %d; want %d", l.Count, nStopped)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Presence keeps each sensor's certificate: serial and expiry.
	for _, d := range devicesJSON(t, "-c", s.conf).Devices {
		if d.CertSerial == "" || d.CertNotAfter.Before(time.Now().Add(300*24*time.Hour)) {
			t.Errorf("%s: cert serial %q, not after %s; want the issued certificate (a year)", d.Thing, d.CertSerial, d.CertNotAfter)
		}
	}

	url := "http://" + s.metrics + "/"
	dom := chromium(t, "--dump-dom", url)
	if !strings.Contains(dom, `id="online-count">40<`) || !strings.Contains(dom, `id="offline-count" class="bad">10<`) {
		t.Errorf("DOM: got no 40 online / 10 offline counts:\n%s", gatewaytest.LastBytes([]byte(dom), 4096))
	}
	state := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(dom, -1) {
		state[m[2]] = m[1]
	}
	online := 0
	for _, st := range state {
		if st == "online" {
			online++
		}
	}
	if online != nSensors-nStopped || len(state) != nSensors {
		t.Errorf("DOM device rows: %d online of %d; want %d of %d (the laptop is not a device)", online, len(state), nSensors-nStopped, nSensors)
	}
	for _, name := range stopped {
		if state[name] != "offline" {
			t.Errorf("DOM: %s is %q; want offline", name, state[name])
		}
	}
	for _, want := range []string{"edgegw · plant-7", `id="health" class="ok">ok<`, `id="upstream" class="muted">no bridge`, `id="reload">`, "<td>server</td>", "none recently"} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, "http://") && strings.Contains(dom, "<link") || strings.Contains(dom, "<script src") {
		t.Errorf("DOM references an external asset")
	}

	// The search, run by chromium's JavaScript: ?q=offline hides the 40.
	dom = chromium(t, "--dump-dom", url+"?q=offline")
	if hidden := strings.Count(dom, `style="display: none;"`); hidden != nSensors-nStopped || !strings.Contains(dom, `id="shown" class="muted">10 shown<`) {
		t.Errorf("search for offline: %d rows hidden; want %d, and '10 shown'", hidden, nSensors-nStopped)
	}

	shot := filepath.Join(t.TempDir(), "status-page.png")
	chromium(t, "--screenshot="+shot, "--window-size=1280,2400", "--hide-scrollbars", url)
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10000 {
		t.Fatalf("screenshot %s: %d bytes, err %v; want a PNG", shot, len(png), err)
	}
	t.Logf("status page screenshot: %s (%d bytes)", shot, len(png))

	// On the LAN: TLS with client certificates from the site CA.
	stop()
	s.metricsExtra = "  tls: {ca: pki/ca.crt, cert: pki/server.crt, key: \"file:pki/server.key\"}"
	s.writeConf(t)
	stop = s.run(t)
	dom = chromium(t, "--ignore-certificate-errors", "--dump-dom", "https://"+s.metrics+"/")
	if strings.Contains(dom, "online-count") || strings.Contains(dom, "sensor-01") {
		t.Errorf("LAN page without a client certificate: chromium got the page; want it refused:\n%s", gatewaytest.LastBytes([]byte(dom), 2048))
	}
	if _, _, err := s.get(t, "", "", ""); err == nil {
		t.Errorf("LAN page without a client certificate: got an answer; want the TLS handshake refused")
	}
	if code, body, err := s.get(t, "sensor-01", "", ""); err != nil || code != http.StatusForbidden || !strings.Contains(body, "--type operator") {
		t.Errorf("LAN page with a sensor's certificate: %d %q %v; want 403 naming --type operator", code, body, err)
	}
	if code, body, err := s.get(t, "laptop", "", ""); err != nil || code != http.StatusOK || !strings.Contains(body, `id="offline-count"`) {
		t.Errorf("LAN page with the operator certificate: %d, err %v; want 200 and the page", code, err)
	}

	// Or basic auth from a bcrypt file (edgegw passwd's format).
	stop()
	if err := listen.SetPassword(filepath.Join(s.dir, "status.passwd"), "engineer", []byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	s.metricsExtra += "\n  basic_auth_file: status.passwd"
	s.writeConf(t)
	s.run(t)
	dom = chromium(t, "--ignore-certificate-errors", "--dump-dom", "https://"+s.metrics+"/")
	if strings.Contains(dom, "online-count") {
		t.Errorf("LAN page with basic auth, no credentials: chromium got the page; want it refused")
	}
	tests := []struct {
		name, user, pass string
		code             int
	}{
		{"right password", "engineer", "correct horse", http.StatusOK},
		{"wrong password", "engineer", "wrong", http.StatusUnauthorized},
		{"no credentials", "", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, err := s.get(t, "", tt.user, tt.pass)
			if err != nil || code != tt.code {
				t.Errorf("got %d, %v; want %d", code, err, tt.code)
			}
		})
	}
}
