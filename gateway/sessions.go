package gateway

// Offline MQTT sessions, as `edgegw run` wires them:
//
//	store.Queue.KV("sessions") ──> Broker.RestoreSessions (before the listeners accept)
//
// The persistent sessions whose clients are away, their subscriptions and
// the messages held for them live in the queue's database (its own key
// space, encrypted like the queue): the first bridge's queue, or without a
// bridge section a store opened at store.dir for them (and the shadows).
// So they outlive a restart or a kill -9 of the daemon, and a publisher's
// PUBACK for a message held for an offline session waits for its write, as
// for a message queued upstream (gateway/broker sessions.go).

import (
	"context"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/store"
)

// sessionSpace is the offline sessions' key space in the queue's database.
const sessionSpace = "sessions"

// openSessions opens the sessions' key space on q and restores the
// sessions it holds into b.
func (g *Gateway) openSessions(ctx context.Context, b *broker.Broker, q *store.Queue) (*store.KV, error) {
	kv, err := q.KV(sessionSpace)
	if err != nil {
		return nil, fmt.Errorf("opening the offline session store: %w", err)
	}
	n, msgs, err := b.RestoreSessions(ctx, kv)
	if err != nil {
		kv.Close()
		return nil, err
	}
	g.log.Info("offline sessions restored", "sessions", n, "messages", msgs)
	return kv, nil
}

// openLocalStore opens the store at store.dir when no bridge does: it holds
// the offline sessions and the shadows.
func (g *Gateway) openLocalStore(ctx context.Context, aud *audit.Log, onSync func(time.Duration)) (*store.Queue, error) {
	cfg := g.cfg
	if err := ensureQueueKey(ctx, cfg, g.log); err != nil {
		return nil, err
	}
	so, err := StoreOptionsFromConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	so.Logger = g.log.With("component", "queue")
	so.OnSync = onSync
	q, err := store.Open(so)
	if err != nil {
		return nil, fmt.Errorf("opening store %q for the offline sessions and shadows: %w", so.Dir, err)
	}
	reportQueueOpen(aud, q.OpenReport())
	return q, nil
}

// firstQueue is the queue of the first bridge (nil: no bridge).
func (u *upstream) firstQueue() *store.Queue {
	if u == nil || len(u.links) == 0 {
		return nil
	}
	return u.links[0].queue
}
