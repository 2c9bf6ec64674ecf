package mosqimport

import (
	"strings"
)

// An ACL topic is turned into policy globs here, and the sets of topics they
// match are compared (intersected) so the importer can tell when a Deny it
// adds reaches topics another line grants.

// segKind is one piece of a glob or a filter level.
type segKind uint8

const (
	segLit    segKind = iota // literal text
	segStar                  // glob: any run of characters, '/' included
	segClient                // %c: the client ID
	segUser                  // %u: the user name (thing name)
)

type seg struct {
	kind segKind
	text string
}

// globPat is one policy glob over a topic name.
type globPat []seg

// Policy variables for %c and %u (see the package doc for the choice).
const (
	varClient = "${iot:ClientId}"
	varUser   = "${iot:Connection.Thing.ThingName}"
)

// String renders the glob as policy text: literal '*', '?' and "${" are
// escaped with IAM's ${*}, ${?} and ${$}.
func (g globPat) String() string {
	var b strings.Builder
	for _, s := range g {
		switch s.kind {
		case segStar:
			b.WriteByte('*')
		case segClient:
			b.WriteString(varClient)
		case segUser:
			b.WriteString(varUser)
		default:
			for i := 0; i < len(s.text); i++ {
				switch c := s.text[i]; {
				case c == '*':
					b.WriteString("${*}")
				case c == '?':
					b.WriteString("${?}")
				case c == '$' && i+1 < len(s.text) && s.text[i+1] == '{':
					b.WriteString("${$}")
				default:
					b.WriteByte(c)
				}
			}
		}
	}
	return b.String()
}

// level is one level of an ACL topic: "+", "#" or text with %c/%u.
type level struct {
	plus, hash bool
	segs       []seg // text level: literal and variable pieces
}

// parseLevels splits an ACL topic into levels; with vars, %c and %u are
// variables (pattern lines), otherwise literal.
func parseLevels(topic string, vars bool) []level {
	parts := strings.Split(topic, "/")
	out := make([]level, len(parts))
	for i, p := range parts {
		switch p {
		case "+":
			out[i].plus = true
			continue
		case "#":
			out[i].hash = true
			continue
		}
		out[i].segs = textSegs(p, vars)
	}
	return out
}

func textSegs(p string, vars bool) []seg {
	var segs []seg
	lit := func(s string) {
		if s == "" {
			return
		}
		if n := len(segs); n > 0 && segs[n-1].kind == segLit {
			segs[n-1].text += s
			return
		}
		segs = append(segs, seg{kind: segLit, text: s})
	}
	for vars {
		i := strings.IndexByte(p, '%')
		if i < 0 || i+1 >= len(p) {
			break
		}
		lit(p[:i])
		switch p[i+1] {
		case 'c':
			segs = append(segs, seg{kind: segClient})
		case 'u':
			segs = append(segs, seg{kind: segUser})
		default:
			lit(p[i : i+1]) // "%%c" is '%' then %c, as Mosquitto reads it
			p = p[i+1:]
			continue
		}
		p = p[i+2:]
	}
	lit(p)
	return segs
}

// translation is how one ACL topic becomes globs.
type translation struct {
	globs  []globPat // their union matches every topic the filter matches
	trims  []globPat // Deny these too, and the union matches exactly the filter's topics
	exact  bool      // globs minus trims is exactly the filter (else it is a superset)
	dollar bool      // the filter starts with a wildcard: it never matches a '$' topic
}

