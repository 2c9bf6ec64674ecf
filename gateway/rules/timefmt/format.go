package timefmt

import (
	"fmt"
	"time"
)

// Format renders t with the pattern (Joda-Time letters); false when the
// pattern holds a letter formatting does not support.
func (p Pattern) Format(t time.Time) (string, bool) {
	var b []byte
	for _, k := range p {
		var ok bool
		switch k.letter {
		case 0:
			b, ok = append(b, k.lit...), true
		case 'G', 'y', 'u', 'Y', 'M', 'd', 'D', 'E':
			b, ok = appendDate(b, t, k)
		case 'a', 'H', 'k', 'h', 'K', 'm', 's', 'S':
			b, ok = appendClock(b, t, k)
		default:
			b, ok = appendZone(b, t, k)
		}
		if !ok {
			return "", false
		}
	}
	return string(b), true
}

// appendDate renders the era, year, month, day and weekday fields.
func appendDate(b []byte, t time.Time, k tok) ([]byte, bool) {
	n := k.n
	switch k.letter {
	case 'G':
		if t.Year() > 0 {
			return append(b, "AD"...), true
		}
		return append(b, "BC"...), true
	case 'y', 'u', 'Y':
		if n == 2 {
			return pad(b, t.Year()%100, 2), true
		}
		return pad(b, t.Year(), n), true
	case 'M':
		switch {
		case n >= 4:
			return append(b, t.Month().String()...), true
		case n == 3:
			return append(b, t.Month().String()[:3]...), true
		}
		return pad(b, int(t.Month()), n), true
	case 'd':
		return pad(b, t.Day(), n), true
	case 'D':
		return pad(b, t.YearDay(), n), true
	case 'E':
		if n >= 4 {
			return append(b, t.Weekday().String()...), true
		}
		return append(b, t.Weekday().String()[:3]...), true
	}
	return b, false
}

// appendClock renders AM/PM, the hour, minute, second and fraction fields.
func appendClock(b []byte, t time.Time, k tok) ([]byte, bool) {
	n := k.n
	switch k.letter {
	case 'a':
		if t.Hour() < 12 {
			return append(b, "AM"...), true
		}
		return append(b, "PM"...), true
	case 'H':
		return pad(b, t.Hour(), n), true
	case 'k':
		h := t.Hour()
		if h == 0 {
			h = 24
		}
		return pad(b, h, n), true
	case 'h':
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		return pad(b, h, n), true
	case 'K':
		return pad(b, t.Hour()%12, n), true
	case 'm':
		return pad(b, t.Minute(), n), true
	case 's':
		return pad(b, t.Second(), n), true
	case 'S':
		frac := fmt.Sprintf("%09d", t.Nanosecond())
		for len(frac) < n {
			frac += "0"
		}
		return append(b, frac[:n]...), true
	}
	return b, false
}

// appendZone renders the zone fields: z the abbreviation, Z/X/x the offset
// (ZZZ the region ID, X a Z for UTC), V the region ID.
func appendZone(b []byte, t time.Time, k tok) ([]byte, bool) {
	n := k.n
	switch k.letter {
	case 'z':
		name, _ := t.Zone()
		return append(b, name...), true
	case 'V':
		return append(b, t.Location().String()...), true
	case 'Z', 'X', 'x':
	default:
		return b, false
	}
	if k.letter == 'Z' && n >= 3 {
		return append(b, t.Location().String()...), true
	}
	_, off := t.Zone()
	if off == 0 && k.letter == 'X' {
		return append(b, 'Z'), true
	}
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	b = append(b, sign)
	b = pad(b, off/3600, 2)
	if n >= 2 && k.letter == 'Z' || n >= 3 {
		b = append(b, ':')
	}
	return pad(b, off%3600/60, 2), true
}
