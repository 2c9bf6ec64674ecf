package authorizer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// A real authorizer script: bash, the event on stdin, the answer on stdout. It
// reads its mode from a state file on every call, so a test changes its answers:
//
//	allow   password "secret": authenticated for 24 h, refresh every 5 min
//	short   password "secret": authenticated, disconnect after 300 s, refresh after 1 h
//	deny    isAuthenticated false
//
// and whatever the mode, client ID "hang" never answers, "garbage" gets broken JSON,
// "badpolicy" gets a policy document that does not parse.
const authorizerScript = `#!/bin/bash
ev=$(cat)
mode=$(cat "$1")
case "$ev" in
*'"clientId":"hang"'*) sleep 60; exit 0 ;;
*'"clientId":"garbage"'*) echo '{"isAuthenticated": tru'; exit 0 ;;
*'"clientId":"badpolicy"'*)
  echo '{"isAuthenticated":true,"principalId":"bad1","disconnectAfterInSeconds":3600,"refreshAfterInSeconds":300,"policyDocuments":["{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iot:Publsh\",\"Resource\":\"*\"}]}"]}'
  exit 0 ;;
esac
# "secret" is c2VjcmV0 in base64, as AWS passes the password.
if [[ "$mode" == deny || "$ev" != *'"password":"c2VjcmV0"'* ]]; then
  echo '{"isAuthenticated":false}'
  exit 0
fi
disc=86400; refresh=300
if [[ "$mode" == short ]]; then disc=300; refresh=3600; fi
cat <<EOF
{"isAuthenticated":true,"principalId":"script1","disconnectAfterInSeconds":$disc,"refreshAfterInSeconds":$refresh,
 "policyDocuments":[{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/\${iot:ClientId}"},
  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:us-east-1:123456789012:topic/sensors/\${iot:ClientId}/*"},
  {"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/sensors/*/secret"}]}]}
EOF
`

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// scriptAuthorizer writes the script and its state file and returns an Authorizer
// that runs it, with a fake clock, and a function to change the script's mode.
func scriptAuthorizer(t *testing.T, cfg Config) (*Authorizer, *gatewaytest.Clock, func(mode string)) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("bash is needed for the script authorizer: apt-get install bash")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "authorizer.sh")
	state := filepath.Join(dir, "mode")
	if err := os.WriteFile(script, []byte(authorizerScript), 0o755); err != nil {
		t.Fatal(err)
	}
	setMode := func(mode string) {
		if err := os.WriteFile(state, []byte(mode), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setMode("allow")
	cfg.Command = []string{script, state}
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := gatewaytest.NewClock(time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC))
	a.now = clock.Now
	a.limiter = newBucket(a.cfg.Rate, a.cfg.Burst, clock.Now())
	return a, clock, setMode
}

func connectInfo(clientID, password string) ConnectInfo {
	return ConnectInfo{Identity: authz.Identity{ClientID: clientID, Username: "user-" + clientID, CleanSession: true},
		Password: []byte(password), Listener: "local"}
}

func wantDeny(t *testing.T, err error, reason error) *DenyError {
	t.Helper()
	var de *DenyError
	if !errors.As(err, &de) || !errors.Is(err, reason) {
		t.Fatalf("got %v; want a *DenyError for %q", err, reason)
	}
	return de
}

type decision struct {
	action authz.Action
	res    string
	want   bool
}

func checkSession(t *testing.T, s *authz.Session, ds []decision) {
	t.Helper()
	for _, d := range ds {
		if got := s.Allowed(d.action, d.res); got != d.want {
			t.Errorf("%s %q = %v; want %v\n%s", d.action, d.res, got, d.want, s.Explain(d.action, d.res))
		}
	}
}

