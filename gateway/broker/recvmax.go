package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// A small Receive Maximum.
//
// mochi's own send quota, which would hold deliveries over an MQTT 5
// client's Receive Maximum, deadlocks (disableSendQuota, hook.go), so it is
// off for every client. The broker honours a Receive Maximum below mochi's
// in-flight cap with its back-pressure instead: before a QoS 1/2 publish is
// acknowledged, the publisher waits while a subscriber of the topic has as
// many messages in flight as that subscriber's Receive Maximum (instead of
// the usual backpressureHigh) [MQTT-3.3.4-9]. So a slow consumer with a
// small window slows its producers down, and none of its messages is lost.
//
// It must not stall the broker: the wait is bounded (backpressureMaxWait)
// and a subscriber that made a publisher time out is marked stuck. A stuck
// subscriber is not waited for again until its in-flight count falls below
// its Receive Maximum; meanwhile deliveries to it go out beyond its window
// (counted in BackpressureTimeouts once, when it got stuck). A client that
// never acknowledges cannot make every publish wait two seconds.

// recvMax is one client's Receive Maximum as the broker honours it.
type recvMax struct {
	n     int         // the client's Receive Maximum; 0: not below the in-flight cap
	stuck atomic.Bool // a publisher timed out waiting for this client
}

// noteReceiveMaximum records rm (the client's CONNECT Receive Maximum, as
// capped by mochi; 0 when absent) when it is below mochi's in-flight cap.
func (b *Broker) noteReceiveMaximum(st *clientState, rm uint16) {
	if rm == 0 || rm >= b.srv.Options.Capabilities.MaximumInflight {
		return
	}
	st.recv.n = int(rm)
	b.smallRecvMax.Add(1)
	for {
		cur := b.minRecvMax.Load()
		if cur != 0 && cur <= int32(rm) || b.minRecvMax.CompareAndSwap(cur, int32(rm)) {
			return
		}
	}
}

// forgetReceiveMaximum undoes noteReceiveMaximum when the client leaves.
func (b *Broker) forgetReceiveMaximum(st *clientState) {
	if st.recv.n > 0 && b.smallRecvMax.Add(-1) == 0 {
		b.minRecvMax.Store(0)
	}
}

// backpressureLow is the in-flight count (all clients) below which no
// client can be at its mark: backpressureHigh, or the smallest Receive
// Maximum honoured since the last time no such client was connected.
func (b *Broker) backpressureLow() int {
	low := b.backpressureHigh
	if m := int(b.minRecvMax.Load()); m > 0 && m < low {
		low = m
	}
	return low
}

// admit lowers *high to the client's Receive Maximum and reports whether a
// publisher should wait for this client (false: it is stuck).
func (r *recvMax) admit(cl *mqtt.Client, high *int) bool {
	if r.n == 0 || r.n >= *high {
		return true
	}
	*high = r.n
	if r.stuck.Load() {
		if cl.State.Inflight.Len() >= r.n {
			return false
		}
		r.stuck.Store(false)
	}
	return true
}

// timedOut marks a client with a small Receive Maximum stuck.
func (r *recvMax) timedOut() {
	if r.n > 0 {
		r.stuck.Store(true)
	}
}
