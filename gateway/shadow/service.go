package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw/gateway/authz"
)

// Limits are the Device Shadow service limits the service enforces. The zero
// value of a field means the AWS limit.
type Limits struct {
	// MaxPayloadBytes caps a request payload (413). AWS: the message broker's
	// 128 KiB payload limit.
	MaxPayloadBytes int
	// MaxStateBytes caps the shadow's desired plus reported data after an update,
	// as compact JSON without metadata (413). AWS: 8 KB (diagnosing-shadows:
	// "Only the data for desired and reported state ... counts toward the limit").
	MaxStateBytes int
	// MaxDepth caps the nesting levels inside desired and reported (400).
	// AWS: 6 (device-shadow-error-messages).
	MaxDepth int
}

// AWS's limits.
const (
	DefaultMaxPayloadBytes = 128 * 1024
	DefaultMaxStateBytes   = 8 * 1024
	DefaultMaxDepth        = 6
	maxClientTokenBytes    = 64 // device-shadow-document, "Client tokens"
)

func (l Limits) withDefaults() Limits {
	if l.MaxPayloadBytes <= 0 {
		l.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if l.MaxStateBytes <= 0 {
		l.MaxStateBytes = DefaultMaxStateBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Options configure a Service.
type Options struct {
	Logger *slog.Logger // nil: discard
	Limits Limits
	// Now is the clock for requests without a Time; nil means time.Now.
	Now func() time.Time
}

// Request is one PUBLISH to a shadow request topic, as the broker received it
// and after the broker authorized it.
type Request struct {
	Topic    string
	Payload  []byte
	ClientID string    // the publishing client's MQTT client ID (for logs)
	Thing    string    // the publishing client's thing name, if it has one (for logs)
	Time     time.Time // when the broker received it; zero means now
}

// Response is one message the caller publishes on the local broker.
type Response struct {
	Topic   string
	Payload []byte
}

// Error is a Device Shadow error: an HTTP status code and AWS's message text
// (device-shadow-error-messages). It is published as the error response document
// {"code", "message", "timestamp", "clientToken"} on the .../rejected topic.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("shadow: %d %s", e.Code, e.Message) }

// The documented errors.
var (
	errInvalidJSON    = &Error{400, "Invalid JSON"}
	errMissingState   = &Error{400, "Missing required node: state"}
	errStateNotObject = &Error{400, "State node must be an object"}
	errDesiredNotObj  = &Error{400, "Desired node must be an object"}
	errReportedNotObj = &Error{400, "Reported node must be an object"}
	errInvalidVersion = &Error{400, "Invalid version"}
	errInvalidToken   = &Error{400, "Invalid clientToken"}
	errInvalidNode    = &Error{400, "State contains an invalid node"}
	errVersion        = &Error{409, "Version conflict"}
	errTooLarge       = &Error{413, "The payload exceeds the maximum size allowed"}
	errEncoding       = &Error{415, "Unsupported documented encoding; supported encoding is UTF-8"}
	errInternal       = &Error{500, "Internal service failure"}
	// ErrForbidden is what the broker publishes on .../rejected (with Reject)
	// when the client may publish the request but not perform the action.
	ErrForbidden = &Error{403, "Forbidden"}
)

func errTooDeep(max int) *Error {
	return &Error{400, "JSON contains too many levels of nesting; maximum is " + strconv.Itoa(max)}
}

func errNoShadow(name string) *Error {
	return &Error{404, "No shadow exists with name: '" + name + "'"}
}

// Service answers Device Shadow requests from local clients, with AWS IoT's MQTT
// API, and keeps the shadows in a Store. It is safe for concurrent use: requests
// to one shadow are handled one at a time, requests to different shadows in
// parallel.
type Service struct {
	store  Store
	log    *slog.Logger
	limits Limits
	now    func() time.Time

	// locks serialize the read-modify-write of one shadow; shadows in
	// different stripes proceed in parallel, so a Store can group their writes
	// into one sync to disk.
	locks [64]sync.Mutex
	sync  atomic.Pointer[Syncer] // set by NewSyncer; nil without cloud sync
}

// lock takes the lock of the shadow stored under key and returns its unlock.
func (s *Service) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// New returns a Service keeping its shadows in store.
func New(store Store, opts Options) *Service {
	s := &Service{store: store, log: opts.Logger, limits: opts.Limits.withDefaults(), now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func docKey(thing, shadow string) string { return "d/" + thing + "/" + shadow }

// Handle answers one request published to a shadow request topic and returns the
// messages to publish locally, in order: the accepted or rejected response, then
// for an accepted update the delta (if any) and the documents message. A topic
// that is not a shadow request (see Match) gets nil.
func (s *Service) Handle(ctx context.Context, req Request) []Response {
	t, ok := ParseTopic(req.Topic)
	if !ok || t.Kind != KindRequest {
		return nil
	}
	ts := s.unix(req.Time)
	if len(req.Payload) > s.limits.MaxPayloadBytes {
		return reject(t, ts, "", errTooLarge)
	}
	if !utf8.Valid(req.Payload) {
		return reject(t, ts, "", errEncoding)
	}
	var out []Response
	var err error
	switch t.Op {
	case OpGet:
		out, err = s.handleGet(ctx, t, req.Payload, ts)
	case OpUpdate:
		out, err = s.handleUpdate(ctx, t, req.Payload, ts)
	case OpDelete:
		out, err = s.handleDelete(ctx, t, req.Payload, ts)
	}
	if err != nil {
		device := req.Thing
		if device == "" {
			device = req.ClientID
		}
		s.log.Error("shadow request failed", "component", "shadow", "device", device, "topic", req.Topic, "err", err)
		return reject(t, ts, tokenOf(req.Payload), errInternal)
	}
	return out
}

// Reject returns the rejected response for req with e, for a request the
// caller refuses itself (ErrForbidden). A topic that is not a shadow request
// gets nil.
func (s *Service) Reject(req Request, e *Error) []Response {
	t, ok := ParseTopic(req.Topic)
	if !ok || t.Kind != KindRequest {
		return nil
	}
	return reject(t, s.unix(req.Time), tokenOf(req.Payload), e)
}

func (s *Service) unix(t time.Time) int64 {
	if t.IsZero() {
		t = s.now()
	}
	return t.Unix()
}

func tsNum(ts int64) json.Number { return json.Number(strconv.FormatInt(ts, 10)) }

// tokenOf returns the clientToken of a get or delete payload when it has a valid
// one. AWS ignores the rest of those payloads; the SDKs send {"clientToken": ...}
// and match the response by it.
func tokenOf(payload []byte) string {
	if len(payload) == 0 {
		return ""
	}
	m, ok := decodeObject(payload)
	if !ok {
		return ""
	}
	tok, ok := m["clientToken"].(string)
	if !ok || len(tok) > maxClientTokenBytes {
		return ""
	}
	return tok
}

// reject builds the error response document on OP/rejected.
func reject(t Topic, ts int64, token string, e *Error) []Response {
	body := map[string]any{"code": e.Code, "message": e.Message, "timestamp": ts}
	if token != "" {
		body["clientToken"] = token
	}
	return []Response{{Topic: t.with(t.Op, KindRejected).String(), Payload: encode(body)}}
}

// load reads a shadow; nil, nil when there is none (not even a tombstone).
func (s *Service) load(ctx context.Context, t Topic) (*document, error) {
	b, err := s.store.Get(ctx, docKey(t.Thing, t.Shadow))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading shadow %s: %w", shadowID(t), err)
	}
	d, err := unmarshalDocument(b)
	if err != nil {
		return nil, fmt.Errorf("reading shadow %s: %w", shadowID(t), err)
	}
	return d, nil
}

func shadowID(t Topic) string {
	if t.Shadow == "" {
		return t.Thing
	}
	return t.Thing + "/" + t.Shadow
}

func shadowName(t Topic) string {
	if t.Shadow == "" {
		return t.Thing
	}
	return t.Shadow
}

// optional token: a get or delete payload may be empty; when it is a JSON object
// its clientToken must be valid.
func optionalToken(payload []byte) (string, *Error) {
	if len(strings.TrimSpace(string(payload))) == 0 {
		return "", nil
	}
	m, ok := decodeObject(payload)
	if !ok {
		return "", nil // AWS ignores the content of get and delete requests
	}
	return clientToken(m)
}

func clientToken(m map[string]any) (string, *Error) {
	v, ok := m["clientToken"]
	if !ok {
		return "", nil
	}
	tok, ok := v.(string)
	if !ok || len(tok) > maxClientTokenBytes {
		return "", errInvalidToken
	}
	return tok, nil
}

func (s *Service) handleGet(ctx context.Context, t Topic, payload []byte, ts int64) ([]Response, error) {
	tok, e := optionalToken(payload)
	if e != nil {
		return reject(t, ts, "", e), nil
	}
	unlock := s.lock(docKey(t.Thing, t.Shadow))
	d, err := s.load(ctx, t)
	unlock()
	if err != nil {
		return nil, err
	}
	if !d.live() {
		return reject(t, ts, tok, errNoShadow(shadowName(t))), nil
	}
	body := getBody(d, ts)
	if tok != "" {
		body["clientToken"] = tok
	}
	return []Response{{Topic: t.with(OpGet, KindAccepted).String(), Payload: encode(body)}}, nil
}

// getBody is the complete shadow document: state with delta, metadata (with the
// delta's metadata, as in device-shadow-document "Delta state"), version and
// timestamp.
func getBody(d *document, ts int64) map[string]any {
	st, md := d.state(), d.metadata()
	if dl := delta(d.Desired, d.Reported); dl != nil {
		st["delta"] = dl
		md["delta"] = deltaMeta(dl, d.MetaDesired)
	}
	return map[string]any{"state": st, "metadata": md, "version": d.Version, "timestamp": ts}
}

func (s *Service) handleDelete(ctx context.Context, t Topic, payload []byte, ts int64) ([]Response, error) {
	tok, e := optionalToken(payload)
	if e != nil {
		return reject(t, ts, "", e), nil
	}
	defer s.lock(docKey(t.Thing, t.Shadow))()
	d, err := s.load(ctx, t)
	if err != nil {
		return nil, err
	}
	if !d.live() {
		return reject(t, ts, tok, errNoShadow(shadowName(t))), nil
	}
	tomb := &document{Version: d.Version, Timestamp: ts, Deleted: true, DeletedAt: ts}
	var b Batch
	b.Put(docKey(t.Thing, t.Shadow), tomb.marshal())
	if err := s.store.Write(ctx, &b); err != nil {
		return nil, fmt.Errorf("deleting shadow %s: %w", shadowID(t), err)
	}
	body := map[string]any{"version": d.Version, "timestamp": ts}
	if tok != "" {
		body["clientToken"] = tok
	}
	return []Response{{Topic: t.with(OpDelete, KindAccepted).String(), Payload: encode(body)}}, nil
}

// updateRequest is a validated update request state document.
type updateRequest struct {
	sections   map[string]any // "desired"/"reported" -> map[string]any, or nil (null)
	token      string
	version    int64
	versionSet bool
	nullState  bool // "state": null
}

// parseUpdate validates an update payload against the documented errors. The
// token is returned even with an error, when it is valid, so that the rejected
// response carries it.
func (s *Service) parseUpdate(payload []byte) (updateRequest, *Error) {
	var u updateRequest
	m, ok := decodeObject(payload)
	if !ok {
		return u, errInvalidJSON
	}
	tok, e := clientToken(m)
	if e != nil {
		return u, e
	}
	u.token = tok
	if v, ok := m["version"]; ok {
		n, isNum := v.(json.Number)
		if !isNum {
			return u, errInvalidVersion
		}
		ver, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || ver < 0 {
			return u, errInvalidVersion
		}
		u.version, u.versionSet = ver, true
	}
	sv, ok := m["state"]
	if !ok {
		return u, errMissingState
	}
	u.sections = map[string]any{}
	if sv == nil {
		// "Setting the device's shadow state to null does not delete the shadow"
		// (device-shadow-data-flow): it clears both sections.
		u.sections["desired"], u.sections["reported"] = nil, nil
		u.nullState = true
		return u, nil
	}
	st, ok := sv.(map[string]any)
	if !ok {
		return u, errStateNotObject
	}
	for k, v := range st {
		switch k {
		case "desired", "reported":
		case "delta":
			// A client may send back a whole get document; its delta is
			// computed, never written (AWS's Greengrass shadow manager also
			// accepts and ignores it).
			if _, isObj := v.(map[string]any); !isObj && v != nil {
				return u, errInvalidNode
			}
		default:
			return u, errInvalidNode
		}
	}
	// desired before reported, so that a request wrong in both always gets the
	// same error.
	for _, k := range [...]string{"desired", "reported"} {
		v, ok := st[k]
		if !ok {
			continue
		}
		if v == nil {
			u.sections[k] = nil
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			if k == "desired" {
				return u, errDesiredNotObj
			}
			return u, errReportedNotObj
		}
		if depth(obj) > s.limits.MaxDepth {
			return u, errTooDeep(s.limits.MaxDepth)
		}
		if hasNullInArray(obj) {
			return u, errInvalidNode
		}
		u.sections[k] = obj
	}
	return u, nil
}

func (s *Service) handleUpdate(ctx context.Context, t Topic, payload []byte, ts int64) ([]Response, error) {
	u, e := s.parseUpdate(payload)
	if e != nil {
		return reject(t, ts, u.token, e), nil
	}
	defer s.lock(docKey(t.Thing, t.Shadow))()
	prev, err := s.load(ctx, t)
	if err != nil {
		return nil, err
	}
	if u.versionSet && u.version != prev.baseVersion(ts) {
		return reject(t, ts, u.token, errVersion), nil
	}
	var b Batch
	cur, e := s.apply(t, prev, u.sections, ts, &b)
	if e != nil {
		return reject(t, ts, u.token, e), nil
	}
	var entry *outboxEntry
	syncer := s.sync.Load()
	if syncer != nil {
		if unlock := syncer.lockForLocal(t); unlock != nil {
			defer unlock() // before the shadow's lock: the lock order
			entry = syncer.recordLocked(t, u.sections, ts, &b)
		}
	}
	if err := s.store.Write(ctx, &b); err != nil {
		return nil, fmt.Errorf("writing shadow %s: %w", shadowID(t), err)
	}
	if entry != nil {
		syncer.commitLocked(entry)
	}
	return updateResponses(t, prev, cur, u.sections, u.nullState, u.token, ts), nil
}

// apply merges sections into a copy of prev, checks the size limit and adds the
// put of the new document to b. It returns the new document.
func (s *Service) apply(t Topic, prev *document, sections map[string]any, ts int64, b *Batch) (*document, *Error) {
	cur := &document{}
	if prev.live() {
		cur = prev.clone()
	}
	stamp := tsNum(ts)
	for name, pv := range sections {
		sec, meta := cur.section(name)
		patch, _ := pv.(map[string]any)
		if patch == nil {
			*sec, *meta = nil, nil
			continue
		}
		if *sec == nil {
			*sec, *meta = map[string]any{}, map[string]any{}
		}
		merge(*sec, *meta, patch, stamp)
		if len(*sec) == 0 {
			// A section left empty is removed, like one set to null
			// (device-shadow-document, "Empty shadow document properties").
			*sec, *meta = nil, nil
		}
	}
	if n := len(encode(cur.state())); n > s.limits.MaxStateBytes {
		return nil, errTooLarge
	}
	cur.Version = prev.baseVersion(ts) + 1
	cur.Timestamp = ts
	b.Put(docKey(t.Thing, t.Shadow), cur.marshal())
	return cur, nil
}

// updateResponses builds update/accepted (the request's sections with their
// metadata), update/delta (when the request set desired and desired differs from
// reported) and update/documents (previous and current).
func updateResponses(t Topic, prev, cur *document, sections map[string]any, nullState bool, token string, ts int64) []Response {
	stamp := tsNum(ts)
	st := make(map[string]any, len(sections))
	md := make(map[string]any, len(sections))
	for k, v := range sections {
		st[k] = v
		md[k] = requestMeta(v, stamp)
	}
	acc := map[string]any{"state": st, "metadata": md, "version": cur.Version, "timestamp": ts}
	if nullState {
		// The request's state is echoed as sent: null, without metadata.
		acc["state"] = nil
		delete(acc, "metadata")
	}
	if token != "" {
		acc["clientToken"] = token
	}
	out := make([]Response, 0, 3)
	out = append(out, Response{Topic: t.with(OpUpdate, KindAccepted).String(), Payload: encode(acc)})

	if desired, ok := sections["desired"].(map[string]any); ok && desired != nil {
		if dl := delta(cur.Desired, cur.Reported); dl != nil {
			body := map[string]any{"state": dl, "metadata": deltaMeta(dl, cur.MetaDesired),
				"version": cur.Version, "timestamp": ts}
			if token != "" {
				body["clientToken"] = token
			}
			out = append(out, Response{Topic: t.with(OpUpdate, KindDelta).String(), Payload: encode(body)})
		}
	}

	docs := map[string]any{
		"current":   map[string]any{"state": cur.state(), "metadata": cur.metadata(), "version": cur.Version},
		"timestamp": ts,
	}
	if prev.live() {
		docs["previous"] = map[string]any{"state": prev.state(), "metadata": prev.metadata(), "version": prev.Version}
	}
	if token != "" {
		docs["clientToken"] = token
	}
	return append(out, Response{Topic: t.with(OpUpdate, KindDocuments).String(), Payload: encode(docs)})
}

// List returns the names of thing's named shadows, in byte order (the classic
// shadow is not listed, as in AWS's ListNamedShadowsForThing).
func (s *Service) List(ctx context.Context, thing string) ([]string, error) {
	if !authz.ValidThingName(thing) {
		return nil, fmt.Errorf("listing shadows: %q is not a thing name (1-128 of a-z A-Z 0-9 : _ -)", thing)
	}
	prefix := docKey(thing, "")
	keys, err := s.store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing shadows of %s: %w", thing, err)
	}
	var names []string
	for _, k := range keys {
		name := k[len(prefix):]
		if name == "" {
			continue
		}
		d, err := s.load(ctx, Topic{Thing: thing, Shadow: name})
		if err != nil {
			return nil, err
		}
		if d.live() {
			names = append(names, name)
		}
	}
	return names, nil
}
