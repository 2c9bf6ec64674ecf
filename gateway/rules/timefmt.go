package rules

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zone names must resolve on a Pi without /usr/share/zoneinfo
	"unicode"
)

// parse_time formats with Joda-Time patterns and time_to_epoch parses with
// java.time (JDK 11) patterns, as the reference says. Both share the common
// letters; the gateway implements the ones below and refuses a literal pattern
// with any other letter at compile time.
//
//	G era (AD)          y/u year (yy: two digits)   M month (MMM Jan, MMMM January)
//	d day of month      D day of year               E weekday (EEEE Monday)
//	a AM/PM             H hour 0-23  k 1-24  h 1-12  K 0-11
//	m minute            s second     S fraction of a second
//	z zone (format: abbreviation; parse: abbreviation or region ID)
//	Z offset -0600 (ZZ -06:00, ZZZ region ID)   VV region ID    X/x offset
//	'text' literal, '' a quote

type timeTok struct {
	letter byte // 0 for a literal
	n      int
	lit    string
}

func lexTimePattern(p string) ([]timeTok, error) {
	var toks []timeTok
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\'':
			j := i + 1
			var sb strings.Builder
			for {
				if j >= len(p) {
					return nil, fmt.Errorf("quote opened at %d is not closed", i)
				}
				if p[j] == '\'' {
					if j+1 < len(p) && p[j+1] == '\'' {
						sb.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				sb.WriteByte(p[j])
				j++
			}
			if j == i+1 {
				toks = append(toks, timeTok{lit: "'"})
			} else {
				toks = append(toks, timeTok{lit: sb.String()})
			}
			i = j + 1
		case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			j := i
			for j < len(p) && p[j] == c {
				j++
			}
			if !strings.ContainsRune("GyuYMdDEaHkhKmsSzZVXx", rune(c)) {
				return nil, fmt.Errorf("pattern letter %q is not supported by the gateway (supported: G y u Y M d D E a H k h K m s S z Z VV X x and 'text')", c)
			}
			toks = append(toks, timeTok{letter: c, n: j - i})
			i = j
		default:
			toks = append(toks, timeTok{lit: string(c)})
			i++
		}
	}
	return toks, nil
}

// Patterns are usually literals; one computed per message is cached up to a
// bound, so a payload cannot grow the cache without limit.
const maxCachedPatterns = 256

var (
	patternMu    sync.Mutex
	patternCache = map[string][]timeTok{}
)

func timePattern(p string) ([]timeTok, bool) {
	patternMu.Lock()
	toks, ok := patternCache[p]
	patternMu.Unlock()
	if ok {
		return toks, true
	}
	toks, err := lexTimePattern(p)
	if err != nil {
		return nil, false
	}
	patternMu.Lock()
	if len(patternCache) < maxCachedPatterns {
		patternCache[p] = toks
	}
	patternMu.Unlock()
	return toks, true
}

func checkTimePattern(arg int, format bool) func(name token, args []*expr) error {
	return func(name token, args []*expr) error {
		a := args[arg]
		if !a.konst || a.val.k != String {
			return nil
		}
		toks, err := lexTimePattern(a.val.s)
		if err != nil {
			return errAt(a.pos, "%s(): pattern %q: %v", name.text, a.val.s, err)
		}
		if format {
			for _, t := range toks {
				if t.letter == 'z' && t.n >= 4 {
					return errAt(a.pos, "%s(): pattern %q: full zone names (zzzz) are not supported; use z (abbreviation) or ZZZ (region ID)", name.text, a.val.s)
				}
			}
		}
		if format && len(args) == 3 && args[2].konst && args[2].val.k == String {
			if _, ok := loadZone(args[2].val.s); !ok {
				return errAt(args[2].pos, "%s(): unknown time zone %q: use a region ID like 'America/Belize' or 'UTC'", name.text, args[2].val.s)
			}
		}
		return nil
	}
}

var zoneCache sync.Map // string -> *time.Location

// loadZone resolves a Joda/java.time zone ID: a region ID, UTC/GMT/Z, or an
// offset (+01:00, UTC+01:00, GMT-5).
func loadZone(id string) (*time.Location, bool) {
	if v, ok := zoneCache.Load(id); ok {
		return v.(*time.Location), true
	}
	loc, ok := resolveZone(id)
	if ok {
		zoneCache.Store(id, loc)
	}
	return loc, ok
}

