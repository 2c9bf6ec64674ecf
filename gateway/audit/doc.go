// Package audit writes edgegw's audit log: one JSON line per security event
// (connect, disconnect, refusal, handshake failure, deny, reload, drop), each
// with the gateway's site, with deny lines rate limited per device. Payloads
// are never recorded. The file is 0640: the edgegw group reads it, and adm
// through the default ACL the package puts on the log directory (file.go).
// Reopen (SIGHUP) starts a new one after logrotate moved it. Lines go to
// slog as well only without a file, or when Options.Journal asks.
//
// It is a leaf: it imports nothing of edgegw.
package audit
