package observe

// Live queue operations on the admin socket, while the daemon runs (the
// daemon holds the queue's lock, so the offline `edgegw queue` commands
// cannot open it then):
//
//	GET  /queue/peek?route=R&n=N[&dead=1]       QueuePeek: the oldest messages (or dead letters)
//	GET  /queue/export?route=R[&dead=1]         JSON lines, payload in base64 (store's export format)
//	POST /queue/purge?route=R[&older_than_seconds=S][&dead=1]   QueueOpResult
//	POST /queue/replay[?route=R][&older_than_seconds=S][&reason=TEXT]  QueueOpResult
//
// Each takes ?bridge=NAME for that bridge's queue (default: the first).
//
// Every operation is audited (queue_peek, queue_export, queue_purge,
// queue_replay) with the route and the count; payloads never.
//
// Replay moves dead letters back into their route: they are enqueued again,
// in their order (new sequence numbers, at the back of the route), durably,
// and only then removed from the dead-letter area, so a crash in between
// sends them twice, never loses them. The removal is skipped when new dead
// letters arrived meanwhile (see replayRoute). The store removes dead letters a route
// at a time; so the age and reason filters select routes, not single
// messages: a route whose dead letters do not all match is skipped and
// named in the result (narrow with route=, or purge what must not go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/store"
)

// QueueOps is what the live queue operations need; *store.Queue satisfies it.
type QueueOps interface {
	Stats() store.Stats
	Peek(route string, n int) ([]store.Message, error)
	DeadLetters(route string, n int) ([]store.DeadLetter, error)
	Export(route string, w io.Writer) (int, error)
	ExportDeadLetters(route string, w io.Writer) (int, error)
	Purge(route string, olderThan time.Duration) (int, error)
	PurgeDeadLetters(route string) (int, error)
	Enqueue(ctx context.Context, m store.Message) (uint64, error)
}

// Auditor records the operations; *audit.Log satisfies it.
type Auditor interface{ Record(audit.Event) }

var (
	_ QueueOps = (*store.Queue)(nil)
	_ Auditor  = (*audit.Log)(nil)
)

// Audit events of the live queue operations.
const (
	EventQueuePeek   = "queue_peek"
	EventQueueExport = "queue_export"
	EventQueuePurge  = "queue_purge"
	EventQueueReplay = "queue_replay"
)

// QueueMessage is one message (or dead letter) as peek shows it.
type QueueMessage struct {
	Seq       uint64    `json:"seq"`
	Route     string    `json:"route"`
	Topic     string    `json:"topic"`
	Device    string    `json:"device"`
	QoS       byte      `json:"qos"`
	Retain    bool      `json:"retain"`
	Time      time.Time `json:"time,omitzero"`
	SizeBytes int       `json:"size_bytes"`
	Payload   []byte    `json:"payload"` // base64
	Reason    string    `json:"reason,omitempty"`
}

// QueuePeek is the body of GET /queue/peek.
type QueuePeek struct {
	Dead     bool           `json:"dead"`
	Messages []QueueMessage `json:"messages"`
}

// QueueOpResult is the body of POST /queue/purge and /queue/replay.
type QueueOpResult struct {
	Operation string        `json:"operation"` // purge | purge_dead | replay
	Count     int           `json:"count"`     // messages purged or replayed
	Routes    []RouteCount  `json:"routes"`
	Skipped   []RouteReason `json:"skipped"` // replay: routes left in the dead-letter area, and why
}

// RouteCount is one route's share of an operation.
type RouteCount struct {
	Route string `json:"route"`
	Count int    `json:"count"`
}

// RouteReason names a route an operation left alone.
type RouteReason struct {
	Route  string `json:"route"`
	Reason string `json:"reason"`
}

// queueOps serialises the operations that change the queue: two replays at
// once would enqueue the same dead letters twice.
var queueOpsMu sync.Mutex

func (o *Observer) adminQueueOps(mux *http.ServeMux) {
	mux.HandleFunc("GET /queue/peek", o.serveQueuePeek)
	mux.HandleFunc("GET /queue/export", o.serveQueueExport)
	mux.HandleFunc("POST /queue/purge", o.serveQueuePurge)
	mux.HandleFunc("POST /queue/replay", o.serveQueueReplay)
}

