// Package loopback is the one owner of "does this address stay on this
// machine": the config refuses a plaintext listener or upstream elsewhere,
// and the broker checks again before it binds one. It is a leaf: it imports
// nothing of edgegw.
package loopback

import (
	"net"
	"net/netip"
	"strings"
)

// Host reports whether host is "localhost" (any case) or a loopback IP
// (127.0.0.0/8, ::1, or an IPv4-mapped loopback address).
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// Addr reports whether a host:port names a loopback host (see Host); an
// address without a port is not one.
func Addr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && Host(host)
}
