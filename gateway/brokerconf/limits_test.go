package brokerconf

import (
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
)

// TestBrokerLimits: limits left out of the config are the broker's defaults
// (the broker owns them); the ones set replace them, capped where MQTT or
// mochi need it.
func TestBrokerLimits(t *testing.T) {
	withDefaults := func(mod func(*broker.Limits)) broker.Limits {
		l := broker.DefaultLimits()
		mod(&l)
		return l
	}
	for _, tc := range []struct {
		name string
		in   config.LimitsConfig
		want broker.Limits
	}{
		{"left out: the broker's defaults", config.Default().Limits, broker.DefaultLimits()},
		{"set", config.LimitsConfig{HandshakeTimeout: config.Duration(3 * time.Second), MaxClients: 10, RetainedMaxMessages: 5, MaxTopicLevels: 4},
			withDefaults(func(l *broker.Limits) {
				l.HandshakeTimeout, l.MaxClients, l.RetainedMaxMessages, l.MaxTopicLevels = 3*time.Second, 10, 5, 4
			})},
		{"capped", config.LimitsConfig{MaxPacketSize: 1 << 30, ReceiveMaximum: 70000, ClientWriteQueue: 1 << 21},
			withDefaults(func(l *broker.Limits) { l.MaxPacketSize, l.ReceiveMaximum, l.ClientWriteQueue = 256<<20, 65535, 1<<20 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Limits(tc.in); got != tc.want {
				t.Errorf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}