// translate maps an MQTT filter (a valid ACL topic) to globs. See the
// package doc for the forms.
func translate(levels []level) translation {
	t := translation{exact: true}
	n := len(levels)
	hash := n > 0 && levels[n-1].hash
	core := levels
	if hash {
		core = levels[:n-1]
	}
	t.dollar = n > 0 && (levels[0].plus || levels[0].hash)
	firstPlus := -1
	for i, l := range core {
		if l.plus && firstPlus < 0 {
			firstPlus = i
		}
	}
	base := joinLevels(core, -1)
	switch {
	case hash && len(core) == 0: // "#"
		t.globs = []globPat{{{kind: segStar}}}
	case !hash:
		t.globs = []globPat{base}
		for i, l := range core {
			if l.plus {
				t.trims = append(t.trims, joinLevels(core, i))
			}
		}
	case firstPlus < 0: // "a/b/#"
		t.globs = []globPat{base, appendLit(base, "/", true)}
	case allPlus(core[firstPlus:]): // "a/+/#", "a/+/+/#": the last '*' takes the rest
		t.globs = []globPat{base}
	default: // "+/a/#": no exact form
		t.globs = []globPat{base, appendLit(base, "/", true)}
		t.exact = false
	}
	return t
}

func allPlus(ls []level) bool {
	for _, l := range ls {
		if !l.plus {
			return false
		}
	}
	return true
}

// joinLevels renders levels as a glob, '+' as '*'; the '+' at index wide
// becomes "*/*" (a '*' spanning at least two levels).
func joinLevels(ls []level, wide int) globPat {
	var g globPat
	for i, l := range ls {
		if i > 0 {
			g = appendLit(g, "/", false)
		}
		switch {
		case l.plus && i == wide:
			g = append(g, seg{kind: segStar})
			g = appendLit(g, "/", false)
			g = append(g, seg{kind: segStar})
		case l.plus:
			g = append(g, seg{kind: segStar})
		default:
			for _, s := range l.segs {
				if s.kind == segLit {
					g = appendLit(g, s.text, false)
				} else {
					g = append(g, s)
				}
			}
		}
	}
	return g
}

func appendLit(g globPat, s string, star bool) globPat {
	g = append(globPat(nil), g...)
	if n := len(g); n > 0 && g[n-1].kind == segLit {
		g[n-1].text += s
	} else {
		g = append(g, seg{kind: segLit, text: s})
	}
	if star {
		g = append(g, seg{kind: segStar})
	}
	return g
}

// ---- languages and their intersection ----

// cls is a set of characters.
type cls uint8

const (
	clsChar  cls = iota // exactly item.c
	clsAll              // any character
	clsLevel            // any character but '/'
	clsWord             // a thing-name character [a-zA-Z0-9:_-]
)

// item is one step of a pattern: consume one character of a class (loop
// false) or any number of them (loop true).
type item struct {
	cls  cls
	c    byte
	loop bool
}

func (it item) accepts(c byte) bool {
	switch it.cls {
	case clsChar:
		return c == it.c
	case clsAll:
		return true
	case clsLevel:
		return c != '/'
	}
	return isWordChar(c)
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-'
}

// lang is a set of topic names: a sequence of items; noDollar excludes
// names starting with '$' (Mosquitto's rule for filters starting with a
// wildcard).
type lang struct {
	items    []item
	noDollar bool
}

// subst gives the value of %c and %u for one client, or "" for "any thing
// name".
type subst struct{ client, user string }

func (s subst) value(k segKind) string {
	if k == segClient {
		return s.client
	}
	return s.user
}

func litItems(dst []item, s string) []item {
	for i := 0; i < len(s); i++ {
		dst = append(dst, item{cls: clsChar, c: s[i]})
	}
	return dst
}

func varItems(dst []item, k segKind, sb subst) []item {
	if v := sb.value(k); v != "" {
		return litItems(dst, v)
	}
	return append(dst, item{cls: clsWord}, item{cls: clsWord, loop: true})
}

// globLang is the set of topics a glob matches.
func globLang(g globPat, sb subst) lang {
	var l lang
	for _, s := range g {
		switch s.kind {
		case segLit:
			l.items = litItems(l.items, s.text)
		case segStar:
			l.items = append(l.items, item{cls: clsAll, loop: true})
		default:
			l.items = varItems(l.items, s.kind, sb)
		}
	}
	return l
}

