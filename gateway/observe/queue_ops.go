package observe

// Live queue operations on the admin socket, while the daemon runs (the
// daemon holds the queue's lock, so the offline `edgegw queue` commands
// cannot open it then):
//
//	GET  /queue/peek?route=R&n=N[&dead=1]       QueuePeek: the oldest messages (or dead letters)
//	GET  /queue/export?route=R[&dead=1]         JSON lines, payload in base64 (store's export format)
//	POST /queue/purge?route=R[&older_than_seconds=S][&dead=1]   QueueOpResult
//	POST /queue/replay[?route=R][&reason=TEXT][&older_than_seconds=S][&newer_than_seconds=S][&since=T][&until=T]
//	                                            QueueOpResult (T: RFC 3339)
//
// Each takes ?bridge=NAME for that bridge's queue (default: the first).
//
// Every operation is audited (queue_peek, queue_export, queue_purge,
// queue_replay) with the route and the count; payloads never.
//
// Replay moves the dead letters the filters select back into their route
// (store.ReplayDeadLetters): queued again in their order, durably, and only
// then removed from the dead-letter area one by one, so the others stay. A
// crash in between sends them twice, never loses them. Filters: route,
// reason (a substring of the recorded reason, case folded: "0x87"), the
// age of the move to the dead letters (older_than_seconds,
// newer_than_seconds: judged by the daemon's clock, refused while it is not
// set) and absolute bounds (since, until).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	ReplayDeadLetters(ctx context.Context, f store.DeadFilter) (store.ReplayReport, error)
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
	Skipped   []RouteReason `json:"skipped"` // replay: routes with dead letters left in place, and why
	// Kept (replay) counts the dead letters left in place: not selected by
	// the filters, or damaged (never replayed).
	Kept int `json:"kept"`
	// Filter (replay) says what was selected: "all", or e.g.
	// "route telemetry, reason contains \"0x87\", older than 1h0m0s".
	Filter string `json:"filter,omitempty"`
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
	f, err := ReplayFilter(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	res, err := o.replay(r.Context(), q, f)
	if err != nil {
		opError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ReplayQuery is the query of POST /queue/replay for f (ages in whole
// seconds).
func ReplayQuery(f store.DeadFilter) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("route", f.Route)
	set("reason", f.Reason)
	if f.OlderThan > 0 {
		v.Set("older_than_seconds", strconv.FormatInt(int64(f.OlderThan/time.Second), 10))
	}
	if f.NewerThan > 0 {
		v.Set("newer_than_seconds", strconv.FormatInt(int64(f.NewerThan/time.Second), 10))
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return v
}

// ReplayFilter reads the filters of POST /queue/replay (ReplayQuery's).
func ReplayFilter(v url.Values) (store.DeadFilter, error) {
	f := store.DeadFilter{Route: v.Get("route"), Reason: v.Get("reason")}
	for _, a := range []struct {
		key string
		d   *time.Duration
	}{{"older_than_seconds", &f.OlderThan}, {"newer_than_seconds", &f.NewerThan}} {
		s := v.Get(a.key)
		if s == "" {
			continue
		}
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec <= 0 || sec > 100*365*86400 {
			return f, fmt.Errorf("%s %q: want a positive whole number of seconds", a.key, s)
		}
		*a.d = time.Duration(sec) * time.Second
	}
	for _, a := range []struct {
		key string
		t   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		s := v.Get(a.key)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-12-01T08:00:00Z", a.key, s)
		}
		*a.t = t
	}
	return f, nil
}

// replay is Replay on the daemon's queue, one at a time.
func (o *Observer) replay(ctx context.Context, q QueueOps, f store.DeadFilter) (QueueOpResult, error) {
	queueOpsMu.Lock()
	defer queueOpsMu.Unlock()
	return Replay(ctx, q, f, o.audit)
}

// Replay moves the dead letters f selects back into their routes and
// audits it: one queue_replay event per route replayed (or one with count
// 0 when none was), with the filter in the reason. The daemon's admin
// socket and the offline `edgegw queue replay` (daemon stopped) both use it.
func Replay(ctx context.Context, q QueueOps, f store.DeadFilter, record func(audit.Event)) (QueueOpResult, error) {
	res := QueueOpResult{Operation: "replay", Routes: []RouteCount{}, Skipped: []RouteReason{}, Filter: f.String()}
	rep, err := q.ReplayDeadLetters(ctx, f)
	res.Count, res.Kept = rep.Replayed, rep.Kept
	audited := false
	for _, rr := range rep.Routes {
		if rr.Replayed > 0 {
			res.Routes = append(res.Routes, RouteCount{Route: rr.Route, Count: rr.Replayed})
			record(audit.Event{Event: EventQueueReplay, Resource: routeResource(rr.Route, true), Count: int64(rr.Replayed),
				Reason: "filter: " + f.String()})
			audited = true
		}
		if rr.Kept > 0 {
			res.Skipped = append(res.Skipped, RouteReason{Route: rr.Route,
				Reason: fmt.Sprintf("%d dead letters kept: not selected by the filters (or damaged)", rr.Kept)})
		}
	}
	if err != nil {
		record(audit.Event{Event: EventQueueReplay, Resource: routeResource(f.Route, true), Count: int64(rep.Replayed),
			Reason: "filter: " + f.String() + "; failed: " + err.Error()})
		return res, err
	}
	if !audited {
		record(audit.Event{Event: EventQueueReplay, Resource: routeResource(f.Route, true), Count: 0, Reason: "filter: " + f.String()})
	}
	return res, nil
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
