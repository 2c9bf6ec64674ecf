package observe

// The gateway's own upstream identity (tls.renew, gateway/renew): its
// renewal state on the admin socket and in the metrics, and `edgegw key
// rotate`'s request.
//
//	GET  /identity                 []renew.State, every bridge with tls.renew
//	POST /identity/renew?bridge=N  start a renewal now (200 at once); the caller
//	                               polls GET /identity for its outcome
//
//	edgegw_identity_not_after_timestamp_seconds{bridge}  the certificate in use
//	edgegw_identity_renewal_due_timestamp_seconds{bridge} next attempt
//	edgegw_identity_last_renewal_timestamp_seconds{bridge} 0 before the first
//	edgegw_identity_renewals_total{bridge}, edgegw_identity_renewal_failures_total{bridge}
//	edgegw_identity_renewal_failing{bridge}              1 while the last attempt failed

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/renew"
)

// IdentityRenewer is a bridge's renewer (*renew.Renewer).
type IdentityRenewer interface {
	State() renew.State
	Renew(ctx context.Context) error
}

var _ IdentityRenewer = (*renew.Renewer)(nil)

// renewTimeout bounds a renewal started from the admin socket.
const renewTimeout = 5 * time.Minute

var (
	descIDNotAfter = desc("identity_not_after_timestamp_seconds", "End of validity of the bridge's own certificate in use (tls.renew).", "bridge")
	descIDDue      = desc("identity_renewal_due_timestamp_seconds", "When the bridge's certificate is next renewed (or retried).", "bridge")
	descIDLast     = desc("identity_last_renewal_timestamp_seconds", "Time of the last successful renewal; 0 before the first.", "bridge")
	descIDRenewals = desc("identity_renewals_total", "Successful renewals of the bridge's certificate.", "bridge")
	descIDFailures = desc("identity_renewal_failures_total", "Failed renewal attempts (the old certificate stayed in use).", "bridge")
	descIDFailing  = desc("identity_renewal_failing", "1 while the last renewal attempt failed.", "bridge")
)

// renewers are the bridges with a renewer.
func (o *Observer) renewers() []BridgeSource {
	var out []BridgeSource
	for _, b := range o.bridgeList() {
		if b.Renewer != nil {
			out = append(out, b)
		}
	}
	return out
}

// identityStates is Status.Identity.
func (o *Observer) identityStates() []renew.State {
	var out []renew.State
	for _, b := range o.renewers() {
		out = append(out, b.Renewer.State())
	}
	return out
}

func (o *Observer) identityRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /identity", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, o.identityStates())
	})
	mux.HandleFunc("POST /identity/renew", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("bridge")
		rs := o.renewers()
		for i, b := range rs {
			if b.Name == name || name == "" && i == 0 {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
					defer cancel()
					_ = b.Renewer.Renew(ctx) // logged, audited, in State
				}()
				writeJSON(w, http.StatusOK, map[string]string{"bridge": b.Name, "status": "renewal started"})
				return
			}
		}
		msg := "no bridge renews its certificate: set tls.renew under the bridge"
		if name != "" {
			msg = fmt.Sprintf("no bridge %q with tls.renew", name)
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": msg})
	})
}

// identityCollector exports the renewers' figures.
type identityCollector struct{ o *Observer }

func (c identityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIDNotAfter, descIDDue, descIDLast, descIDRenewals, descIDFailures, descIDFailing} {
		ch <- d
	}
}

func (c identityCollector) Collect(ch chan<- prometheus.Metric) {
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.Unix())
	}
	for _, b := range c.o.renewers() {
		s := b.Renewer.State()
		failing := 0.0
		if s.LastError != "" {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(descIDNotAfter, prometheus.GaugeValue, unix(s.NotAfter), b.Name)
		ch <- prometheus.MustNewConstMetric(descIDDue, prometheus.GaugeValue, unix(s.Due), b.Name)
		ch <- prometheus.MustNewConstMetric(descIDLast, prometheus.GaugeValue, unix(s.LastRenewal), b.Name)
		ch <- prometheus.MustNewConstMetric(descIDRenewals, prometheus.CounterValue, float64(s.Renewals), b.Name)
		ch <- prometheus.MustNewConstMetric(descIDFailures, prometheus.CounterValue, float64(s.Failures), b.Name)
		ch <- prometheus.MustNewConstMetric(descIDFailing, prometheus.GaugeValue, failing, b.Name)
	}
}