var zoneAbbrev = map[string]string{
	"PST": "America/Los_Angeles", "PDT": "America/Los_Angeles",
	"MST": "America/Denver", "MDT": "America/Denver",
	"CST": "America/Chicago", "CDT": "America/Chicago",
	"EST": "America/New_York", "EDT": "America/New_York",
}

func resolveZone(id string) (*time.Location, bool) {
	switch id {
	case "UTC", "GMT", "Z", "UT":
		return time.UTC, true
	}
	for _, prefix := range []string{"UTC", "GMT", "UT", ""} {
		rest, ok := strings.CutPrefix(id, prefix)
		if !ok || rest == "" || (rest[0] != '+' && rest[0] != '-') {
			continue
		}
		if off, ok := parseOffset(rest); ok {
			return time.FixedZone(id, off), true
		}
		return nil, false
	}
	if r, ok := zoneAbbrev[id]; ok {
		id = r
	}
	if id == "" || strings.ContainsAny(id, " \x00") || id == "Local" {
		return nil, false
	}
	loc, err := time.LoadLocation(id)
	if err != nil {
		return nil, false
	}
	return loc, true
}

// parseOffset reads +H, +HH, +HHMM, +HH:MM (and the same with -), in seconds.
func parseOffset(s string) (int, bool) {
	sign := 1
	switch s[0] {
	case '-':
		sign = -1
	case '+':
	default:
		return 0, false
	}
	s = s[1:]
	var h, m int
	var err error
	switch {
	case len(s) == 1 || len(s) == 2:
		h, err = strconv.Atoi(s)
	case len(s) == 4:
		h, err = strconv.Atoi(s[:2])
		if err == nil {
			m, err = strconv.Atoi(s[2:])
		}
	case len(s) == 5 && s[2] == ':':
		h, err = strconv.Atoi(s[:2])
		if err == nil {
			m, err = strconv.Atoi(s[3:])
		}
	default:
		return 0, false
	}
	if err != nil || h > 18 || m > 59 {
		return 0, false
	}
	return sign * (h*3600 + m*60), true
}

