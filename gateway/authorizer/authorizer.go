package authorizer

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
)

// Reasons a connect is denied; a *DenyError wraps exactly one. Each is an audit
// reason the caller can branch on.
var (
	ErrNotAuthenticated = errors.New("the authorizer answered isAuthenticated false")
	ErrTimeout          = errors.New("the authorizer did not answer within its timeout")
	ErrTransport        = errors.New("the authorizer could not be called")
	ErrMalformed        = errors.New("the authorizer's answer is malformed")
	ErrPolicy           = errors.New("a policy document the authorizer returned does not parse")
	ErrRateLimited      = errors.New("too many authorizer calls (rate limit)")
	ErrBusy             = errors.New("every authorizer call slot stayed busy for the whole timeout")
	ErrSignature        = errors.New("the token signature is missing or does not verify")
	ErrSessionExpired   = errors.New("the session reached the authorizer's disconnectAfterInSeconds")
)

// DenyError is a refused (or ended) authorization: Reason is one of the Err values
// above; Detail says what happened, without passwords or tokens.
type DenyError struct {
	ClientID     string
	ConnectionID string
	PrincipalID  string // when the authorizer named one
	Reason       error
	Detail       string
}

func (e *DenyError) Error() string {
	s := fmt.Sprintf("authorizer: client ID %q (connection %s): %v", e.ClientID, e.ConnectionID, e.Reason)
	if e.PrincipalID != "" {
		s += fmt.Sprintf(" (principal %q)", e.PrincipalID)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *DenyError) Unwrap() error { return e.Reason }

// Stats counts decisions, for metrics.
type Stats struct {
	Calls    uint64 // authorizer invocations (connects and refreshes)
	Allowed  uint64 // decisions that allowed
	Denied   uint64 // decisions that denied, called or not (signature, rate, busy)
	InFlight int64  // calls running now
}

// Authorizer calls one configured authorizer. It is safe for concurrent use.
type Authorizer struct {
	cfg     Config
	call    caller
	keys    []*rsa.PublicKey
	log     *slog.Logger
	now     func() time.Time
	slots   chan struct{}
	limiter *bucket

	calls, allowed, denied atomic.Uint64
	inFlight               atomic.Int64
}

// New builds an Authorizer from a validated Config (defaults applied). It reads the
// token signing keys; it does not call the authorizer.
func New(cfg Config, log *slog.Logger) (*Authorizer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{cfg: cfg, log: log.With("component", "authorizer"), now: time.Now,
		slots: make(chan struct{}, cfg.MaxConcurrent)}
	a.limiter = newBucket(cfg.Rate, cfg.Burst, a.now())
	if cfg.URL != "" {
		ep, err := parseEndpoint(cfg.URL)
		if err != nil {
			return nil, err
		}
		a.call = newHTTPCaller(ep)
	} else {
		a.call = &execCaller{argv: append([]string(nil), cfg.Command...)}
	}
	if s := cfg.TokenSigning; s != nil {
		for _, f := range s.PublicKeys {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("authorizer.token_signing.public_keys: reading %s: %w", f, err)
			}
			k, err := parsePublicKey(f, data)
			if err != nil {
				return nil, fmt.Errorf("authorizer.token_signing.public_keys: %w", err)
			}
			a.keys = append(a.keys, k)
		}
	}
	return a, nil
}

// Stats returns the counters so far.
func (a *Authorizer) Stats() Stats {
	return Stats{Calls: a.calls.Load(), Allowed: a.allowed.Load(), Denied: a.denied.Load(), InFlight: a.inFlight.Load()}
}

// Conn is one connection's authorization: the cached decision of the authorizer's
// last answer, refreshed when it says.
type Conn struct {
	a           *Authorizer
	info        ConnectInfo
	connectedAt time.Time

	mu        sync.Mutex // serialises Maintain
	principal atomic.Pointer[string]
	sess      atomic.Pointer[authz.Session]
	disc      atomic.Int64 // unix nanoseconds: disconnect at
	refresh   atomic.Int64 // unix nanoseconds: call again at
}

// Session is the current decision: the returned policies, bound to this
// connection. Cheap (an atomic load): call it for every action.
func (c *Conn) Session() *authz.Session { return c.sess.Load() }

// PrincipalID is the principal the authorizer named.
func (c *Conn) PrincipalID() string {
	if p := c.principal.Load(); p != nil {
		return *p
	}
	return ""
}

// DisconnectAt is when the connection must end (connect time plus the last
// answer's disconnectAfterInSeconds).
func (c *Conn) DisconnectAt() time.Time { return time.Unix(0, c.disc.Load()) }

// RefreshAt is when Maintain calls the authorizer again.
func (c *Conn) RefreshAt() time.Time { return time.Unix(0, c.refresh.Load()) }