// filterLangs is the set of topics an MQTT filter matches, as a union.
func filterLangs(ls []level, sb subst) []lang {
	n := len(ls)
	noDollar := n > 0 && (ls[0].plus || ls[0].hash)
	var core []item
	hash := n > 0 && ls[n-1].hash
	body := ls
	if hash {
		body = ls[:n-1]
	}
	for i, l := range body {
		if i > 0 {
			core = append(core, item{cls: clsChar, c: '/'})
		}
		if l.plus {
			core = append(core, item{cls: clsLevel, loop: true})
			continue
		}
		for _, s := range l.segs {
			if s.kind == segLit {
				core = litItems(core, s.text)
			} else {
				core = varItems(core, s.kind, sb)
			}
		}
	}
	if !hash {
		return []lang{{items: core, noDollar: noDollar}}
	}
	if len(body) == 0 {
		return []lang{{items: []item{{cls: clsAll}, {cls: clsAll, loop: true}}, noDollar: true}}
	}
	deep := append(append([]item(nil), core...), item{cls: clsChar, c: '/'}, item{cls: clsAll, loop: true})
	return []lang{{items: core, noDollar: noDollar}, {items: deep, noDollar: noDollar}}
}

// intersects reports whether some non-empty topic name is in both a and b:
// a search over pairs of positions, stepping both patterns by one character
// at a time. The characters tried are one of each class that can differ:
// every literal of either pattern, '/', '$', a thing-name character and
// another one.
func intersects(a, b lang) bool {
	var isCand [256]bool
	cands := make([]byte, 0, 16)
	addCand := func(c byte) {
		if !isCand[c] {
			isCand[c] = true
			cands = append(cands, c)
		}
	}
	for _, c := range []byte("/a$!") {
		addCand(c)
	}
	for _, l := range []lang{a, b} {
		for _, it := range l.items {
			if it.cls == clsChar {
				addCand(it.c)
			}
		}
	}
	la, lb := len(a.items)+1, len(b.items)+1
	ca, cb := closures(a.items), closures(b.items)
	seen := make([]bool, la*lb*2)
	type state struct {
		i, j  int
		first bool
	}
	stack := []state{{0, 0, true}}
	var na, nb []int
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := (s.i*lb + s.j) * 2
		if s.first {
			k++
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if !s.first && ca[s.i][len(ca[s.i])-1] == len(a.items) && cb[s.j][len(cb[s.j])-1] == len(b.items) {
			return true
		}
		for _, c := range cands {
			if s.first && c == '$' && (a.noDollar || b.noDollar) {
				continue
			}
			na = step(a.items, ca[s.i], c, na[:0])
			if len(na) == 0 {
				continue
			}
			nb = step(b.items, cb[s.j], c, nb[:0])
			for _, ni := range na {
				for _, nj := range nb {
					if !seen[(ni*lb+nj)*2] {
						stack = append(stack, state{ni, nj, false})
					}
				}
			}
		}
	}
	return false
}

// closures gives, for every position, the positions reachable by skipping
// loop items (the last one is the furthest).
func closures(items []item) [][]int {
	out := make([][]int, len(items)+1)
	for i := range out {
		j := i
		cl := []int{j}
		for j < len(items) && items[j].loop {
			j++
			cl = append(cl, j)
		}
		out[i] = cl
	}
	return out
}

// step appends the positions reached from closure cl by consuming c.
func step(items []item, cl []int, c byte, dst []int) []int {
	for _, p := range cl {
		if p >= len(items) || !items[p].accepts(c) {
			continue
		}
		if items[p].loop {
			dst = append(dst, p)
		} else {
			dst = append(dst, p+1)
		}
	}
	return dst
}

// anyIntersect reports whether some language of as meets some of bs.
func anyIntersect(as, bs []lang) bool {
	for _, a := range as {
		for _, b := range bs {
			if intersects(a, b) {
				return true
			}
		}
	}
	return false
}