func pad(b []byte, v, n int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < n; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// formatTime renders t with a Joda-Time pattern.
func formatTime(t time.Time, toks []timeTok) (string, bool) {
	var b []byte
	for _, k := range toks {
		if k.letter == 0 {
			b = append(b, k.lit...)
			continue
		}
		n := k.n
		switch k.letter {
		case 'G':
			if t.Year() > 0 {
				b = append(b, "AD"...)
			} else {
				b = append(b, "BC"...)
			}
		case 'y', 'u', 'Y':
			if n == 2 {
				b = pad(b, t.Year()%100, 2)
			} else {
				b = pad(b, t.Year(), n)
			}
		case 'M':
			switch {
			case n >= 4:
				b = append(b, t.Month().String()...)
			case n == 3:
				b = append(b, t.Month().String()[:3]...)
			default:
				b = pad(b, int(t.Month()), n)
			}
		case 'd':
			b = pad(b, t.Day(), n)
		case 'D':
			b = pad(b, t.YearDay(), n)
		case 'E':
			if n >= 4 {
				b = append(b, t.Weekday().String()...)
			} else {
				b = append(b, t.Weekday().String()[:3]...)
			}
		case 'a':
			if t.Hour() < 12 {
				b = append(b, "AM"...)
			} else {
				b = append(b, "PM"...)
			}
		case 'H':
			b = pad(b, t.Hour(), n)
		case 'k':
			h := t.Hour()
			if h == 0 {
				h = 24
			}
			b = pad(b, h, n)
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			b = pad(b, h, n)
		case 'K':
			b = pad(b, t.Hour()%12, n)
		case 'm':
			b = pad(b, t.Minute(), n)
		case 's':
			b = pad(b, t.Second(), n)
		case 'S':
			frac := fmt.Sprintf("%09d", t.Nanosecond())
			for len(frac) < n {
				frac += "0"
			}
			b = append(b, frac[:n]...)
		case 'z':
			name, _ := t.Zone()
			b = append(b, name...)
		case 'Z', 'X', 'x':
			if k.letter == 'Z' && n >= 3 {
				b = append(b, t.Location().String()...)
				continue
			}
			_, off := t.Zone()
			if off == 0 && k.letter == 'X' {
				b = append(b, 'Z')
				continue
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
			b = pad(b, off%3600/60, 2)
		case 'V':
			b = append(b, t.Location().String()...)
		default:
			return "", false
		}
	}
	return string(b), true
}

// parse_time(pattern, epochMillis[, zone])
func fnParseTime(_ *evalCtx, a []Value) Value {
	if a[0].k != String {
		return undef
	}
	toks, ok := timePattern(a[0].s)
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
		if loc, ok = loadZone(a[2].s); !ok {
			return undef
		}
	}
	s, ok := formatTime(time.UnixMilli(ms).In(loc), toks)
	if !ok {
		return undef
	}
	return strV(s)
}

// time_to_epoch(timestamp, pattern): milliseconds since the epoch; a timestamp
// without a zone is UTC.
func fnTimeToEpoch(_ *evalCtx, a []Value) Value {
	if a[0].k != String || a[1].k != String {
		return undef
	}
	toks, ok := timePattern(a[1].s)
	if !ok {
		return undef
	}
	t, ok := parseTime(a[0].s, toks)
	if !ok {
		return undef
	}
	return intV(t.UnixMilli())
}

func parseTime(s string, toks []timeTok) (time.Time, bool) {
	year, month, day := 1970, 1, 1
	hour, minute, sec, nsec := 0, 0, 0, 0
	pm, hasAMPM, hour12 := false, false, false
	loc := time.UTC
	i := 0
	num := func(minDigits, maxDigits int) (int, bool) {
		j := i
		for j < len(s) && j-i < maxDigits && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i < minDigits {
			return 0, false
		}
		v, err := strconv.Atoi(s[i:j])
		i = j
		return v, err == nil
	}
	word := func() string {
		j := i
		for j < len(s) && (unicode.IsLetter(rune(s[j])) || s[j] == '_' || s[j] == '/' ||
			((s[j] == '+' || s[j] == '-' || s[j] == ':' || (s[j] >= '0' && s[j] <= '9')) && j > i)) {
			j++
		}
		w := s[i:j]
		i = j
		return w
	}
	for ti, k := range toks {
		if k.letter == 0 {
			if !strings.HasPrefix(s[i:], k.lit) {
				return time.Time{}, false
			}
			i += len(k.lit)
			continue
		}
		// A number directly followed by another number field has a fixed width.
		maxW := 10
		if ti+1 < len(toks) && toks[ti+1].letter != 0 {
			maxW = k.n
		}
		var ok bool
		switch k.letter {
		case 'y', 'u', 'Y':
			if k.n == 2 {
				year, ok = num(2, 2)
				year += 2000
			} else {
				year, ok = num(1, maxW)
			}
		case 'M':
			if k.n >= 3 {
				w := word()
				ok = false
				for m := time.January; m <= time.December; m++ {
					if strings.EqualFold(w, m.String()) || (k.n == 3 && strings.EqualFold(w, m.String()[:3])) {
						month, ok = int(m), true
					}
				}
			} else {
				month, ok = num(1, max(2, min(maxW, 2)))
			}
		case 'd':
			day, ok = num(1, 2)
		case 'D':
			var yd int
			yd, ok = num(1, 3)
			month, day = 1, yd
		case 'E':
			ok = word() != ""
		case 'a':
			w := word()
			hasAMPM, ok = true, strings.EqualFold(w, "AM") || strings.EqualFold(w, "PM")
			pm = strings.EqualFold(w, "PM")
		case 'H', 'k':
			hour, ok = num(1, 2)
		case 'h', 'K':
			hour, ok = num(1, 2)
			hour12 = true
		case 'm':
			minute, ok = num(1, 2)
		case 's':
			sec, ok = num(1, 2)
		case 'S':
			j := i
			for j < len(s) && j-i < 9 && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i {
				return time.Time{}, false
			}
			frac := s[i:j] + strings.Repeat("0", 9-(j-i))
			nsec, _ = strconv.Atoi(frac)
			i, ok = j, true
		case 'z', 'V', 'Z', 'X', 'x':
			w := word()
			if w == "" && i < len(s) && (s[i] == '+' || s[i] == '-') {
				i++
				w = s[i-1:i] + word()
			}
			loc, ok = loadZone(w)
		default:
			return time.Time{}, false
		}
		if !ok {
			return time.Time{}, false
		}
	}
	if i != len(s) {
		return time.Time{}, false
	}
	if hasAMPM || hour12 {
		hour %= 12
		if pm {
			hour += 12
		}
	}
	if month < 1 || month > 12 || day < 1 || hour > 24 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day && month != 1 {
		return time.Time{}, false // 31 April and the like
	}
	return t, true
}
