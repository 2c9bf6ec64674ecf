package mosqimport

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Access is what an ACL line grants (or, Deny, refuses).
type Access uint8

// ACL accesses, as Mosquitto names them.
const (
	Read Access = 1 << iota
	Write
	Deny      Access = 0
	ReadWrite        = Read | Write
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	}
	return "deny"
}

// ACLLine is one `topic` or `pattern` line of an acl_file.
type ACLLine struct {
	Pos
	Pattern bool   // a `pattern` line (every client, %c and %u substituted)
	User    string // the `user` it follows; "" before any user line
	HasUser bool
	Access  Access
	Topic   string
	Text    string // the line as written
}

// ACL is a parsed acl_file, lines in file order.
type ACL struct {
	Lines []ACLLine
}

// ParseACL parses an acl_file the way Mosquitto 2.0 does: '#' in the first
// column starts a comment, words are separated by single spaces, `topic
// [read|write|readwrite|deny] TOPIC` (the topic is the rest of the line and
// may contain spaces; without an access it is readwrite), `pattern` likewise,
// `user NAME`. Mosquitto refuses to start on any other line; such lines come
// back as Invalid findings and are skipped.
func ParseACL(name string, data []byte) (*ACL, []Finding) {
	a := &ACL{}
	var errs []Finding
	user, hasUser := "", false
	bad := func(pos Pos, text, reason string) {
		errs = append(errs, Finding{Pos: pos, Kind: Invalid, Text: text, Reason: reason})
	}
	for i, raw := range strings.Split(string(data), "\n") {
		pos := Pos{File: name, Line: i + 1}
		line := strings.TrimRight(raw, " \t\r\n\f\v")
		if line == "" || line[0] == '#' {
			continue
		}
		if len(line) > maxLineBytes {
			bad(pos, line[:80], "line too long")
			continue
		}
		if !utf8.ValidString(line) || strings.IndexByte(line, 0) >= 0 {
			bad(pos, "", "not valid UTF-8 text (or a NUL character); MQTT topics are UTF-8")
			continue
		}
		// strtok(" ") skips leading spaces and runs of spaces.
		rest := strings.TrimLeft(line, " ")
		if rest == "" {
			continue
		}
		tok, rest, _ := strings.Cut(rest, " ")
		rest = strings.TrimLeft(rest, " ")
		switch tok {
		case "topic", "pattern":
			accessWord, topicRest, _ := strings.Cut(rest, " ")
			if accessWord == "" {
				bad(pos, line, "empty topic")
				continue
			}
			topic := strings.Trim(topicRest, " \t")
			access := ReadWrite
			if topic == "" {
				topic = accessWord
			} else {
				switch accessWord {
				case "read":
					access = Read
				case "write":
					access = Write
				case "readwrite":
					access = ReadWrite
				case "deny":
					access = Deny
				default:
					bad(pos, line, "access "+strconv.Quote(accessWord)+": want read, write, readwrite or deny")
					continue
				}
			}
			if msg := checkFilter(topic); msg != "" {
				bad(pos, line, "topic "+strconv.Quote(topic)+": "+msg)
				continue
			}
			a.Lines = append(a.Lines, ACLLine{Pos: pos, Pattern: tok == "pattern", User: user, HasUser: hasUser,
				Access: access, Topic: topic, Text: line})
		case "user":
			u := strings.Trim(rest, " \t")
			if u == "" {
				bad(pos, line, "missing user name")
				continue
			}
			user, hasUser = u, true
		default:
			bad(pos, line, "want topic, pattern or user (Mosquitto refuses to start on this line)")
		}
	}
	return a, errs
}

// checkFilter is Mosquitto's mosquitto_sub_topic_check: '+' and '#' only
// as whole levels, '#' last. It returns "" for a valid filter.
func checkFilter(f string) string {
	if f == "" {
		return "empty"
	}
	if len(f) > 65535 {
		return "longer than 65535 bytes"
	}
	if !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
		return "not valid UTF-8 (or a NUL character)"
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return "'#' must be the last level"
		case l != "#" && strings.Contains(l, "#"):
			return "'#' must be a whole level"
		case l != "+" && strings.Contains(l, "+"):
			return "'+' must be a whole level"
		}
	}
	return ""
}