// The script allows, denies, refreshes and expires sessions as it answers, and the
// policies it returns are enforced by authz.
func TestScriptAuthorizerAllowsDeniesExpires(t *testing.T) {
	a, clock, setMode := scriptAuthorizer(t, Config{Timeout: 10 * time.Second})
	ctx := context.Background()

	c, err := a.Connect(ctx, connectInfo("dev1", "secret"))
	if err != nil {
		t.Fatalf("Connect(dev1, right password) = %v; want allowed", err)
	}
	if c.PrincipalID() != "script1" {
		t.Errorf("PrincipalID = %q; want script1", c.PrincipalID())
	}
	checkSession(t, c.Session(), []decision{
		{authz.Connect, "dev1", true},
		{authz.Connect, "dev2", false},
		{authz.Publish, "sensors/dev1/temp", true},
		{authz.Publish, "sensors/dev1/secret", false}, // the returned Deny wins
		{authz.Publish, "sensors/dev2/temp", false},
		{authz.Receive, "sensors/dev1/cmd", true},
		{authz.Subscribe, "sensors/dev1/#", false}, // nothing allows Subscribe
	})
	wantDeny(t, errOf(a.Connect(ctx, connectInfo("dev1", "wrong"))), ErrNotAuthenticated)
	wantDeny(t, errOf(a.Connect(ctx, connectInfo("garbage", "secret"))), ErrMalformed)
	de := wantDeny(t, errOf(a.Connect(ctx, connectInfo("badpolicy", "secret"))), ErrPolicy)
	if de.Detail == "" {
		t.Errorf("ErrPolicy without the parse error in Detail")
	}

	// Refresh: nothing happens before refreshAfterInSeconds; then the script is
	// asked again and its answer replaces the decision.
	calls := a.Stats().Calls
	clock.Advance(299 * time.Second)
	if err := c.Maintain(ctx); err != nil || a.Stats().Calls != calls {
		t.Fatalf("Maintain before the refresh = %v, calls %d; want nil and no call (%d)", err, a.Stats().Calls, calls)
	}
	clock.Advance(2 * time.Second)
	if err := c.Maintain(ctx); err != nil || a.Stats().Calls != calls+1 {
		t.Fatalf("Maintain at the refresh = %v, calls %d; want nil and one call (%d)", err, a.Stats().Calls, calls+1)
	}
	// The script now denies: the next refresh ends the session.
	setMode("deny")
	clock.Advance(301 * time.Second)
	wantDeny(t, c.Maintain(ctx), ErrNotAuthenticated)

	// disconnectAfterInSeconds: the session ends 300 s after connect, without a call.
	setMode("short")
	c2, err := a.Connect(ctx, connectInfo("dev2", "secret"))
	if err != nil {
		t.Fatalf("Connect(dev2) = %v", err)
	}
	if got := c2.DisconnectAt().Sub(clock.Now()); got != 300*time.Second {
		t.Errorf("DisconnectAt - now = %v; want 300s", got)
	}
	clock.Advance(299 * time.Second)
	if err := c2.Maintain(ctx); err != nil {
		t.Fatalf("Maintain at 299 s = %v; want nil", err)
	}
	calls = a.Stats().Calls
	clock.Advance(time.Second)
	wantDeny(t, c2.Maintain(ctx), ErrSessionExpired)
	if a.Stats().Calls != calls {
		t.Errorf("expiry called the authorizer")
	}
	st := a.Stats()
	if st.Calls != 7 || st.Allowed != 3 || st.Denied != 4 || st.InFlight != 0 {
		t.Errorf("Stats = %+v; want 7 calls, 3 allowed, 4 denied, none in flight", st)
	}
}

func errOf(_ *Conn, err error) error { return err }

// A hanging authorizer denies its own connect within the timeout while the other
// call slots keep serving: every other connect completes while the hanging one is
// still in flight, and the hanging one then fails with ErrTimeout.
func TestHangingAuthorizerDoesNotStallOthers(t *testing.T) {
	a, _, _ := scriptAuthorizer(t, Config{Timeout: 8 * time.Second, MaxConcurrent: 4})
	ctx := context.Background()
	hung := make(chan error, 1)
	go func() { hung <- errOf(a.Connect(ctx, connectInfo("hang", "secret"))) }()
	waitFor(t, func() bool { return a.Stats().InFlight == 1 })

	const others = 6
	var wg sync.WaitGroup
	errs := make(chan error, others)
	for i := 0; i < others; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- errOf(a.Connect(ctx, connectInfo("dev1", "secret")))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a connect beside the hanging one: %v; want allowed", err)
		}
	}
	select {
	case err := <-hung:
		t.Fatalf("the hanging connect finished (%v) before the others; want it still waiting for its timeout", err)
	default:
	}
	select {
	case err := <-hung:
		de := wantDeny(t, err, ErrTimeout)
		if de.ClientID != "hang" || de.ConnectionID == "" {
			t.Errorf("DenyError = %+v; want client hang and a connection ID", de)
		}
	case <-time.After(60 * time.Second): // a generous guard, not a measurement
		t.Fatal("the hanging connect was not denied within a minute")
	}
	if st := a.Stats(); st.Allowed != others || st.Denied != 1 || st.InFlight != 0 {
		t.Errorf("Stats = %+v; want %d allowed, 1 denied, none in flight", st, others)
	}
}

// With every slot held by a hanging call, a new connect waits only within its own
// deadline (here the caller's, shorter than the timeout) and is denied ErrBusy
// without calling the authorizer.
func TestBusySlotsDeny(t *testing.T) {
	a, _, _ := scriptAuthorizer(t, Config{Timeout: 3 * time.Second, MaxConcurrent: 1})
	ctx := context.Background()
	hung := make(chan error, 1)
	go func() { hung <- errOf(a.Connect(ctx, connectInfo("hang", "secret"))) }()
	waitFor(t, func() bool { return a.Stats().InFlight == 1 })
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	wantDeny(t, errOf(a.Connect(short, connectInfo("dev1", "secret"))), ErrBusy)
	wantDeny(t, <-hung, ErrTimeout)
	if st := a.Stats(); st.Calls != 1 {
		t.Errorf("Calls = %d; want 1 (the busy connect never called)", st.Calls)
	}
}

// The token bucket bounds the call rate: a burst, then one call per 1/rate.
func TestRateLimit(t *testing.T) {
	a, clock, _ := scriptAuthorizer(t, Config{Rate: 1, Burst: 2})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := a.Connect(ctx, connectInfo("dev1", "secret")); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	wantDeny(t, errOf(a.Connect(ctx, connectInfo("dev1", "secret"))), ErrRateLimited)
	if st := a.Stats(); st.Calls != 2 {
		t.Errorf("Calls = %d; want 2 (the limited connect never called)", st.Calls)
	}
	clock.Advance(time.Second)
	if _, err := a.Connect(ctx, connectInfo("dev1", "secret")); err != nil {
		t.Errorf("after one second: %v; want allowed", err)
	}
}

// waitFor polls cond, bounded in count and time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached within 30 s")
}
