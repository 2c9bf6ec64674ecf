package bridge

import (
	"errors"
	"testing"
)

func TestConnackErrorIs(t *testing.T) {
	for _, tc := range []struct {
		proto      Protocol
		code       byte
		bad, notAu bool
	}{
		{MQTT311, 4, true, false},
		{MQTT311, 5, false, true},
		{MQTT311, 2, false, false},
		{MQTT5, 0x86, true, false},
		{MQTT5, 0x87, false, true},
	} {
		e := &ConnackError{Protocol: tc.proto, Code: tc.code}
		if errors.Is(e, ErrBadCredentials) != tc.bad || errors.Is(e, ErrNotAuthorized) != tc.notAu {
			t.Errorf("%v code 0x%02x: Is(bad credentials) %v, Is(not authorized) %v; want %v, %v",
				tc.proto, tc.code, errors.Is(e, ErrBadCredentials), errors.Is(e, ErrNotAuthorized), tc.bad, tc.notAu)
		}
	}
}
