// Package audit writes edgegw's audit log: one JSON line per security event
// (connect, refusal, handshake failure, deny, reload, drop), mirrored to slog,
// with deny lines rate limited per device. Payloads are never recorded.
//
// It is a leaf: it imports nothing of edgegw.
package audit