// ops is the queue the request names (?bridge=NAME; default: the first
// bridge's).
func (o *Observer) ops(w http.ResponseWriter, r *http.Request) QueueOps {
	src := o.queue
	if name := r.URL.Query().Get("bridge"); name != "" {
		if src = o.bridgeQueue(name); src == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no bridge %q runs a queue here", name)})
			return nil
		}
	}
	q, ok := src.(QueueOps)
	if !ok || q == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this gateway runs no queue (no bridge configured)"})
		return nil
	}
	return q
}

func (o *Observer) audit(ev audit.Event) {
	if o.auditor != nil {
		o.auditor.Record(ev)
	}
}

func opError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, store.ErrNoRoute) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func (o *Observer) serveQueuePeek(w http.ResponseWriter, r *http.Request) {
	q := o.ops(w, r)
	if q == nil {
		return
	}
	route, dead := r.URL.Query().Get("route"), r.URL.Query().Get("dead") == "1"
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "n: want a positive number of messages"})
		return
	}
	out := QueuePeek{Dead: dead, Messages: []QueueMessage{}}
	if dead {
		dls, err := q.DeadLetters(route, n)
		if err != nil {
			opError(w, err)
			return
		}
		for _, d := range dls {
			m := QueueMessageOf(&d.Message)
			m.Reason = d.Reason
			out.Messages = append(out.Messages, m)
		}
	} else {
		ms, err := q.Peek(route, n)
		if err != nil {
			opError(w, err)
			return
		}
		for i := range ms {
			out.Messages = append(out.Messages, QueueMessageOf(&ms[i]))
		}
	}
	o.audit(audit.Event{Event: EventQueuePeek, Resource: routeResource(route, dead), Count: int64(len(out.Messages))})
	writeJSON(w, http.StatusOK, out)
}

// QueueMessageOf is m as peek shows it.
func QueueMessageOf(m *store.Message) QueueMessage {
	qm := QueueMessage{Seq: m.Seq, Route: m.Route, Topic: m.Topic, Device: m.Device, QoS: m.QoS, Retain: m.Retain,
		SizeBytes: len(m.Payload), Payload: m.Payload}
	if m.Time > 0 {
		qm.Time = time.Unix(0, m.Time).UTC()
	}
	return qm
}

// routeResource names what an operation worked on in the audit log.
func routeResource(route string, dead bool) string {
	if route == "" {
		route = "*"
	}
	if dead {
		return "route/" + route + "/dead-letters"
	}
	return "route/" + route
}

func (o *Observer) serveQueueExport(w http.ResponseWriter, r *http.Request) {
	q := o.ops(w, r)
	if q == nil {
		return
	}
	route, dead := r.URL.Query().Get("route"), r.URL.Query().Get("dead") == "1"
	// Check the route before the 200 goes out.
	if route != "" {
		if _, err := q.Peek(route, 1); err != nil {
			opError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	var n int
	var err error
	if dead {
		n, err = q.ExportDeadLetters(route, w)
	} else {
		n, err = q.Export(route, w)
	}
	ev := audit.Event{Event: EventQueueExport, Resource: routeResource(route, dead), Count: int64(n)}
	if err != nil {
		ev.Reason = "export ended early: " + err.Error()
		// The status is sent; a cut stream is how the client learns (it
		// counts lines against the trailer-less body).
		o.log.Warn("queue export ended early", "route", route, "err", err)
	}
	o.audit(ev)
}

func (o *Observer) serveQueuePurge(w http.ResponseWriter, r *http.Request) {
	q := o.ops(w, r)
	if q == nil {
		return
	}
	qv := r.URL.Query()
	route, dead := qv.Get("route"), qv.Get("dead") == "1"
	if route == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "route: required (purge works on one route)"})
		return
	}
	older, ok := olderThan(w, qv.Get("older_than_seconds"))
	if !ok {
		return
	}
	if dead && older > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "older_than_seconds does not apply to dead letters"})
		return
	}
	queueOpsMu.Lock()
	defer queueOpsMu.Unlock()
	res := QueueOpResult{Operation: "purge", Routes: []RouteCount{}, Skipped: []RouteReason{}}
	var n int
	var err error
	if dead {
		res.Operation = "purge_dead"
		n, err = q.PurgeDeadLetters(route)
	} else {
		n, err = q.Purge(route, older)
	}
	ev := audit.Event{Event: EventQueuePurge, Resource: routeResource(route, dead), Count: int64(n)}
	if older > 0 {
		ev.Reason = "older than " + older.String()
	}
	if err != nil {
		ev.Reason = err.Error()
		o.audit(ev)
		opError(w, err)
		return
	}
	o.audit(ev)
	res.Count, res.Routes = n, append(res.Routes, RouteCount{Route: route, Count: n})
	writeJSON(w, http.StatusOK, res)
}

