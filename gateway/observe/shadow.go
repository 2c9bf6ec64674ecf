package observe

// Device shadows on the admin socket and in the metrics.
//
//	GET    /shadow/THING[?name=SHADOW]   the shadow document (as get/accepted)
//	POST   /shadow/THING[?name=SHADOW]   body: an update request document
//	DELETE /shadow/THING[?name=SHADOW]   delete
//	GET    /shadows/THING                {"thing":..,"named":[..]}: the named shadows
//
// A request is answered with the service's accepted document and 200, or
// its rejected document ({"code":..,"message":..}) with that code as the
// HTTP status. Requests made here are published on the local broker like a
// device's (the device sees the delta of a desired change), and a synced
// shadow's change goes to the cloud like any local change.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Shadows is what the observer reads and asks of the device shadows; the
// gateway's shadow wiring satisfies it.
type Shadows interface {
	ShadowStatus(ctx context.Context) ShadowStatus
	// ShadowRequest handles op ("get", "update" or "delete") on a shadow
	// (name "" for the classic one) as the site engineer's request and
	// returns the response's HTTP status (200 accepted, else the shadow
	// error code) and its document.
	ShadowRequest(ctx context.Context, op, thing, name string, payload []byte) (int, []byte)
	// ShadowList returns the names of thing's named shadows.
	ShadowList(ctx context.Context, thing string) ([]string, error)
}

// ShadowStatus is the shadows part of GET /status (nil without a shadows
// section).
type ShadowStatus struct {
	Stored     int     `json:"stored"`           // shadows in the store (a deleted one while its version is kept)
	Requests   int64   `json:"requests"`         // requests answered since the start
	Denied     int64   `json:"denied"`           // requests refused by policy (403)
	Synced     int     `json:"synced"`           // shadows configured for cloud sync
	Online     bool    `json:"sync_online"`      // the Syncer's uplink is up
	Outbox     int     `json:"sync_outbox"`      // local changes the cloud has not acknowledged
	LagSeconds float64 `json:"sync_lag_seconds"` // age of the oldest of them
	Conflicts  int64   `json:"sync_conflicts"`   // fields changed on both sides (the owner's value kept)
	Failures   int64   `json:"sync_failures"`    // changes refused for good by the other side
	Dropped    int64   `json:"sync_dropped"`     // cloud messages that could not be applied
}

func (o *Observer) shadowStatus() *ShadowStatus {
	if o.shadow == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := o.shadow.ShadowStatus(ctx)
	return &st
}

// shadowRoutes adds the shadow endpoints to the admin socket.
func (o *Observer) shadowRoutes(mux *http.ServeMux) {
	handle := func(op string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if o.shadow == nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": "this gateway serves no shadows (no shadows section in its config)"})
				return
			}
			var body []byte
			if r.Method == http.MethodPost {
				var err error
				if body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20)); err != nil {
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading the request: " + err.Error()})
					return
				}
			}
			code, doc := o.shadow.ShadowRequest(r.Context(), op, r.PathValue("thing"), r.URL.Query().Get("name"), body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write(doc)
		}
	}
	mux.HandleFunc("GET /shadow/{thing}", handle("get"))
	mux.HandleFunc("POST /shadow/{thing}", handle("update"))
	mux.HandleFunc("DELETE /shadow/{thing}", handle("delete"))
	mux.HandleFunc("GET /shadows/{thing}", func(w http.ResponseWriter, r *http.Request) {
		if o.shadow == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "this gateway serves no shadows (no shadows section in its config)"})
			return
		}
		names, err := o.shadow.ShadowList(r.Context(), r.PathValue("thing"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if names == nil {
			names = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"thing": r.PathValue("thing"), "named": names})
	})
}

// AdminShadow sends one shadow request to the daemon on the admin socket:
// method GET, POST or DELETE on /shadow/THING (name "" for the classic
// shadow), or GET on /shadows/THING. It returns the HTTP status and the
// document; err is for a daemon that could not be asked.
func AdminShadow(ctx context.Context, socket, method, urlPath, name string, body []byte) (int, []byte, error) {
	tr := adminTransport(socket)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := "http://edgegw" + urlPath
	if name != "" {
		u += "?name=" + url.QueryEscape(name)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return 0, nil, fmt.Errorf("%w (no daemon at %s)", ErrNotRunning, socket)
		}
		return 0, nil, fmt.Errorf("asking the daemon at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("daemon at %s: reading %s: %w", socket, urlPath, err)
	}
	if !json.Valid(data) { // not from a shadow handler (e.g. the mux's 404)
		data, _ = json.Marshal(map[string]string{"error": strings.TrimSpace(string(data))})
	}
	return resp.StatusCode, data, nil
}

var (
	descShadows        = desc("shadows", "Device shadows in the store (a deleted one while its version is kept).")
	descShadowRequests = desc("shadow_requests_total", "Shadow requests answered, by outcome (handled: by the service; denied: 403 by policy).", "outcome")
	descShadowOnline   = desc("shadow_sync_online", "1 while shadow sync has its uplink.")
	descShadowOutbox   = desc("shadow_sync_outbox", "Local shadow changes the cloud has not acknowledged.")
	descShadowLag      = desc("shadow_sync_lag_seconds", "Age of the oldest local shadow change the cloud has not acknowledged (0: none).")
	descShadowSyncEv   = desc("shadow_sync_events_total", "Shadow sync events: conflict (a field changed on both sides), failure (refused for good), dropped (a cloud message not applied).", "event")
)

// shadowCollector exports the shadows' state at scrape time.
type shadowCollector struct{ o *Observer }

func (c shadowCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShadows, descShadowRequests, descShadowOnline, descShadowOutbox, descShadowLag, descShadowSyncEv} {
		ch <- d
	}
}

func (c shadowCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.o.shadowStatus()
	if st == nil {
		return
	}
	m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, lv...)
	}
	m(descShadows, gauge, float64(st.Stored))
	m(descShadowRequests, counter, float64(st.Requests), "handled")
	m(descShadowRequests, counter, float64(st.Denied), "denied")
	if st.Synced > 0 {
		m(descShadowOnline, gauge, b2f(st.Online))
		m(descShadowOutbox, gauge, float64(st.Outbox))
		m(descShadowLag, gauge, st.LagSeconds)
		m(descShadowSyncEv, counter, float64(st.Conflicts), "conflict")
		m(descShadowSyncEv, counter, float64(st.Failures), "failure")
		m(descShadowSyncEv, counter, float64(st.Dropped), "dropped")
	}
}
