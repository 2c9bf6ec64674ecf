package sql

import (
	"errors"
	"strings"
)

// topicFilter is the FROM clause: an MQTT topic filter with + (one level) and
// # (any remaining levels, including none).
type topicFilter struct {
	raw    string
	levels []string
}

func parseTopicFilter(s string) (*topicFilter, error) {
	if s == "" {
		return nil, errors.New("empty topic filter")
	}
	if strings.ContainsRune(s, 0) {
		return nil, errors.New("a topic filter cannot contain the NUL character")
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return nil, errors.New("'#' must be a whole level and the last one, like 'a/b/#'")
		}
		if strings.Contains(l, "+") && l != "+" {
			return nil, errors.New("'+' must be a whole level, like 'a/+/c'")
		}
	}
	return &topicFilter{raw: s, levels: levels}, nil
}

// match reports whether topic matches the filter, with MQTT's rules: a
// wildcard in the first level does not match a topic starting with '$'.
func (f *topicFilter) match(topic string) bool {
	if len(topic) > 0 && topic[0] == '$' && len(f.levels) > 0 && (f.levels[0] == "+" || f.levels[0] == "#") {
		return false
	}
	rest := topic
	for i, l := range f.levels {
		if l == "#" {
			return true
		}
		end := strings.IndexByte(rest, '/')
		var level string
		if end < 0 {
			level = rest
		} else {
			level = rest[:end]
		}
		if l != "+" && l != level {
			return false
		}
		if end < 0 {
			// The topic has no more levels: it matches if the filter ends
			// here, or continues only with '#' ("a/#" matches "a").
			return i == len(f.levels)-1 || (i == len(f.levels)-2 && f.levels[i+1] == "#")
		}
		rest = rest[end+1:]
	}
	return false
}

// validTopicName reports whether t can be published to: not empty, no
// wildcards, no NUL.
func validTopicName(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00")
}