func olderThan(w http.ResponseWriter, s string) (time.Duration, bool) {
	if s == "" {
		return 0, true
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec <= 0 || sec > 100*365*86400 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("older_than_seconds %q: want a positive whole number of seconds", s)})
		return 0, false
	}
	return time.Duration(sec) * time.Second, true
}

func (o *Observer) serveQueueReplay(w http.ResponseWriter, r *http.Request) {
	q := o.ops(w, r)
	if q == nil {
		return
	}
	qv := r.URL.Query()
	older, ok := olderThan(w, qv.Get("older_than_seconds"))
	if !ok {
		return
	}
	res, err := o.replay(r.Context(), q, qv.Get("route"), older, qv.Get("reason"))
	if err != nil {
		opError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// replay moves the dead letters of route ("" = every route) back into
// their routes; see the comment at the top of this file.
func (o *Observer) replay(ctx context.Context, q QueueOps, route string, older time.Duration, reason string) (QueueOpResult, error) {
	queueOpsMu.Lock()
	defer queueOpsMu.Unlock()
	res := QueueOpResult{Operation: "replay", Routes: []RouteCount{}, Skipped: []RouteReason{}}
	var routes []string
	for _, rs := range q.Stats().Routes {
		if (route == "" || rs.Name == route) && rs.DeadLetters > 0 {
			routes = append(routes, rs.Name)
		}
	}
	if route != "" && len(routes) == 0 {
		if _, err := q.DeadLetters(route, 1); err != nil {
			return res, err // unknown route
		}
	}
	now := time.Now()
	for _, name := range routes {
		before := deadLettered(q, name) // before the list is read: see replayRoute
		dls, err := allDeadLetters(ctx, q, name)
		if err != nil {
			return res, fmt.Errorf("replaying route %q: %w", name, err)
		}
		if why := filterMismatch(dls, older, reason, now); why != "" {
			res.Skipped = append(res.Skipped, RouteReason{Route: name, Reason: why})
			continue
		}
		n, err := o.replayRoute(ctx, q, name, dls, before)
		res.Count += n
		if n > 0 {
			res.Routes = append(res.Routes, RouteCount{Route: name, Count: n})
		}
		ev := audit.Event{Event: EventQueueReplay, Resource: routeResource(name, true), Count: int64(n)}
		if err != nil {
			ev.Reason = err.Error()
			o.audit(ev)
			return res, err
		}
		o.audit(ev)
	}
	if len(res.Routes) == 0 {
		o.audit(audit.Event{Event: EventQueueReplay, Resource: routeResource(route, true), Count: 0})
	}
	return res, nil
}

// allDeadLetters reads every dead letter of route. The queue counts a dead
// letter when it is moved and writes it with its next commit, so a list read
// at once may lack the newest: it is read again (for at most 5 s) until it
// holds as many as the queue counts.
func allDeadLetters(ctx context.Context, q QueueOps, route string) ([]store.DeadLetter, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var held int64
		for _, rs := range q.Stats().Routes {
			if rs.Name == route {
				held = rs.DeadLetters
			}
		}
		dls, err := q.DeadLetters(route, 0)
		if err != nil {
			return nil, fmt.Errorf("reading its dead letters: %w", err)
		}
		if int64(len(dls)) >= held {
			return dls, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("reading its dead letters: %d written of the %d counted after 5s; try again", len(dls), held)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// deadLettered is the route's lifetime count of messages moved to the
// dead letters (it only grows).
func deadLettered(q QueueOps, route string) uint64 {
	for _, rs := range q.Stats().Routes {
		if rs.Name == route {
			return rs.DeadLettered
		}
	}
	return 0
}

// ErrReplayRace: dead letters arrived while a replay ran; the dead-letter
// area was left as it was (the replayed copies are queued too).
var ErrReplayRace = errors.New("new dead letters arrived during the replay")

// replayRoute enqueues dls (read after the route's dead-letter count was
// before) in their order, then removes the route's dead letters. The store
// removes a route's dead letters all at once, so the removal happens only
// when no dead letter arrived since the list was read (the count is
// unchanged): otherwise the new ones would be removed unsent. When one did
// arrive (the upstream still refuses, e.g. the replayed copies), the dead
// letters are kept and the error says so: a later replay may then send some
// twice, never none.
func (o *Observer) replayRoute(ctx context.Context, q QueueOps, route string, dls []store.DeadLetter, before uint64) (int, error) {
	done := 0
	for _, d := range dls {
		m := d.Message
		m.Route, m.Seq, m.Time = route, 0, 0
		if _, err := q.Enqueue(ctx, m); err != nil {
			return done, fmt.Errorf("replaying route %q: enqueueing dead letter %d: %w (%d replayed; they are still in the dead-letter area too: purge them with dead=1 once delivered)", route, d.Seq, err, done)
		}
		done++
	}
	if after := deadLettered(q, route); after != before {
		return done, fmt.Errorf("replaying route %q: %d replayed and queued; %w (%d; is the upstream still refusing?), so the dead-letter area was left as it was: check the upstream, then purge the route's dead letters (they would be sent again by the next replay)", route, done, ErrReplayRace, after-before)
	}
	purged, err := q.PurgeDeadLetters(route)
	if err != nil {
		return done, fmt.Errorf("replaying route %q: %d replayed; removing them from the dead-letter area: %w (purge with dead=1, or they are sent again by the next replay)", route, done, err)
	}
	if purged < done {
		return done, fmt.Errorf("replaying route %q: %d replayed but only %d removed from the dead-letter area: %d stay there (purge them with dead=1 once the replayed ones are delivered, or they are sent again by the next replay)", route, done, purged, done-purged)
	}
	if purged > done {
		o.log.Error("dead letters arrived during a replay and were removed unsent", "route", route, "replayed", done, "removed", purged)
		return done, fmt.Errorf("replaying route %q: %d replayed but %d removed from the dead-letter area: %d arrived in the last moment of the replay and were removed unsent", route, done, purged, purged-done)
	}
	return done, nil
}

// adminDo sends one request to the admin socket; the caller closes the body.
func adminDo(ctx context.Context, socket, method, urlPath string) (*http.Response, func(), error) {
	tr := adminTransport(socket)
	req, err := http.NewRequestWithContext(ctx, method, "http://edgegw"+urlPath, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("%w (no daemon at %s)", ErrNotRunning, socket)
		}
		return nil, nil, fmt.Errorf("asking the daemon at %s: %w", socket, err)
	}
	return resp, func() { resp.Body.Close(); tr.CloseIdleConnections() }, nil
}

func adminStatus(socket, urlPath string, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return fmt.Errorf("daemon at %s: %s %s: %s", socket, urlPath, resp.Status, e.Error)
}

// AdminPost sends POST urlPath to the daemon and decodes the JSON answer
// into v. ErrNotRunning means nobody answers there.
func AdminPost(ctx context.Context, socket, urlPath string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // a replay of many dead letters takes a while
	defer cancel()
	resp, done, err := adminDo(ctx, socket, http.MethodPost, urlPath)
	if err != nil {
		return err
	}
	defer done()
	if err := adminStatus(socket, urlPath, resp); err != nil {
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("daemon at %s: decoding %s: %w", socket, urlPath, err)
	}
	return nil
}

// AdminCopy sends GET urlPath to the daemon and copies the body to w (the
// export's JSON lines).
func AdminCopy(ctx context.Context, socket, urlPath string, w io.Writer) error {
	resp, done, err := adminDo(ctx, socket, http.MethodGet, urlPath)
	if err != nil {
		return err
	}
	defer done()
	if err := adminStatus(socket, urlPath, resp); err != nil {
		return err
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("daemon at %s: reading %s: %w", socket, urlPath, err)
	}
	return nil
}

// filterMismatch says why not all of a route's dead letters match the
// filters ("" = they all do).
func filterMismatch(dls []store.DeadLetter, older time.Duration, reason string, now time.Time) string {
	miss := 0
	for _, d := range dls {
		if reason != "" && d.Reason != reason {
			miss++
			continue
		}
		if older > 0 && (d.At <= 0 || now.Sub(time.Unix(0, d.At)) < older) {
			miss++
		}
	}
	if miss == 0 {
		return ""
	}
	return fmt.Sprintf("%d of its %d dead letters do not match the filters; the queue removes dead letters a route at a time, so none were replayed (replay by route, or purge the others first)", miss, len(dls))
}
