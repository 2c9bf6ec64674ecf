package loopback

import "testing"

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		want       bool
	}{
		{"ipv4 loopback", "127.0.0.1:1883", true},
		{"other 127/8", "127.1.2.3:1883", true},
		{"ipv6 loopback", "[::1]:1883", true},
		{"mapped ipv4 loopback", "[::ffff:127.0.0.1]:1883", true},
		{"localhost", "localhost:1883", true},
		{"localhost, upper case", "LOCALHOST:1883", true},
		{"all interfaces", "0.0.0.0:1883", false},
		{"empty host", ":1883", false},
		{"lan address", "192.168.1.10:1883", false},
		{"a name", "broker.example:1883", false},
		{"no port", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Addr(tc.addr); got != tc.want {
				t.Errorf("Addr(%q) = %v; want %v", tc.addr, got, tc.want)
			}
		})
	}
}
