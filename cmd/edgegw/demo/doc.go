// Package demo is `edgegw demo`: the whole pipeline on one machine, as any user, with nothing
// installed and no network. Everything lives in a temporary directory that
// is removed at the end; every socket is on 127.0.0.1.
//
//	sensors temp-1, light-1, lock-1 --mTLS--> gateway (gateway.Run)
//	    --mTLS via a link that the demo can cut--> upstream (a second Gateway,
//	    broker only) <--mTLS-- cloud-app (counts what arrived)
//
// The story: normal traffic; a publish to a neighbour's topic, denied; lock-1
// revoked (pki.Revoke rewrites the CRL, the gateway reloads it and cuts lock-1
// alone); the upstream link cut while sensors keep publishing (acked, queued),
// then restored (drained). The summary counts sent, acked, queued, delivered
// and lost (acked but never delivered), which must be 0.
//
// It is a client of the gateway's public API (config, gateway.New/Run, the
// admin socket through observe.AdminGet, pki for the throwaway CAs) and of
// paho as the simulated sensors and cloud app; the daemon packages do not
// import it.
package demo
