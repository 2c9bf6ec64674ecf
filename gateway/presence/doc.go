// Package presence answers the site engineer's first question, "which
// sensors are not talking?": per registered thing, whether it is connected,
// since when, when it was last seen, from which address, and when its
// certificate expires.
//
// The broker tells a [Tracker] about every accepted connection and its end
// ([Tracker.Online], [Tracker.Offline]); a connection is keyed by listener
// and remote address, so a session takeover (the new connection is accepted
// before the old one ends) leaves the thing connected. [Tracker.Devices]
// joins what was seen with the registered things the caller hands in (the
// registry changes on reload, so it is not kept here).
//
// What was seen is kept across restarts in one small JSON file in the state
// directory (presence.json), written atomically (temporary file, fsync,
// rename) by a background flush at most once per [Options.FlushEvery], never
// per message or per connect: at a building's scale (2,000 sensors
// reconnecting after a power cut) that is one write, not 2,000. After a
// crash, presence is at most one flush interval old; connections are not
// restored (every thing starts offline, with its last-seen time kept).
//
// It imports the standard library only: never gateway, mochi, badger,
// prometheus or the registry (authz); the wiring adapts those.
package presence
