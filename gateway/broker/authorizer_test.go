package broker

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/authorizer"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// fakeAuthorizer stands in for the custom authorizer (a foreign edge): it
// answers Connect from a table by client ID and hands out fakeConns whose
// refresh and expiry the test drives.
type fakeAuthorizer struct {
	mu    sync.Mutex
	conns map[string]*fakeConn
	deny  map[string]error
}

func (f *fakeAuthorizer) Connect(_ context.Context, info authorizer.ConnectInfo) (authorizedConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.deny[info.ClientID]; err != nil {
		return nil, &authorizer.DenyError{ClientID: info.ClientID, ConnectionID: "c1", Reason: err}
	}
	c := f.conns[info.ClientID]
	c.sess = authz.NewSession(info.Identity, "fake authorizer", c.policies[0])
	c.info = info
	return c, nil
}

// fakeConn refreshes into policies[1] when gates[0] opens, then expires
// when gates[1] opens: each Maintain call waits for its gate, so the test
// decides what happens when, without timing.
type fakeConn struct {
	mu       sync.Mutex
	info     authorizer.ConnectInfo
	policies [2][]*authz.Policy
	gates    [2]chan struct{}
	sess     *authz.Session
	calls    int
	refresh  time.Time
	expire   time.Time
}

func (c *fakeConn) Session() *authz.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *fakeConn) Maintain(context.Context) error {
	c.mu.Lock()
	c.calls++
	n := c.calls
	c.mu.Unlock()
	if n > 2 {
		return &authorizer.DenyError{ClientID: c.info.ClientID, ConnectionID: "c1", Reason: authorizer.ErrSessionExpired}
	}
	<-c.gates[n-1]
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.sess = authz.NewSession(c.info.Identity, "fake authorizer, refreshed", c.policies[1])
		c.refresh = time.Now().Add(time.Hour)
		c.expire = time.Now() // Maintain is due again at once: it waits for gates[1]
		return nil
	}
	return &authorizer.DenyError{ClientID: c.info.ClientID, ConnectionID: "c1", Reason: authorizer.ErrSessionExpired,
		Detail: "past disconnectAfterInSeconds"}
}

func (c *fakeConn) RefreshAt() time.Time    { c.mu.Lock(); defer c.mu.Unlock(); return c.refresh }
func (c *fakeConn) DisconnectAt() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.expire }

func (c *fakeConn) maintained() int { c.mu.Lock(); defer c.mu.Unlock(); return c.calls }

func policy(t *testing.T, name, doc string) []*authz.Policy {
	t.Helper()
	p, err := authz.ParsePolicy(authz.Source{Name: name + ".json", Data: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return []*authz.Policy{p}
}

// TestAuthorizerSessions: on a listener with an authorizer, the answer's
// policies decide the connection; a refresh swaps them; the end of the
// session disconnects the client (audited, counted); a denial at CONNECT
// refuses it with the typed reason in the audit line.
func TestAuthorizerSessions(t *testing.T) {
	fake := &fakeAuthorizer{conns: map[string]*fakeConn{}, deny: map[string]error{"slowpoke": authorizer.ErrTimeout}}
	conn := &fakeConn{
		policies: [2][]*authz.Policy{
			policy(t, "first", `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/node-red"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/first/*"}]}`),
			policy(t, "second", `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/node-red"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/second/*"}]}`),
		},
		gates:   [2]chan struct{}{make(chan struct{}), make(chan struct{})},
		refresh: time.Now(), expire: time.Now().Add(time.Hour), // Maintain due at once: waits for gates[0]
	}
	fake.conns["node-red"] = conn
	old := newAuthorizer
	newAuthorizer = func(authorizer.Config, *slog.Logger) (connAuthorizer, error) { return fake, nil }
	t.Cleanup(func() { newAuthorizer = old })
	e := newEnv(t, func(o *Options) {
		o.Listeners[1].Authorizer = &authorizer.Config{Command: []string{"/bin/false"}}
	})
	dial := func(id string) *gatewaytest.V5 {
		t.Helper()
		c, err := net.Dial("tcp", e.plain)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		v5, err := gatewaytest.ConnectV5(t, c, id)
		if err != nil && v5 == nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		return v5
	}
	if c := dial("slowpoke"); c.Ack == nil || c.Ack.ReasonCode != 0x87 {
		t.Fatalf("denied by the authorizer: CONNACK %+v; want 0x87", c.Ack)
	}
	if !auditHas(t, e.audit, "did not answer within its timeout") {
		t.Errorf("audit log lacks the authorizer's typed reason for the refusal")
	}

	// node-red is not in the registry: only the authorizer lets it in.
	c := dial("node-red")
	if c.Ack == nil || c.Ack.ReasonCode != 0 {
		t.Fatalf("allowed by the authorizer: CONNACK %+v; want 0", c.Ack)
	}
	expectPubacks(t, c,
		pubackCase{"first policy allows", "first/a", 0},
		pubackCase{"first policy does not allow", "second/a", 0x87})

	waitCalls := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for conn.maintained() < n {
			if time.Now().After(deadline) {
				t.Fatalf("Maintain called %d times; want %d", conn.maintained(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls(1) // the refresh is in progress, waiting for gates[0]
	close(conn.gates[0])
	waitCalls(2) // refreshed (the new session is in), the expiry waits for gates[1]
	expectPubacks(t, c,
		pubackCase{"refreshed policy allows", "second/a", 0},
		pubackCase{"refreshed policy no longer allows", "first/a", 0x87})
	close(conn.gates[1])
	select {
	case <-c.Gone:
	case <-time.After(10 * time.Second):
		t.Fatal("client still connected after its session expired")
	}
	if got := e.metrics.AuthorizerExpired.Load(); got != 1 {
		t.Errorf("AuthorizerExpired = %d; want 1", got)
	}
	if !auditHas(t, e.audit, "disconnectAfterInSeconds") {
		t.Errorf("audit log lacks the expiry")
	}
}

func TestAuthorizerFits(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		limit   time.Duration // 0: the default handshake_timeout (10s)
		ok      bool
	}{
		{"defaults", 0, 0, true},
		{"shorter than the handshake timeout", 9 * time.Second, 0, true},
		{"as long as the handshake timeout", 10 * time.Second, 0, false},
		{"longer than a raised handshake timeout", 20 * time.Second, 30 * time.Second, true},
		{"default against a short handshake timeout", 0, 3 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := AuthorizerFits(authorizer.Config{Command: []string{"x"}, Timeout: tc.timeout}, Limits{HandshakeTimeout: tc.limit})
			if (err == nil) != tc.ok {
				t.Errorf("got %v; want ok %v", err, tc.ok)
			}
		})
	}
}

// pubackCase is a QoS 1 publish to topic and the PUBACK reason it must get.
type pubackCase struct {
	name  string
	topic string
	want  byte
}

// expectPubacks publishes each case's topic from c and checks its PUBACK.
func expectPubacks(t *testing.T, c *gatewaytest.V5, cases ...pubackCase) {
	t.Helper()
	for _, tc := range cases {
		if rc, _ := c.Publish(t, tc.topic, 1, false, "x"); rc != tc.want {
			t.Errorf("%s: publish %s: PUBACK 0x%02x; want 0x%02x", tc.name, tc.topic, rc, tc.want)
		}
	}
}
