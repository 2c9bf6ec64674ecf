package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/pki"
)

// enrolHook is a minimal broker wiring of enrol.Service on a bare mochi broker, so this test
// exercises the service over MQTT apart from edgegw's broker (whose wiring,
// gateway/broker/enrol.go, TestE2EEnrolThroughBroker tests): it intercepts PUBLISHes to enrol.Filters, builds the Caller from the verified client
// certificate, and writes each response to the requesting connection only.
type enrolHook struct {
	mqtt.HookBase
	svc *enrol.Service
	t   *testing.T
}

func (h *enrolHook) ID() string { return "enrol-test" }
func (h *enrolHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish}, []byte{b})
}
func (h *enrolHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *enrolHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

func (h *enrolHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !enrol.Handles(pk.TopicName) {
		return pk, nil
	}
	st := cl.Net.Conn.(*tls.Conn).ConnectionState()
	leaf := st.VerifiedChains[0][0]
	caller := enrol.Caller{ClientID: cl.ID, ThingName: leaf.Subject.CommonName, Claim: enrol.IsClaimCert(leaf),
		Serial: pki.SerialHex(leaf.SerialNumber), Cert: leaf, Source: cl.Net.Remote}
	for _, r := range h.svc.Handle(context.Background(), enrol.Request{Topic: pk.TopicName, Payload: pk.Payload, Caller: caller}) {
		out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: r.Topic, Payload: r.Payload}
		if err := cl.WritePacket(out); err != nil {
			h.t.Errorf("writing %s to %s: %v", r.Topic, cl.ID, err)
		}
	}
	return pk, nil
}

