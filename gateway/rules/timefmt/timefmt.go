package timefmt

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zone names must resolve on a Pi without /usr/share/zoneinfo
)

// Pattern is a compiled pattern: its fields and literals in order.
type Pattern []tok

type tok struct {
	letter byte // 0 for a literal
	n      int
	lit    string
}

// Compile reads a pattern. The error says which letter is not supported or
// where a quote is left open.
func Compile(p string) (Pattern, error) {
	var toks Pattern
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
				toks = append(toks, tok{lit: "'"})
			} else {
				toks = append(toks, tok{lit: sb.String()})
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
			toks = append(toks, tok{letter: c, n: j - i})
			i = j
		default:
			toks = append(toks, tok{lit: string(c)})
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
	patternCache = map[string]Pattern{}
)

// Cached is Compile for a pattern computed per message: false when it does
// not compile.
func Cached(p string) (Pattern, bool) {
	patternMu.Lock()
	toks, ok := patternCache[p]
	patternMu.Unlock()
	if ok {
		return toks, true
	}
	toks, err := Compile(p)
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

// FullZoneName reports whether the pattern asks for full zone names (zzzz),
// which formatting does not support.
func (p Pattern) FullZoneName() bool {
	for _, t := range p {
		if t.letter == 'z' && t.n >= 4 {
			return true
		}
	}
	return false
}

var zoneCache sync.Map // string -> *time.Location

// Zone resolves a Joda/java.time zone ID: a region ID, UTC/GMT/Z, a US
// abbreviation (PST, EDT...), or an offset (+01:00, UTC+01:00, GMT-5).
func Zone(id string) (*time.Location, bool) {
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