// Connect authorizes a CONNECT: verifies the token signature when configured, calls
// the authorizer within its limits and parses its answer. Any failure is a
// *DenyError (fail closed). The caller then checks iot:Connect on Session(), as for
// every other connection, and should audit err.Error() on a denial.
func (a *Authorizer) Connect(ctx context.Context, info ConnectInfo) (*Conn, error) {
	if info.ConnectionID == "" {
		info.ConnectionID = newUUID()
	}
	c := &Conn{a: a, info: info, connectedAt: a.now()}
	if err := c.decide(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Maintain ends or refreshes the session as the authorizer's last answer said:
// past DisconnectAt it returns ErrSessionExpired; past RefreshAt it calls the
// authorizer again and swaps in the new decision, or returns its denial. A nil
// error means the connection may stay. The caller disconnects on any error
// (auditing it) and calls Maintain again by RefreshAt or DisconnectAt, whichever
// comes first.
func (c *Conn) Maintain(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.a.now()
	if !now.Before(c.DisconnectAt()) {
		return c.deny(ErrSessionExpired, fmt.Sprintf("connected at %s, disconnect due at %s",
			c.connectedAt.UTC().Format(time.RFC3339), c.DisconnectAt().UTC().Format(time.RFC3339)))
	}
	if now.Before(c.RefreshAt()) {
		return nil
	}
	return c.decide(ctx)
}

func (c *Conn) deny(reason error, detail string) *DenyError {
	de := &DenyError{ClientID: c.info.ClientID, ConnectionID: c.info.ConnectionID, Reason: reason, Detail: detail}
	if p := c.principal.Load(); p != nil {
		de.PrincipalID = *p
	}
	return de
}

// decide makes one authorizer decision and, when it allows, installs it.
func (c *Conn) decide(ctx context.Context) error {
	a := c.a
	token, verified := "", false
	if s := a.cfg.TokenSigning; s != nil {
		t, err := verifyToken(c.info.Username, s.TokenKeyName, a.keys)
		if err != nil {
			a.denied.Add(1)
			return c.deny(ErrSignature, unwrapDetail(err, ErrSignature))
		}
		token, verified = t, true
	}
	if !a.limiter.take(a.now()) {
		a.denied.Add(1)
		return c.deny(ErrRateLimited, fmt.Sprintf("more than %g calls per second (burst %d)", a.cfg.Rate, a.cfg.Burst))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		a.denied.Add(1)
		return c.deny(ErrBusy, fmt.Sprintf("no free call slot (max_concurrent %d) before the deadline", a.cfg.MaxConcurrent))
	}
	ev, err := json.Marshal(a.event(c.info, token, verified))
	if err != nil {
		<-a.slots
		a.denied.Add(1)
		return c.deny(ErrMalformed, "encoding the event: "+err.Error())
	}
	a.calls.Add(1)
	a.inFlight.Add(1)
	raw, err := a.call.call(ctx, ev)
	a.inFlight.Add(-1)
	<-a.slots
	if err != nil {
		a.denied.Add(1)
		reason := ErrTransport
		if errors.Is(err, ErrTimeout) {
			reason = ErrTimeout
		}
		return c.deny(reason, unwrapDetail(err, reason))
	}
	ans, pols, err := parseAnswer(raw)
	if err != nil {
		a.denied.Add(1)
		reason := ErrMalformed
		if errors.Is(err, ErrPolicy) {
			reason = ErrPolicy
		}
		return c.deny(reason, unwrapDetail(err, reason))
	}
	if !ans.IsAuthenticated {
		a.denied.Add(1)
		de := c.deny(ErrNotAuthenticated, "")
		if ans.PrincipalID != "" && principalRE.MatchString(ans.PrincipalID) {
			de.PrincipalID = ans.PrincipalID
		}
		return de
	}
	a.allowed.Add(1)
	principal := ans.PrincipalID
	c.principal.Store(&principal)
	c.sess.Store(authz.NewSession(c.info.Identity, fmt.Sprintf("custom authorizer: principal %q, %d policy document(s)", principal, len(pols)), pols))
	now := a.now()
	c.disc.Store(c.connectedAt.Add(time.Duration(ans.DisconnectAfterInSeconds) * time.Second).UnixNano())
	c.refresh.Store(now.Add(time.Duration(ans.RefreshAfterInSeconds) * time.Second).UnixNano())
	a.log.Debug("authorizer allowed", "device", c.info.ClientID, "principal", principal, "connection", c.info.ConnectionID)
	return nil
}

// unwrapDetail is err's text without the sentinel's own text (the DenyError shows
// the sentinel once).
func unwrapDetail(err, reason error) string {
	s := err.Error()
	prefix := reason.Error() + ": "
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	if s == reason.Error() {
		return ""
	}
	return s
}

// bucket is a token bucket: rate tokens per second up to burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int, now time.Time) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.burst, b.tokens+d*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// newUUID returns a random (version 4) UUID for connectionMetadata.id.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
