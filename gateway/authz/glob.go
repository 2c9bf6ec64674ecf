package authz

import (
	"strings"
	"unicode/utf8"
)

// A glob is an IAM wildcard pattern compiled to tokens: `*` matches any run of
// characters (including `/` and `:`), `?` exactly one character, everything else is
// literal and case-sensitive (MQTT `+` and `#` included). Values substituted for policy
// variables are always literal tokens.
type glob struct {
	toks []gtok
}

type gtokKind uint8

const (
	tLit gtokKind = iota
	tStar
	tOne
)

type gtok struct {
	kind gtokKind
	lit  string
}

// appendText appends pattern text in which `*` and `?` are wildcards.
func (g *glob) appendText(s string) {
	for s != "" {
		i := strings.IndexAny(s, "*?")
		if i < 0 {
			g.appendLit(s)
			return
		}
		g.appendLit(s[:i])
		if s[i] == '*' {
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != tStar {
				g.toks = append(g.toks, gtok{kind: tStar})
			}
		} else {
			g.toks = append(g.toks, gtok{kind: tOne})
		}
		s = s[i+1:]
	}
}

// appendLit appends literal text (no wildcards), merging with a preceding literal.
func (g *glob) appendLit(s string) {
	if s == "" {
		return
	}
	if n := len(g.toks); n > 0 && g.toks[n-1].kind == tLit {
		g.toks[n-1].lit += s
		return
	}
	g.toks = append(g.toks, gtok{kind: tLit, lit: s})
}

func compileGlob(pattern string) glob {
	var g glob
	g.appendText(pattern)
	return g
}

// globMatchString reports whether s matches the wildcard pattern (load-time helper).
func globMatchString(pattern, s string) bool {
	g := compileGlob(pattern)
	return g.match("", s)
}

// match reports whether the subject p+s matches g, without building p+s (no
// allocation). p is a short ASCII prefix such as "topic/".
func (g *glob) match(p, s string) bool { return matchToks(g.toks, p, s) }

func matchToks(toks []gtok, p, s string) bool {
	n := len(p) + len(s)
	ti, i := 0, 0
	starT, starI := -1, 0
	for {
		if ti < len(toks) {
			t := &toks[ti]
			switch t.kind {
			case tStar:
				if ti == len(toks)-1 {
					return true
				}
				if next := &toks[ti+1]; next.kind == tLit {
					if ti+1 == len(toks)-1 { // "*literal" at the end: a suffix test
						return n-i >= len(next.lit) && litAt(p, s, n-len(next.lit), next.lit)
					}
					// Skip straight to the next place the literal occurs.
					j := indexFrom(p, s, i, next.lit)
					if j < 0 {
						return false
					}
					starT, starI = ti, j
					ti, i = ti+2, j+len(next.lit)
					continue
				}
				starT, starI = ti, i
				ti++
				continue
			case tOne:
				if i < n {
					i += runeLenAt(p, s, i)
					ti++
					continue
				}
			case tLit:
				if litAt(p, s, i, t.lit) {
					i += len(t.lit)
					ti++
					continue
				}
			}
		} else if i == n {
			return true
		}
		// Mismatch: let the last `*` swallow more, or fail.
		if starT < 0 || starI >= n {
			return false
		}
		if next := &toks[starT+1]; next.kind == tLit {
			j := indexFrom(p, s, starI+runeLenAt(p, s, starI), next.lit)
			if j < 0 {
				return false
			}
			starI = j
			ti, i = starT+2, j+len(next.lit)
			continue
		}
		starI += runeLenAt(p, s, starI)
		ti, i = starT+1, starI
	}
}

// indexFrom returns the first position >= from where lit occurs in p+s, or -1.
func indexFrom(p, s string, from int, lit string) int {
	for ; from < len(p); from++ {
		if litAt(p, s, from, lit) {
			return from
		}
	}
	if from-len(p) > len(s) {
		return -1
	}
	j := strings.Index(s[from-len(p):], lit)
	if j < 0 {
		return -1
	}
	return from + j
}

// litAt reports whether (p+s)[i:i+len(lit)] == lit.
func litAt(p, s string, i int, lit string) bool {
	if i+len(lit) > len(p)+len(s) {
		return false
	}
	if i >= len(p) {
		j := i - len(p)
		return s[j:j+len(lit)] == lit
	}
	k := len(p) - i // bytes of lit that fall in p
	if k >= len(lit) {
		return p[i:i+len(lit)] == lit
	}
	return p[i:] == lit[:k] && s[:len(lit)-k] == lit[k:]
}

// runeLenAt is the byte length of the character at (p+s)[i] (1 for invalid UTF-8).
func runeLenAt(p, s string, i int) int {
	var size int
	if i < len(p) {
		_, size = utf8.DecodeRuneInString(p[i:])
	} else {
		_, size = utf8.DecodeRuneInString(s[i-len(p):])
	}
	return size
}

// String renders the pattern back in IAM syntax; a literal `*` or `?` (from a
// substituted value) is shown as ${*} or ${?}, a literal "${" as "${$}{".
func (g *glob) String() string {
	var b strings.Builder
	for _, t := range g.toks {
		switch t.kind {
		case tStar:
			b.WriteByte('*')
		case tOne:
			b.WriteByte('?')
		default:
			for i, r := range t.lit {
				switch {
				case r == '*' || r == '?':
					b.WriteString("${" + string(r) + "}")
				case r == '$' && strings.HasPrefix(t.lit[i:], "${"):
					b.WriteString("${$}")
				default:
					b.WriteRune(r)
				}
			}
		}
	}
	return b.String()
}
