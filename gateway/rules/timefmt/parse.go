package timefmt

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Parse reads s with the pattern (java.time letters): it must match the
// whole of s. A timestamp without a zone is UTC. False when s does not
// match or names no real date (31 April).
func (p Pattern) Parse(s string) (time.Time, bool) {
	r := reader{s: s, year: 1970, month: 1, day: 1, loc: time.UTC}
	for ti, k := range p {
		if k.letter == 0 {
			if !strings.HasPrefix(s[r.i:], k.lit) {
				return time.Time{}, false
			}
			r.i += len(k.lit)
			continue
		}
		// A number directly followed by another number field has a fixed width.
		maxW := 10
		if ti+1 < len(p) && p[ti+1].letter != 0 {
			maxW = k.n
		}
		if !r.field(k, maxW) {
			return time.Time{}, false
		}
	}
	if r.i != len(s) {
		return time.Time{}, false
	}
	return r.time()
}

// reader is Parse's position in s and the fields read so far.
type reader struct {
	s string
	i int

	year, month, day, hour, minute, sec, nsec int
	pm, hasAMPM, hour12                       bool
	loc                                       *time.Location
}

// num reads minDigits to maxDigits decimal digits.
func (r *reader) num(minDigits, maxDigits int) (int, bool) {
	j := r.i
	for j < len(r.s) && j-r.i < maxDigits && r.s[j] >= '0' && r.s[j] <= '9' {
		j++
	}
	if j-r.i < minDigits {
		return 0, false
	}
	v, err := strconv.Atoi(r.s[r.i:j])
	r.i = j
	return v, err == nil
}

// word reads a name: letters, '_' and '/', then also digits, signs and ':'
// (a zone ID such as America/Argentina/Buenos_Aires or GMT+01:00).
func (r *reader) word() string {
	s, j := r.s, r.i
	for j < len(s) && (unicode.IsLetter(rune(s[j])) || s[j] == '_' || s[j] == '/' ||
		((s[j] == '+' || s[j] == '-' || s[j] == ':' || (s[j] >= '0' && s[j] <= '9')) && j > r.i)) {
		j++
	}
	w := s[r.i:j]
	r.i = j
	return w
}

// offset reads a sign and the digits and colons after it (+0100, -05:30).
func (r *reader) offset() string {
	j := r.i + 1
	for j < len(r.s) && (r.s[j] == ':' || (r.s[j] >= '0' && r.s[j] <= '9')) {
		j++
	}
	w := r.s[r.i:j]
	r.i = j
	return w
}

// field reads the field of k, a number at most maxW digits wide.
func (r *reader) field(k tok, maxW int) (ok bool) {
	switch k.letter {
	case 'y', 'u', 'Y':
		if k.n == 2 {
			r.year, ok = r.num(2, 2)
			r.year += 2000
		} else {
			r.year, ok = r.num(1, maxW)
		}
	case 'M':
		return r.month1(k, maxW)
	case 'd':
		r.day, ok = r.num(1, 2)
	case 'D':
		var yd int
		yd, ok = r.num(1, 3)
		r.month, r.day = 1, yd
	case 'E':
		ok = r.word() != ""
	case 'a':
		w := r.word()
		r.hasAMPM, ok = true, strings.EqualFold(w, "AM") || strings.EqualFold(w, "PM")
		r.pm = strings.EqualFold(w, "PM")
	case 'H', 'k':
		r.hour, ok = r.num(1, 2)
	case 'h', 'K':
		r.hour, ok = r.num(1, 2)
		r.hour12 = true
	case 'm':
		r.minute, ok = r.num(1, 2)
	case 's':
		r.sec, ok = r.num(1, 2)
	case 'S':
		return r.fraction()
	case 'z', 'V', 'Z', 'X', 'x':
		w := r.word()
		if w == "" && r.i < len(r.s) && (r.s[r.i] == '+' || r.s[r.i] == '-') {
			w = r.offset() // a bare offset: +0100, -05:30, +01
		}
		r.loc, ok = Zone(w)
	}
	return ok
}

// month1 reads a month: a name (MMM Jan or January, MMMM January) or a number.
func (r *reader) month1(k tok, maxW int) (ok bool) {
	if k.n < 3 {
		r.month, ok = r.num(1, max(2, min(maxW, 2)))
		return ok
	}
	w := r.word()
	for m := time.January; m <= time.December; m++ {
		if strings.EqualFold(w, m.String()) || (k.n == 3 && strings.EqualFold(w, m.String()[:3])) {
			r.month, ok = int(m), true
		}
	}
	return ok
}

// fraction reads up to 9 digits of a second.
func (r *reader) fraction() bool {
	j := r.i
	for j < len(r.s) && j-r.i < 9 && r.s[j] >= '0' && r.s[j] <= '9' {
		j++
	}
	if j == r.i {
		return false
	}
	frac := r.s[r.i:j] + strings.Repeat("0", 9-(j-r.i))
	r.nsec, _ = strconv.Atoi(frac)
	r.i = j
	return true
}

// time checks the fields read and builds the time.
func (r *reader) time() (time.Time, bool) {
	hour := r.hour
	if r.hasAMPM || r.hour12 {
		hour %= 12
		if r.pm {
			hour += 12
		}
	}
	if r.month < 1 || r.month > 12 || r.day < 1 || hour > 24 || r.minute > 59 || r.sec > 60 {
		return time.Time{}, false
	}
	t := time.Date(r.year, time.Month(r.month), r.day, hour, r.minute, r.sec, r.nsec, r.loc)
	if t.Day() != r.day && r.month != 1 {
		return time.Time{}, false // 31 April and the like
	}
	return t, true
}
