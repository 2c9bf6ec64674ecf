package clock

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// BuildInfo describes the binary. cmd/edgegw sets it once at start from its
// -ldflags variables (main.version, main.commit, main.buildDate); it feeds the
// build_info metric, `edgegw status` and the clock guard.
type BuildInfo struct {
	Version string
	Commit  string
	// Date is the build time (or the commit time of a reproducible build).
	// Zero means unknown; the clock guard then uses DefaultBuildFloor.
	Date time.Time
}

// DefaultBuildFloor is the clock guard's floor when the binary carries no
// build date (go run, go test): the date this code was written.
var DefaultBuildFloor = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

var buildInfo atomic.Pointer[BuildInfo]

// SetBuildInfo records the binary's version, commit and build date and moves
// the process clock guard's floor to the build date. Call it before Run.
func SetBuildInfo(bi BuildInfo) {
	bi.Date = bi.Date.UTC()
	buildInfo.Store(&bi)
	process.setFloor(floorFor(bi.Date))
}

// GetBuildInfo returns what SetBuildInfo recorded ("dev" when never called).
func GetBuildInfo() BuildInfo {
	if bi := buildInfo.Load(); bi != nil {
		return *bi
	}
	return BuildInfo{Version: "dev", Commit: "dev"}
}

// ParseBuildDate reads the -ldflags build date: RFC 3339, or unix seconds
// (SOURCE_DATE_EPOCH). "" or garbage gives the zero time (unknown).
func ParseBuildDate(s string) time.Time {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC()
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec > 0 {
		return time.Unix(sec, 0).UTC()
	}
	return time.Time{}
}

// BuildFloor is the earliest believable "now" for this binary: the build date
// SetBuildInfo recorded, or DefaultBuildFloor when there is none or it is
// earlier. The process guard and `edgegw pki` (certificate and CRL start
// times) both use it, so there is one floor.
func BuildFloor() time.Time { return floorFor(GetBuildInfo().Date) }

func floorFor(date time.Time) time.Time {
	if date.After(DefaultBuildFloor) {
		return date
	}
	return DefaultBuildFloor
}

// Clock is the clock guard. A Raspberry Pi has no real-time clock: it boots
// in 1970 (or at the last fake-hwclock save) until NTP answers. A clock before
// the build date is certainly wrong, so:
//
//   - Now (certificate validity: tls.Config.Time, x509 VerifyOptions) returns
//     the build date while the system clock is before it, and logs that once
//     at Warn; certificates valid on the build day keep working.
//   - AgeNow (the queue's message ages) returns the system time when it is
//     sane and the Unix epoch otherwise, so the store neither stamps messages
//     with a made-up time nor expires them by one (store.SaneAfter).
//
// It is safe for concurrent use; Now costs one comparison on the sane path.
type Clock struct {
	system func() time.Time
	floor  atomic.Int64 // unix nanoseconds
	log    atomic.Pointer[slog.Logger]
	warned atomic.Bool
	mu     sync.Mutex // serialises the one warning
}

// New returns a guard with floor buildDate (DefaultBuildFloor if zero or
// earlier) over system (time.Now if nil). log may be nil.
func New(buildDate time.Time, system func() time.Time, log *slog.Logger) *Clock {
	if system == nil {
		system = time.Now
	}
	c := &Clock{system: system}
	c.setFloor(floorFor(buildDate))
	c.SetLogger(log)
	return c
}

// process is the guard every certificate check of this process uses
// (listener trust, upstream TLS); SetBuildInfo sets its floor.
var process = New(time.Time{}, nil, nil)

// Process returns the guard of this process.
func Process() *Clock { return process }

func (c *Clock) setFloor(t time.Time) { c.floor.Store(t.UnixNano()) }

// SetLogger sets where the one warning goes (nil: nowhere).
func (c *Clock) SetLogger(l *slog.Logger) {
	if l != nil {
		c.log.Store(l)
	}
}

// Floor is the build date the guard falls back to.
func (c *Clock) Floor() time.Time { return time.Unix(0, c.floor.Load()).UTC() }

// Sane reports whether the system clock is at or after the build date.
func (c *Clock) Sane() bool { return !c.system().Before(c.Floor()) }

// System is the unguarded system time.
func (c *Clock) System() time.Time { return c.system() }

// Now is the time certificate checks use: the system time, or the build
// date while the system clock is before it.
func (c *Clock) Now() time.Time {
	now := c.system()
	floor := c.floor.Load()
	if now.UnixNano() >= floor {
		return now
	}
	f := time.Unix(0, floor).UTC()
	c.warnOnce(now, f)
	return f
}

// AgeNow is the clock for message ages (store.Options.Clock): the system time
// when sane, else the Unix epoch, which the store treats as "unknown".
func (c *Clock) AgeNow() time.Time {
	now := c.system()
	if now.UnixNano() >= c.floor.Load() {
		return now
	}
	return time.Unix(0, 0)
}

func (c *Clock) warnOnce(now, floor time.Time) {
	if c.warned.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log.Load()
	if l == nil || c.warned.Load() {
		return // no logger yet: warn when there is one
	}
	c.warned.Store(true)
	l.Warn(fmt.Sprintf("system clock %s is before the build date %s; using the build date for certificate checks until the clock is set (no RTC? check NTP)",
		now.UTC().Format("2006-01-02T15:04:05Z"), floor.Format("2006-01-02T15:04:05Z")),
		"component", "clock")
}
