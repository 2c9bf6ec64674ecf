package mosqimport_test

import (
	"strings"

	"github.com/edgegw/edgegw/gateway/mosqimport"
)

// mosqAllowed is Mosquitto 2.0.11's default ACL check
// (src/security_default.c, mosquitto_acl_check_default, after
// acl__check_dollar in src/security.c) for a client whose user name and
// client ID are both user, with an acl_file holding lines: the user's lines
// (deny lines first), then the patterns (deny lines first), %c and %u
// substituted. access is Read or Write.
func mosqAllowed(lines []mosqimport.ACLLine, user, topic string, access mosqimport.Access) bool {
	if strings.HasPrefix(topic, "$SYS") && access == mosqimport.Write {
		if !mosqimport.MosquittoMatch("$SYS/broker/connection/+/state", topic) {
			return false
		}
	}
	var own, pats []mosqimport.ACLLine
	for _, l := range lines {
		switch {
		case l.Pattern:
			pats = append(pats, l)
		case l.HasUser && l.User == user:
			own = append(own, l)
		}
	}
	if len(own) == 0 && len(pats) == 0 {
		return false
	}
	denyFirst := func(ls []mosqimport.ACLLine) []mosqimport.ACLLine {
		var out []mosqimport.ACLLine
		for i := len(ls) - 1; i >= 0; i-- { // each deny is put at the front: reverse order
			if ls[i].Access == mosqimport.Deny {
				out = append(out, ls[i])
			}
		}
		for _, l := range ls {
			if l.Access != mosqimport.Deny {
				out = append(out, l)
			}
		}
		return out
	}
	for _, l := range denyFirst(own) {
		if topic[0] == '$' && l.Topic[0] != '$' {
			continue
		}
		if mosqimport.MosquittoMatch(l.Topic, topic) {
			if l.Access == mosqimport.Deny {
				return false
			}
			if l.Access&access != 0 {
				return true
			}
		}
	}
	if len(pats) > 0 && strings.ContainsAny(user, "+#") {
		return false
	}
	for _, l := range denyFirst(pats) {
		if mosqimport.MosquittoMatch(substitute(l.Topic, user), topic) {
			if l.Access == mosqimport.Deny {
				return false
			}
			if l.Access&access != 0 {
				return true
			}
		}
	}
	return false
}

// substitute replaces %c and %u the way Mosquitto does: left to right, a
// '%' not followed by c or u is kept.
func substitute(pattern, user string) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '%' && i+1 < len(pattern) && (pattern[i+1] == 'c' || pattern[i+1] == 'u') {
			b.WriteString(user)
			i++
			continue
		}
		b.WriteByte(pattern[i])
	}
	return b.String()
}

// probeTopics derives topic names worth asking about from the ACL's own
// topics: wildcards replaced by sample levels, variables by each user.
func probeTopics(lines []mosqimport.ACLLine, users []string, limit int) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !strings.ContainsAny(s, "+#") && !seen[s] && len(out) < limit {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, l := range lines {
		for _, u := range users {
			base := substitute(l.Topic, u)
			for _, plus := range []string{"x", "", "x/y"} {
				t := strings.ReplaceAll(base, "+", plus)
				switch {
				case strings.HasSuffix(t, "/#"):
					add(strings.TrimSuffix(t, "/#"))
					add(strings.TrimSuffix(t, "#") + "z")
					add(strings.TrimSuffix(t, "#") + "z/w")
				case t == "#":
					add("z")
					add("$z")
				default:
					add(t)
					add(t + "/z")
				}
			}
		}
	}
	return out
}
