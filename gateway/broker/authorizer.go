package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authorizer"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker/listen"
)

// A listener with an `authorizer:` (gateway/authorizer) decides its CONNECTs
// with the custom authorizer instead of the registry: the TLS handshake and
// the password file (when configured) still apply, then the authorizer gets
// the CONNECT (user name, password, client ID, the verified certificate's
// identity, the source address) and answers with policy documents. Those
// policies, enforced by gateway/authz exactly like the registry's, are the
// connection's session: iot:Connect is checked on them, and every PUBLISH,
// SUBSCRIBE and delivery after it, as for any client (AWS IoT Core does the
// same for a custom-authorized connection).
//
// Every refusal (isAuthenticated false, a timeout, an error, a malformed
// answer, the rate limit) denies the CONNECT (fail closed) with a
// connect_refused audit line carrying the typed reason (*authorizer.DenyError).
// A hanging authorizer stalls only the CONNECT that waits for it (mochi reads
// each connection on its own goroutine), and only for the authorizer's
// timeout.
//
// The answer's disconnectAfterInSeconds and refreshAfterInSeconds are kept
// per connection: a timer calls Maintain at whichever comes first; a refresh
// swaps in the new policies (re-checking iot:Connect and the subscriptions),
// and a denial or the end of the session disconnects the client with a
// policy_disconnect audit line. A reload of the registry and policies leaves
// such connections alone: their policies are the authorizer's.

// connAuthorizer is what the broker needs of a listener's authorizer;
// *authorizer.Authorizer satisfies it through azAdapter.
type connAuthorizer interface {
	Connect(ctx context.Context, info authorizer.ConnectInfo) (authorizedConn, error)
}

// authorizedConn is one connection's authorizer decision (*authorizer.Conn).
type authorizedConn interface {
	Session() *authz.Session
	Maintain(ctx context.Context) error
	RefreshAt() time.Time
	DisconnectAt() time.Time
}

type azAdapter struct{ a *authorizer.Authorizer }

func (x azAdapter) Connect(ctx context.Context, info authorizer.ConnectInfo) (authorizedConn, error) {
	c, err := x.a.Connect(ctx, info)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newAuthorizer builds a listener's authorizer; tests replace it with a fake
// to drive refresh and expiry without waiting the authorizer's minimum of
// 300 seconds.
var newAuthorizer = func(cfg authorizer.Config, log *slog.Logger) (connAuthorizer, error) {
	a, err := authorizer.New(cfg, log)
	if err != nil {
		return nil, err
	}
	return azAdapter{a}, nil
}

// newListenerAuthorizer builds a listener's authorizer from its options.
func (b *Broker) newListenerAuthorizer(lo ListenerOptions) (connAuthorizer, error) {
	if lo.Authorizer == nil {
		return nil, nil
	}
	if err := AuthorizerFits(*lo.Authorizer, b.limits); err != nil {
		return nil, fmt.Errorf("listener %q: %w", lo.Name, err)
	}
	a, err := newAuthorizer(*lo.Authorizer, b.log)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", lo.Name, err)
	}
	return a, nil
}

// azState is a client's authorizer decision and its maintenance timer.
type azState struct {
	conn  authorizedConn
	mu    sync.Mutex
	timer *time.Timer
	gone  bool
}

// bindConnect returns the session a CONNECT is decided on: the listener's
// custom authorizer's answer, or the registry's policies for the thing.
func (b *Broker) bindConnect(st *clientState, pk packets.Packet) (*authz.Session, error) {
	az := st.ls.az
	if az == nil {
		return b.policy.Load().Bind(st.authzIdentity())
	}
	info := authorizer.ConnectInfo{Identity: st.authzIdentity(), Listener: st.ls.opts.Name}
	if pk.Connect.PasswordFlag {
		info.Password = pk.Connect.Password
		if info.Password == nil {
			info.Password = []byte{}
		}
	}
	c, err := az.Connect(context.Background(), info)
	if err != nil {
		b.metrics.AuthorizerDenied.Add(1)
		return nil, err
	}
	st.az = &azState{conn: c}
	return c.Session(), nil
}

// connectCause is the audit cause of a refused bind.
func connectCause(err error) audit.Cause {
	var de *authorizer.DenyError
	if errors.As(err, &de) {
		return audit.CauseNotAuthorized
	}
	return listen.CauseOf(err, false, audit.CauseUnknownThing)
}

// maintainAuthorizer arms the client's timer for its next refresh or expiry.
func (b *Broker) maintainAuthorizer(st *clientState) {
	a := st.az
	if a == nil {
		return
	}
	next := a.conn.RefreshAt()
	if d := a.conn.DisconnectAt(); d.Before(next) {
		next = d
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		return
	}
	a.timer = time.AfterFunc(max(time.Until(next), 0), func() { b.maintainNow(st) })
}

// maintainNow refreshes or ends the client's authorizer session.
func (b *Broker) maintainNow(st *clientState) {
	a := st.az
	a.mu.Lock()
	gone := a.gone
	a.mu.Unlock()
	if gone || st.cl.Closed() {
		return
	}
	err := a.conn.Maintain(context.Background())
	if err == nil {
		sess := a.conn.Session()
		if !sess.Allowed(authz.Connect, st.clientID) {
			err = fmt.Errorf("iot:Connect client/%s no longer allowed by the authorizer's policies: %s", st.clientID, explain(sess, authz.Connect, st.clientID))
		} else {
			st.sess.Store(sess)
			b.recheckSubscriptions(st, sess)
			b.maintainAuthorizer(st)
			return
		}
	}
	if errors.Is(err, authorizer.ErrSessionExpired) {
		b.metrics.AuthorizerExpired.Add(1)
	} else {
		b.metrics.AuthorizerDenied.Add(1)
	}
	b.metrics.PolicyDisconnects.Add(1)
	b.disconnect(st, audit.EventPolicyDisconnect, err.Error())
}

// stopAuthorizer stops the client's maintenance timer (on disconnect).
func (st *clientState) stopAuthorizer() {
	a := st.az
	if a == nil {
		return
	}
	a.mu.Lock()
	a.gone = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
}

// AuthorizerFits checks an authorizer's timeout against the broker's limits:
// the CONNECT is answered under the connection's handshake deadline
// (handshake_timeout, which covers the TLS handshake, the CONNECT and its
// CONNACK), so an authorizer allowed to take longer could never be answered.
func AuthorizerFits(cfg authorizer.Config, l Limits) error {
	l.fill()
	if t := cfg.WithDefaults().Timeout; t >= l.HandshakeTimeout {
		return fmt.Errorf("authorizer.timeout %v: must be shorter than limits.handshake_timeout (%v), under which the CONNECT is answered", t, l.HandshakeTimeout)
	}
	return nil
}
