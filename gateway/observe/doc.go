// Package observe is edgegw's observability: the Prometheus /metrics
// endpoint, /healthz, and the admin socket (GET /status, /healthz,
// /queue/stats over a 0660 UNIX socket) with its client, AdminGet. It is the
// only package that imports prometheus, always through a private registry.
//
// Its data comes in through small interfaces (Broker, Queue, Bridge) that
// *broker.Broker, *store.Queue and *bridge.Bridge satisfy, read when asked
// (a scrape, a status request), and through Record, the audit tap, whose
// events carry a typed audit.Cause for refusals. It must not import mochi
// (it reads the broker only through Broker) or the gateway wiring.
package observe
