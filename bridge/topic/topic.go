package topic

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxBytes is the longest topic or filter MQTT can carry (a UTF-8 string
// with a 16-bit length prefix, [MQTT-1.5.3-1]).
const MaxBytes = 65535

// ValidateFilter reports whether filter is a valid MQTT topic filter: not
// empty, valid UTF-8 without NUL [MQTT-4.7.3-1] [MQTT-1.5.4-2], at most
// 65535 bytes, '#' only as a whole and last level [MQTT-4.7.1-2], '+' only as
// a whole level [MQTT-4.7.1-3]. Examples: "building/#", "+/temp", "#", "a//b".
// The error says what is wrong without repeating the filter.
func ValidateFilter(filter string) error {
	if err := validateString(filter); err != nil {
		return err
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New("'#' must be the last level")
		case l != "#" && strings.Contains(l, "#"):
			return errors.New("'#' must be a whole level (e.g. a/#, not a/b#)")
		case l != "+" && strings.Contains(l, "+"):
			return errors.New("'+' must be a whole level (e.g. a/+/c, not a/b+/c)")
		}
	}
	return nil
}

// ValidateName reports whether name is a valid MQTT topic name (what a
// PUBLISH carries): the rules of ValidateFilter, and no wildcards
// [MQTT-3.3.2-2].
func ValidateName(name string) error {
	if err := validateString(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "#+") {
		return errors.New("wildcards '#' and '+' are not allowed in a topic name")
	}
	return nil
}

// validateString checks what filters and names share: an MQTT UTF-8 string
// that is not empty.
func validateString(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > MaxBytes:
		return errors.New("longer than 65535 bytes")
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("must not contain a NUL character")
	}
	return nil
}
