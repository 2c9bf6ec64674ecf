package localstate

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/store"
)

// sessionSpace is the offline sessions' key space in the queue's database.
const sessionSpace = "sessions"

// SessionRestorer is the broker that takes the offline sessions back;
// *broker.Broker satisfies it.
type SessionRestorer interface {
	RestoreSessions(ctx context.Context, db broker.SessionStore) (sessions, messages int, err error)
}

var _ SessionRestorer = (*broker.Broker)(nil)

// OpenSessions opens the sessions' key space on q and restores the
// sessions it holds into b. The caller closes the key space after the
// broker (whose disconnects write the sessions they keep offline).
func OpenSessions(ctx context.Context, b SessionRestorer, q *store.Queue, log *slog.Logger) (*store.KV, error) {
	kv, err := q.KV(sessionSpace)
	if err != nil {
		return nil, fmt.Errorf("opening the offline session store: %w", err)
	}
	n, msgs, err := b.RestoreSessions(ctx, kv)
	if err != nil {
		kv.Close()
		return nil, err
	}
	log.Info("offline sessions restored", "sessions", n, "messages", msgs)
	return kv, nil
}

// OpenStore opens the store at so.Dir (store.dir) when no bridge does: it
// holds the offline sessions and the shadows. What store.Open repaired or
// salvaged is audited (ReportQueueOpen).
func OpenStore(so store.Options, aud Auditor) (*store.Queue, error) {
	q, err := store.Open(so)
	if err != nil {
		return nil, fmt.Errorf("opening store %q for the offline sessions and shadows: %w", so.Dir, err)
	}
	ReportQueueOpen(aud, q.OpenReport())
	return q, nil
}
