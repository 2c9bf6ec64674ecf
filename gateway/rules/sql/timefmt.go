package sql

import (
	"time"

	"github.com/edgegw/edgegw/gateway/rules/timefmt"
)

// checkTimePattern refuses at compile time a literal pattern of parse_time
// or time_to_epoch (argument arg) that gateway/rules/timefmt does not support
// (its doc lists the letters), and for parse_time (format) a full zone name
// or a literal zone that does not resolve.
func checkTimePattern(arg int, format bool) func(name token, args []*expr) error {
	return func(name token, args []*expr) error {
		a := args[arg]
		if !a.konst || a.val.k != String {
			return nil
		}
		p, err := timefmt.Compile(a.val.s)
		if err != nil {
			return errAt(a.pos, "%s(): pattern %q: %v", name.Text, a.val.s, err)
		}
		if format && p.FullZoneName() {
			return errAt(a.pos, "%s(): pattern %q: full zone names (zzzz) are not supported; use z (abbreviation) or ZZZ (region ID)", name.Text, a.val.s)
		}
		if format && len(args) == 3 && args[2].konst && args[2].val.k == String {
			if _, ok := timefmt.Zone(args[2].val.s); !ok {
				return errAt(args[2].pos, "%s(): unknown time zone %q: use a region ID like 'America/Belize' or 'UTC'", name.Text, args[2].val.s)
			}
		}
		return nil
	}
}

// parse_time(pattern, epochMillis[, zone])
func fnParseTime(_ *Ctx, a []Value) Value {
	if a[0].k != String {
		return undef
	}
	p, ok := timefmt.Cached(a[0].s)
	if !ok {
		return undef
	}
	ms, ok := intFloor(a[1])
	if !ok {
		return undef
	}
	loc := time.UTC
	if len(a) == 3 {
		if a[2].k != String {
			return undef
		}
		if loc, ok = timefmt.Zone(a[2].s); !ok {
			return undef
		}
	}
	s, ok := p.Format(time.UnixMilli(ms).In(loc))
	if !ok {
		return undef
	}
	return strV(s)
}

// time_to_epoch(timestamp, pattern): milliseconds since the epoch; a timestamp
// without a zone is UTC.
func fnTimeToEpoch(_ *Ctx, a []Value) Value {
	if a[0].k != String || a[1].k != String {
		return undef
	}
	p, ok := timefmt.Cached(a[1].s)
	if !ok {
		return undef
	}
	t, ok := p.Parse(a[0].s)
	if !ok {
		return undef
	}
	return intV(t.UnixMilli())
}
