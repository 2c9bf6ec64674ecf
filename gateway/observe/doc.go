// Package observe is edgegw's observability: the Prometheus /metrics
// endpoint, /healthz and the read-only status page (/, status_page.go) on
// the metrics listener, and the admin socket (GET /status, /healthz,
// /devices, /queue/stats, the live queue operations of queue_ops.go, over a
// 0660 UNIX socket) with its clients AdminGet, AdminPost and AdminCopy. It
// is the only package that imports prometheus, always through a private
// registry.
//
// Its data comes in through small interfaces (Broker, Queue, Bridge,
// Presence, ThingTypes, Auditor) that *broker.Broker, *store.Queue,
// *bridge.Bridge, the gateway's presence view and *audit.Log satisfy, read
// when asked (a scrape, a status request), and through Record, the audit tap, whose
// events carry a typed audit.Cause for refusals. It must not import mochi
// (it reads the broker only through Broker) or the gateway wiring.
package observe
