package authorizer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
)

// httpPolicy is what the HTTP test authorizer returns, as a JSON string (the form
// AWS's TestInvokeAuthorizer shows).
const httpPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:ClientId}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/plant/${iot:Certificate.Subject.CommonName}/*"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/cmd/${iot:ClientId}"},
 {"Effect":"Deny","Action":"iot:Publish","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}`

// testAuthorizer is a hand-written HTTP authorizer: it records the events it gets
// and answers by the client ID.
type testAuthorizer struct {
	mu     sync.Mutex
	events []Event
}

func (ta *testAuthorizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev Event
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ta.mu.Lock()
	ta.events = append(ta.events, ev)
	ta.mu.Unlock()
	pw, _ := base64.StdEncoding.DecodeString(ev.ProtocolData.MQTT.Password)
	switch ev.ProtocolData.MQTT.ClientID {
	case "hang":
		<-r.Context().Done()
		return
	case "fail":
		http.Error(w, "authorizer broken", http.StatusInternalServerError)
		return
	case "garbage":
		_, _ = w.Write([]byte(`{"isAuthenticated": "yes"}`))
		return
	case "short":
		_, _ = w.Write([]byte(`{"isAuthenticated": true, "principalId": "p1", "policyDocuments": ["{}"], "disconnectAfterInSeconds": 60, "refreshAfterInSeconds": 300}`))
		return
	}
	ans := Answer{IsAuthenticated: string(pw) == "s3cret", PrincipalID: "httpPrincipal1",
		DisconnectAfterInSeconds: 3600, RefreshAfterInSeconds: 300}
	doc, _ := json.Marshal(httpPolicy)
	ans.PolicyDocuments = []json.RawMessage{doc}
	_ = json.NewEncoder(w).Encode(ans)
}

func (ta *testAuthorizer) last() Event {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.events[len(ta.events)-1]
}

func clientCert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func httpInfo(clientID, password string, cert *x509.Certificate) ConnectInfo {
	return ConnectInfo{Identity: authz.Identity{ClientID: clientID, Username: "u1", Cert: cert, ThingName: clientID,
		SourceIP: netip.MustParseAddr("127.0.0.1"), TLS: true, ServerName: "gw.local"},
		Password: []byte(password), Listener: "lan", ConnectionID: "conn-1"}
}

// An HTTP authorizer on 127.0.0.1 (httptest binds loopback): the event carries what
// AWS sends plus the certificate and source address; the returned policy is
// enforced by authz; failures deny with their reason.
func TestHTTPAuthorizer(t *testing.T) {
	ta := &testAuthorizer{}
	srv := httptest.NewServer(ta)
	defer srv.Close()
	a, err := New(Config{URL: srv.URL + "/authorize", Timeout: 2 * time.Second}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cert := clientCert(t, "line-3")
	c, err := a.Connect(ctx, httpInfo("sensor-9", "s3cret", cert))
	if err != nil {
		t.Fatalf("Connect = %v; want allowed", err)
	}
	ev := ta.last()
	sum := sha256.Sum256(cert.Raw)
	checks := []struct{ name, got, want string }{
		{"protocols", strings.Join(ev.Protocols, ","), "tls,mqtt"},
		{"serverName", ev.ProtocolData.TLS.ServerName, "gw.local"},
		{"username", ev.ProtocolData.MQTT.Username, "u1"},
		{"password", ev.ProtocolData.MQTT.Password, base64.StdEncoding.EncodeToString([]byte("s3cret"))},
		{"clientId", ev.ProtocolData.MQTT.ClientID, "sensor-9"},
		{"connection id", ev.ConnectionMetadata.ID, "conn-1"},
		{"source IP", ev.Edgegw.SourceIP, "127.0.0.1"},
		{"listener", ev.Edgegw.Listener, "lan"},
		{"certificate CN", ev.Edgegw.Certificate.CommonName, "line-3"},
		{"certificate ID", ev.Edgegw.Certificate.CertificateID, hexString(sum[:])},
		{"serial", ev.Edgegw.Certificate.SerialNumber, "4242"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("event %s = %q; want %q", ck.name, ck.got, ck.want)
		}
	}
	if ev.Token != "" || ev.SignatureVerified {
		t.Errorf("token %q, signatureVerified %v without token signing; want none", ev.Token, ev.SignatureVerified)
	}
	checkSession(t, c.Session(), []decision{
		{authz.Connect, "sensor-9", true},
		{authz.Publish, "plant/line-3/temp", true},
		{authz.Publish, "plant/line-4/temp", false},
		{authz.Subscribe, "cmd/sensor-9", true},
		{authz.Subscribe, "cmd/+", false},
	})
	// The same policy from another address: the returned Deny on aws:SourceIp applies.
	far := httpInfo("sensor-9", "s3cret", cert)
	far.SourceIP = netip.MustParseAddr("192.0.2.7")
	c2, err := a.Connect(ctx, far)
	if err != nil {
		t.Fatal(err)
	}
	checkSession(t, c2.Session(), []decision{{authz.Publish, "plant/line-3/temp", false}})

	plain := ConnectInfo{Identity: authz.Identity{ClientID: "node-red"}, Password: nil}
	wantDeny(t, errOf(a.Connect(ctx, plain)), ErrNotAuthenticated)
	if ev := ta.last(); ev.ProtocolData.TLS != nil || ev.ProtocolData.MQTT.Password != "" || ev.Edgegw.Certificate != nil ||
		strings.Join(ev.Protocols, ",") != "mqtt" || ev.ConnectionMetadata.ID == "" {
		t.Errorf("plaintext event = %+v; want no tls, no password, no certificate, protocols [mqtt] and a generated connection ID", ev)
	}

	tests := []struct {
		name     string
		clientID string
		reason   error
	}{
		{"wrong password", "sensor-9", ErrNotAuthenticated},
		{"HTTP 500", "fail", ErrTransport},
		{"isAuthenticated not a boolean", "garbage", ErrMalformed},
		{"disconnectAfterInSeconds below AWS's 300", "short", ErrMalformed},
		{"no answer within the timeout", "hang", ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantDeny(t, errOf(a.Connect(ctx, httpInfo(tt.clientID, "nope", nil))), tt.reason)
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// The same authorizer over a unix socket.
func TestUnixSocketAuthorizer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "auth.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(&testAuthorizer{})
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	a, err := New(Config{URL: "unix:" + sock}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Connect(context.Background(), httpInfo("sensor-1", "s3cret", clientCert(t, "line-1")))
	if err != nil {
		t.Fatalf("Connect over the unix socket = %v", err)
	}
	checkSession(t, c.Session(), []decision{{authz.Publish, "plant/line-1/x", true}, {authz.Publish, "plant/line-2/x", false}})
}

// Token signing as AWS does it: the signature is checked before the authorizer is
// called; a bad or missing one denies without a call.
func TestTokenSigning(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ta := &testAuthorizer{}
	srv := httptest.NewServer(ta)
	defer srv.Close()
	a, err := New(Config{URL: srv.URL, TokenSigning: &TokenSigning{TokenKeyName: "token", PublicKeys: []string{pemFile}}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(token string) string {
		sum := sha256.Sum256([]byte(token))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
	withUser := func(user string) ConnectInfo {
		info := httpInfo("sensor-9", "s3cret", nil)
		info.Username = user
		return info
	}
	good := "u?x-amz-customauthorizer-name=edge&token=abc123&" + signatureParam + "=" + url.QueryEscape(sign("abc123"))
	if _, err := a.Connect(context.Background(), withUser(good)); err != nil {
		t.Fatalf("Connect with a signed token = %v", err)
	}
	if ev := ta.last(); ev.Token != "abc123" || !ev.SignatureVerified {
		t.Errorf("event token %q, signatureVerified %v; want abc123, true", ev.Token, ev.SignatureVerified)
	}
	calls := a.Stats().Calls
	for name, user := range map[string]string{
		"no query":       "u",
		"no signature":   "u?token=abc123",
		"wrong token":    "u?token=abc124&" + signatureParam + "=" + url.QueryEscape(sign("abc123")),
		"not base64":     "u?token=abc123&" + signatureParam + "=%%%",
		"other key sign": "u?token=abc123&" + signatureParam + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(make([]byte, 256))),
	} {
		t.Run(name, func(t *testing.T) { wantDeny(t, errOf(a.Connect(context.Background(), withUser(user))), ErrSignature) })
	}
	if a.Stats().Calls != calls {
		t.Errorf("a bad signature called the authorizer")
	}
}

// A dial to anything but loopback is refused even if the name resolves elsewhere.
func TestLoopbackOnlyDial(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "10.0.0.1:80": false, "[2001:db8::1]:443": false} {
		if err := loopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("loopbackOnly(%s) = %v; want allowed %v", addr, err, ok)
		}
	}
}