// A sensor simulated with Debian's mosquitto clients enrols by claim: mosquitto_rr (one
// connection: subscribe to the expected answer, publish the request) with the claim certificate sends a
// CSR made by openssl and gets its certificate and token, then registers the thing with the
// template's parameters; the registry gets the thing with the template's type, attributes and
// policy. The sensor then connects to the real edgegw daemon with its new certificate and
// publishes under its own policy. Then it renews over MQTT with its own certificate; once the
// new certificate has connected, the sweep revokes the old one and the gateway refuses it. The
// MQTT hop of enrolment goes through a bare mochi broker with a minimal hook (and the test
// calls Connected and Sweep); TestE2EEnrolThroughBroker does it all through the daemon.
func TestE2EEnrolByClaim(t *testing.T) {
	openssl := needTool(t, "openssl", "openssl")
	rr := needTool(t, "mosquitto_rr", "mosquitto-clients")
	mosqPub := needTool(t, "mosquitto_pub", "mosquitto-clients")
	root := t.TempDir()
	addr := gatewaytest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := writeEnrolSite(t, root, addr, "")
	if err := os.MkdirAll(filepath.Join(root, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "pki", "init", "-c", conf, "--host", "localhost", "--host", "127.0.0.1")
	claimDir := filepath.Join(root, "claim")
	mustRun(t, "pki", "claim", "-c", conf, "batch7", "--template", "sensors", "--out", claimDir)

	pkiDir := filepath.Join(root, "pki")
	floor := "0"
	svc, err := enrol.New(enrol.Options{PKI: pki.Options{Dir: pkiDir, Devices: filepath.Join(root, "devices.yaml")}, Config: enrol.Config{
		Templates: []enrol.Template{{Name: "sensors", ThingName: "sensor-${SerialNumber}", ThingType: "temperature",
			Parameters: []enrol.Parameter{{Name: "SerialNumber", Pattern: "[0-9A-F]{4}"}, {Name: "Floor", Default: &floor}},
			Attributes: map[string]string{"floor": "${Floor}"}, Policies: []string{"temperature"},
			DeviceConfiguration: map[string]string{"reportInterval": "60"}}}}})
	if err != nil {
		t.Fatal(err)
	}

	// The enrolment broker: mTLS with the site CA, the stand-in hook.
	srvCert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "server.crt"), filepath.Join(pkiDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	broker := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.DiscardHandler)})
	if err := broker.AddHook(&enrolHook{svc: svc, t: t}, nil); err != nil {
		t.Fatal(err)
	}
	enrolAddr := gatewaytest.FreeAddr(t)
	_, enrolPort, _ := net.SplitHostPort(enrolAddr)
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "enrol", Address: enrolAddr,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}})); err != nil {
		t.Fatal(err)
	}
	if err := broker.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	gatewaytest.WaitListening(t, enrolAddr, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The sensor makes its key and CSR (the key never leaves it).
	dev := t.TempDir()
	key, csr := filepath.Join(dev, "sensor.key"), filepath.Join(dev, "sensor.csr")
	if out, err := exec.CommandContext(ctx, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN=sensor-00AB").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	csrPEM, _ := os.ReadFile(csr)
	var requestAs func(id [3]string, topic, answer string, payload any) map[string]any
	claimID := [3]string{filepath.Join(claimDir, "batch7.crt"), filepath.Join(claimDir, "batch7.key"), "batch7-0042"}
	request := func(topic, answer string, payload any) map[string]any {
		t.Helper()
		return requestAs(claimID, topic, answer, payload)
	}
	requestAs = func(id [3]string, topic, answer string, payload any) map[string]any {
		t.Helper()
		return mosquittoRR(ctx, t, rr, enrolPort, filepath.Join(claimDir, "ca.crt"), id, topic, answer, payload)
	}
	// A CSR with the wrong CN is refused with the documented error.
	bad := filepath.Join(dev, "bad.csr")
	if out, err := exec.CommandContext(ctx, openssl, "req", "-new", "-key", key, "-out", bad, "-subj", "/CN=pump-1").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	badPEM, _ := os.ReadFile(bad)
	if m := request(enrol.TopicCreateFromCSR, enrol.SuffixRejected, map[string]string{"certificateSigningRequest": string(badPEM)}); m["errorCode"] != enrol.CodeInvalidCSR || m["statusCode"] != float64(400) {
		t.Fatalf("wrong CN: %v; want statusCode 400, errorCode %s", m, enrol.CodeInvalidCSR)
	}
	// Note: mosquitto_rr disconnects after each answer; the token is bound to the certificate
	// and client ID, so the next connection with both may use it.
	m := request(enrol.TopicCreateFromCSR, enrol.SuffixAccepted, map[string]string{"certificateSigningRequest": string(csrPEM)})
	certPEM, _ := m["certificatePem"].(string)
	tok, _ := m["certificateOwnershipToken"].(string)
	if certPEM == "" || tok == "" || m["certificateId"] == nil {
		t.Fatalf("CreateCertificateFromCsr answered %v", m)
	}
	m = request(enrol.ProvisionTopic("sensors"), enrol.SuffixAccepted, map[string]any{"certificateOwnershipToken": tok, "parameters": map[string]string{"SerialNumber": "00AB", "Floor": "2"}})
	if m["thingName"] != "sensor-00AB" {
		t.Fatalf("RegisterThing answered %v", m)
	}
	reg, _ := os.ReadFile(filepath.Join(root, "devices.yaml"))
	for _, want := range []string{"name: sensor-00AB", "type: temperature", `floor: "2"`, "temperature]"} {
		if !strings.Contains(string(reg), want) {
			t.Errorf("registry lacks %q:\n%s", want, reg)
		}
	}
	crtFile := filepath.Join(dev, "sensor.crt")
	if err := os.WriteFile(crtFile, []byte(certPEM), 0o644); err != nil {
		t.Fatal(err)
	}

	// The sensor connects to the real gateway with its new certificate and publishes under
	// the template's policy.
	startRun(t, conf, addr)
	pubAs := func(crt, key, topic string) error {
		out, err := exec.CommandContext(ctx, mosqPub, "-h", "127.0.0.1", "-p", port, "--cafile", filepath.Join(pkiDir, "ca.crt"),
			"--cert", crt, "--key", key, "-i", "sensor-00AB", "-t", topic, "-m", "21.5", "-q", "1", "-V", "mqttv311").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	pub := func(topic string) error { return pubAs(crtFile, key, topic) }
	if err := pub("sensors/sensor-00AB/temp"); err != nil {
		t.Fatalf("the enrolled sensor publishing to its own topic: %v", err)
	}
	// Another thing's topic: the template's policy denies it (MQTT 3.1.1: disconnected).
	if err := pub("sensors/sensor-0001/temp"); err == nil {
		t.Error("the enrolled sensor published to another thing's topic")
	}
	var audit string
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(filepath.Join(root, "audit.log"))
		if audit = string(b); strings.Contains(audit, "sensors/sensor-0001/temp") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var connects, denies []string
	for _, line := range strings.Split(strings.TrimSpace(audit), "\n") {
		var ev struct{ Event, Device, Resource string }
		_ = json.Unmarshal([]byte(line), &ev)
		switch {
		case ev.Device != "sensor-00AB":
		case ev.Event == "connect":
			connects = append(connects, line)
		case strings.Contains(ev.Event, "deny"):
			denies = append(denies, ev.Resource)
		}
	}
	if len(connects) != 2 || len(denies) != 1 || denies[0] != "topic/sensors/sensor-0001/temp" {
		t.Errorf("audit for sensor-00AB: %d connects, denies %v; want 2 connects and only sensors/sensor-0001/temp denied:\n%s", len(connects), denies, audit)
	}

	// Renewal over MQTT with the sensor's own certificate: a new key and CSR, create-from-csr
	// authenticated by the current certificate; both work until the new one connects, then the
	// sweep revokes the old one (reason superseded) and the gateway refuses it.
	newKey, newCSR := filepath.Join(dev, "sensor2.key"), filepath.Join(dev, "sensor2.csr")
	if out, err := exec.CommandContext(ctx, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", newKey, "-out", newCSR, "-subj", "/CN=sensor-00AB").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	newCSRPEM, _ := os.ReadFile(newCSR)
	m = requestAs([3]string{crtFile, key, "sensor-00AB"}, enrol.TopicCreateFromCSR, enrol.SuffixAccepted, map[string]string{"certificateSigningRequest": string(newCSRPEM)})
	renewed, _ := m["certificatePem"].(string)
	if renewed == "" {
		t.Fatalf("renewal answered %v", m)
	}
	newCrt := filepath.Join(dev, "sensor2.crt")
	if err := os.WriteFile(newCrt, []byte(renewed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pubAs(crtFile, key, "sensors/sensor-00AB/temp"); err != nil {
		t.Fatalf("the old certificate before the new one connected: %v", err)
	}
	if err := pubAs(newCrt, newKey, "sensors/sensor-00AB/temp"); err != nil {
		t.Fatalf("the renewed certificate: %v", err)
	}
	// What the broker wiring does: Connected for the serial that connected, Sweep periodically.
	newSerial := readChain(t, newCrt)[0].SerialNumber
	if err := svc.Connected(ctx, pki.SerialHex(newSerial)); err != nil {
		t.Fatal(err)
	}
	sw, err := svc.Sweep(ctx, time.Now())
	if err != nil || len(sw.Superseded) != 1 {
		t.Fatalf("Sweep = %+v, %v; want the old certificate superseded", sw, err)
	}
	var oldErr error
	for i := 0; i < 50; i++ { // the daemon reloads crl.pem within its poll interval
		if oldErr = pubAs(crtFile, key, "sensors/sensor-00AB/temp"); oldErr != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if oldErr == nil {
		t.Error("the gateway still accepts the renewed-away certificate")
	}
	if err := pubAs(newCrt, newKey, "sensors/sensor-00AB/temp"); err != nil {
		t.Fatalf("the renewed certificate after the sweep: %v", err)
	}
	crl, err := pki.LoadCRL(filepath.Join(pkiDir, pki.CRLFile), filepath.Join(pkiDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := crl.Reason(readChain(t, crtFile)[0].SerialNumber); !ok || code != pki.Reasons["superseded"] {
		t.Errorf("CRL reason of the old certificate = %d, %v; want superseded", code, ok)
	}
}
