package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/pki"
)

// A sensor simulated with Debian's mosquitto clients enrols by claim against the real edgegw
// daemon (the enrolment section wired into its broker): mosquitto_rr with the claim
// certificate publishes a CSR made by openssl to create-from-csr and gets its certificate and
// ownership token, then registers with the template's parameters; the registry gets the thing;
// the sensor reconnects with its new certificate and publishes under the template's policy,
// and a subscriber receives it. Before that, a CSR with the wrong CN, an RSA-1024 key and
// CA:true each get /rejected with the documented error, and the registry and issued.json stay
// as they were.
func TestE2EEnrolThroughBroker(t *testing.T) {
	openssl := needTool(t, "openssl", "openssl")
	rr := needTool(t, "mosquitto_rr", "mosquitto-clients")
	mosqPub := needTool(t, "mosquitto_pub", "mosquitto-clients")
	mosqSub := needTool(t, "mosquitto_sub", "mosquitto-clients")
	stdbuf := needTool(t, "stdbuf", "coreutils")
	root := t.TempDir()
	addr := gatewaytest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := writeEnrolSite(t, root, addr, `enrolment:
  templates:
    - name: sensors
      thing_name: "sensor-${SerialNumber}"
      parameters:
        - {name: SerialNumber, pattern: "[0-9A-F]{4}"}
        - {name: Floor, default: "0"}
      thing_type: temperature
      attributes: {floor: "${Floor}"}
      policies: [temperature, edgegw-renew]
      device_configuration: {reportInterval: "60"}
`)
	mustRun(t, "pki", "renew-policy", "-c", conf) // policies/edgegw-renew.json, for the template sensors
	gatewaytest.WriteFile(t, filepath.Join(root, "policies", "monitor.json"), []byte(`{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": ["arn:aws:iot:*:*:client/monitor", "arn:aws:iot:*:*:client/monitor-*"]},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ["arn:aws:iot:*:*:topicfilter/sensors/#", "arn:aws:iot:*:*:topicfilter/$aws/#"]},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": ["arn:aws:iot:*:*:topic/sensors/*", "arn:aws:iot:*:*:topic/$aws/*"]}]}`), 0o644)
	if err := os.MkdirAll(filepath.Join(root, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "pki", "init", "-c", conf, "--host", "localhost", "--host", "127.0.0.1")
	claimDir, certs := filepath.Join(root, "claim"), filepath.Join(root, "certs")
	mustRun(t, "pki", "claim", "-c", conf, "batch7", "--template", "sensors", "--out", claimDir)
	mustRun(t, "pki", "issue", "-c", conf, "monitor", "--policy", "monitor", "--out", certs)
	pkiDir := filepath.Join(root, "pki")
	subArgs := func(crt, key, id, filter string, extra ...string) []string {
		return append([]string{mosqSub, "-h", "127.0.0.1", "-p", port, "--cafile", filepath.Join(pkiDir, "ca.crt"),
			"--cert", crt, "--key", key, "-i", id, "-t", filter, "-q", "1", "-v", "-d"}, extra...)
	}
	mustRun(t, "check", "-c", conf) // the enrolment section passes the offline checker
	startRun(t, conf, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dev := t.TempDir()
	openSSL := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	readCSR := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// requestAs publishes payload to topic as id (certificate, key, client ID) and returns the
	// JSON answer on topic+answer (mosquitto_rr subscribes to it first); request does it with
	// the claim certificate as client batch7-0042.
	requestAs := func(id [3]string, topic, answer string, payload any) map[string]any {
		t.Helper()
		return mosquittoRR(ctx, t, rr, port, filepath.Join(claimDir, "ca.crt"), id, topic, answer, payload)
	}
	claim := [3]string{filepath.Join(claimDir, "batch7.crt"), filepath.Join(claimDir, "batch7.key"), "batch7-0042"}
	request := func(topic, answer string, payload any) map[string]any {
		t.Helper()
		return requestAs(claim, topic, answer, payload)
	}

	// Refusals first: each CSR is rejected with the documented error and nothing is written.
	key := filepath.Join(dev, "sensor.key")
	openSSL("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
	wrongCN, rsa1024, caTrue := filepath.Join(dev, "wrong-cn.csr"), filepath.Join(dev, "rsa1024.csr"), filepath.Join(dev, "ca.csr")
	openSSL("req", "-new", "-key", key, "-out", wrongCN, "-subj", "/CN=pump-1")
	openSSL("req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", filepath.Join(dev, "rsa1024.key"), "-out", rsa1024, "-subj", "/CN=sensor-00AB")
	openSSL("req", "-new", "-key", key, "-out", caTrue, "-subj", "/CN=sensor-00AB", "-addext", "basicConstraints=critical,CA:TRUE")
	registry, issued := filepath.Join(root, "devices.yaml"), filepath.Join(pkiDir, "issued.json")
	regBefore, issuedBefore := readCSR(registry), readCSR(issued)
	for _, tc := range []struct{ name, csr, want string }{
		{"wrong CN", wrongCN, "is no thing name a provisioning template gives"},
		{"RSA-1024", rsa1024, "RSA key of 1024 bits is not accepted"},
		{"CA:true", caTrue, "basicConstraints CA:TRUE"},
	} {
		m := request(enrol.TopicCreateFromCSR, enrol.SuffixRejected, map[string]string{"certificateSigningRequest": readCSR(tc.csr)})
		msg, _ := m["errorMessage"].(string)
		if m["statusCode"] != float64(400) || m["errorCode"] != enrol.CodeInvalidCSR || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: got %v; want statusCode 400, errorCode %s, errorMessage with %q", tc.name, m, enrol.CodeInvalidCSR, tc.want)
		}
	}
	if readCSR(registry) != regBefore {
		t.Errorf("the registry changed after refused CSRs:\n%s", readCSR(registry))
	}
	if readCSR(issued) != issuedBefore {
		t.Errorf("issued.json changed after refused CSRs:\n%s", readCSR(issued))
	}

	// Another sensor of the batch listens on the response topics with the same claim: the
	// broker writes a response to the requesting connection only, so it gets none.
	eaves := startMosqSub(ctx, t, stdbuf, subArgs(filepath.Join(claimDir, "batch7.crt"), filepath.Join(claimDir, "batch7.key"), "batch7-0099", "$aws/certificates/create-from-csr/json/+")...)
	// A monitor allowed to receive everything under $aws/ gets neither the requests (never
	// routed: they carry CSRs and tokens) nor the responses.
	spy := startMosqSub(ctx, t, stdbuf, subArgs(filepath.Join(certs, "monitor.crt"), filepath.Join(certs, "monitor.key"), "monitor-spy", "$aws/#")...)

	// The happy path: CSR -> certificate and token -> RegisterThing -> registry entry.
	csr := filepath.Join(dev, "sensor.csr")
	openSSL("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=sensor-00AB")
	m := request(enrol.TopicCreateFromCSR, enrol.SuffixAccepted, map[string]string{"certificateSigningRequest": readCSR(csr)})
	certPEM, _ := m["certificatePem"].(string)
	tok, _ := m["certificateOwnershipToken"].(string)
	if certPEM == "" || tok == "" || m["certificateId"] == nil {
		t.Fatalf("CreateCertificateFromCsr answered %v; want certificatePem, certificateId and certificateOwnershipToken", m)
	}
	m = request(enrol.ProvisionTopic("sensors"), enrol.SuffixAccepted, map[string]any{"certificateOwnershipToken": tok, "parameters": map[string]string{"SerialNumber": "00AB", "Floor": "2"}})
	if m["thingName"] != "sensor-00AB" {
		t.Fatalf("RegisterThing answered %v; want thingName sensor-00AB", m)
	}
	if dc, _ := m["deviceConfiguration"].(map[string]any); dc["reportInterval"] != "60" {
		t.Errorf("RegisterThing deviceConfiguration = %v; want reportInterval 60", m["deviceConfiguration"])
	}
	reg := readCSR(registry)
	for _, want := range []string{"name: sensor-00AB", "type: temperature", `floor: "2"`, "policies: [temperature, edgegw-renew]"} {
		if !strings.Contains(reg, want) {
			t.Errorf("registry lacks %q:\n%s", want, reg)
		}
	}
	for who, s := range map[string]*mosqSubscriber{"another connection of the claim": eaves, "a monitor of $aws/#": spy} {
		for _, l := range s.stop() {
			if strings.HasPrefix(l, "$aws/") {
				topic, _, _ := strings.Cut(l, " ")
				t.Errorf("%s received a message on %s", who, topic) // not the payload: it may hold a token
			}
		}
	}
	crt := filepath.Join(dev, "sensor.crt")
	if err := os.WriteFile(crt, []byte(certPEM), 0o644); err != nil {
		t.Fatal(err)
	}

	// The sensors' subscriber.
	sub := startMosqSub(ctx, t, stdbuf, subArgs(filepath.Join(certs, "monitor.crt"), filepath.Join(certs, "monitor.key"), "monitor", "sensors/#", "-C", "1", "-W", "60")...)

	// publish publishes one reading as sensor-00AB with certificate crt and key.
	publish := func(crt, key string) error {
		out, err := exec.CommandContext(ctx, mosqPub, "-h", "127.0.0.1", "-p", port, "--cafile", filepath.Join(pkiDir, "ca.crt"),
			"--cert", crt, "--key", key, "-i", "sensor-00AB", "-t", "sensors/sensor-00AB/temp", "-m", "21.5", "-q", "1").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	// The sensor reconnects with its new certificate. The daemon reloads the registry the
	// enrolment wrote within its watch interval (250 ms, stable for one poll): a connect
	// before that is refused, so it tries again, at most 40 times.
	var pubErr error
	for i := 0; i < 40; i++ {
		if pubErr = publish(crt, key); pubErr == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if pubErr != nil {
		t.Fatalf("the enrolled sensor publishing with its new certificate: %v", pubErr)
	}
	sub.waitLine(ctx, t, "sensors/sensor-00AB/temp 21.5")
	if out, err := sub.wait(); err != nil {
		t.Errorf("mosquitto_sub: %v\n%s", err, strings.Join(out, "\n"))
	}

	// Renewal with the sensor's own certificate (the template attached edgegw-renew): a new
	// key and CSR; the new certificate is active at once, the old one until the new one has
	// connected and the daemon's sweep (every 5 s) revoked it as superseded.
	newKey, newCSR, newCrt := filepath.Join(dev, "sensor2.key"), filepath.Join(dev, "sensor2.csr"), filepath.Join(dev, "sensor2.crt")
	openSSL("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", newKey, "-out", newCSR, "-subj", "/CN=sensor-00AB")
	m = requestAs([3]string{crt, key, "sensor-00AB"}, enrol.TopicCreateFromCSR, enrol.SuffixAccepted, map[string]string{"certificateSigningRequest": readCSR(newCSR)})
	renewed, _ := m["certificatePem"].(string)
	if renewed == "" {
		t.Fatalf("renewal answered %v; want certificatePem", m)
	}
	if err := os.WriteFile(newCrt, []byte(renewed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := publish(crt, key); err != nil {
		t.Fatalf("the old certificate before the new one connected: %v", err)
	}
	if err := publish(newCrt, newKey); err != nil {
		t.Fatalf("the renewed certificate: %v", err)
	}
	var oldErr error
	for i := 0; i < 60 && oldErr == nil; i++ { // the sweep (5 s), then the CRL reload (0.5 s)
		time.Sleep(250 * time.Millisecond)
		oldErr = publish(crt, key)
	}
	if oldErr == nil {
		t.Error("the gateway still accepts the renewed-away certificate 15 s after the new one connected")
	}
	if err := publish(newCrt, newKey); err != nil {
		t.Errorf("the renewed certificate after the sweep: %v", err)
	}
	crl, err := pki.LoadCRL(filepath.Join(pkiDir, pki.CRLFile), filepath.Join(pkiDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := crl.Reason(readChain(t, crt)[0].SerialNumber); !ok || code != pki.Reasons["superseded"] {
		t.Errorf("CRL reason of the old certificate = %d, %v; want superseded", code, ok)
	}

	// The audit log has the enrolment: three refusals, the issue and the registration, the
	// renewal and the old certificate superseded.
	b, _ := os.ReadFile(filepath.Join(root, "audit.log"))
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev struct{ Event, Device string }
		_ = json.Unmarshal([]byte(line), &ev)
		if strings.HasPrefix(ev.Event, "enrol_") {
			count[ev.Event]++
		}
	}
	want := map[string]int{"enrol_refused": 3, "enrol_issued": 1, "enrol_registered": 1, "enrol_renewed": 1, "enrol_superseded": 1}
	if !maps.Equal(count, want) {
		t.Errorf("audit enrolment events %v; want %v:\n%s", count, want, b)
	}

	// edgegw status shows the same through the admin socket.
	oldSerial := pki.SerialHex(readChain(t, crt)[0].SerialNumber)
	checkEnrolStatus(t, conf, oldSerial)
}

// checkEnrolStatus asks the daemon of conf for its enrolment figures after
// TestE2EEnrolThroughBroker's requests: one claim (batch7) made 5 requests, 3 refused for
// their CSR; one certificate issued, registered, renewed; the old one (oldSerial) superseded
// and so not the nearest expiry.
func checkEnrolStatus(t *testing.T, conf, oldSerial string) {
	t.Helper()
	code, out, errOut := edgegw(t, "status", "-c", conf, "-o", "json")
	if code != 0 {
		t.Fatalf("status -o json: exit %d: %s", code, errOut)
	}
	var st observe.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	e := st.Enrolment
	if e == nil {
		t.Fatalf("status -o json has no enrolment section:\n%s", out)
	}
	if !slices.Equal(e.Templates, []string{"sensors"}) || e.ClaimsSeen != 1 || e.ClaimRequests != 5 || e.Issued != 1 ||
		e.Registered != 1 || e.Renewed != 1 || e.Superseded != 1 || e.AwaitingRevocation != 0 || !maps.Equal(e.Rejected, map[string]uint64{enrol.CodeInvalidCSR: 3}) {
		t.Errorf("status enrolment = %+v; want templates [sensors], 1 claim seen, 5 claim requests, issued, registered, renewed and superseded 1, none waiting, %s 3", e, enrol.CodeInvalidCSR)
	}
	if e.Nearest == nil || e.Nearest.Serial == oldSerial || e.Nearest.Days < 300 {
		t.Errorf("nearest expiry = %+v; want an active certificate of about a year, not the superseded %s", e.Nearest, oldSerial)
	}
	code, out, errOut = edgegw(t, "status", "-c", conf)
	for _, want := range []string{"enrolment:   templates sensors; 1 claims seen (5 requests); issued 1, renewed 1, registered 1",
		"0 renewals waiting for the old certificate's revocation; 1 superseded", "rejected: " + enrol.CodeInvalidCSR + " 3", "nearest sensor certificate expiry: "} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
}

// mosqSubscriber is a running mosquitto_sub whose output is read line by line.
type mosqSubscriber struct {
	cmd   *exec.Cmd
	lines chan string
	seen  []string
}

// startMosqSub starts mosquitto_sub (args: its path, then its arguments, with -d) under stdbuf
// -oL (a pipe would get its lines only at exit) and returns once it printed its SUBACK, so a
// publish after it reaches it.
func startMosqSub(ctx context.Context, t *testing.T, stdbuf string, args ...string) *mosqSubscriber {
	t.Helper()
	s := &mosqSubscriber{cmd: exec.CommandContext(ctx, stdbuf, append([]string{"-oL"}, args...)...), lines: make(chan string, 256)}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() { s.stop() })
	s.waitLine(ctx, t, "received SUBACK")
	return s
}

// waitLine reads the output until a line contains want; it fails when the output ends or ctx
// is done first.
func (s *mosqSubscriber) waitLine(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("mosquitto_sub ended before %q:\n%s", want, strings.Join(s.seen, "\n"))
			}
			s.seen = append(s.seen, l)
			if strings.Contains(l, want) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no %q from mosquitto_sub:\n%s", want, strings.Join(s.seen, "\n"))
		}
	}
}

// wait returns mosquitto_sub's exit error once it ended by itself (-C) and every line it
// printed. The output is read to its end before Wait closes the pipe.
func (s *mosqSubscriber) wait() ([]string, error) {
	for l := range s.lines {
		s.seen = append(s.seen, l)
	}
	if s.cmd.ProcessState != nil {
		return s.seen, nil
	}
	return s.seen, s.cmd.Wait()
}

// stop kills mosquitto_sub and returns every line it printed.
func (s *mosqSubscriber) stop() []string {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
	}
	seen, _ := s.wait()
	return seen
}
