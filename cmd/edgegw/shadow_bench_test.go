package main

// BenchmarkShadowUpdates (make bench): shadow updates through `edgegw run`
// (mutual TLS, policy check, JSON merge, an fdatasynced write in the queue's
// encrypted database, the answers published back), by devices that each wait
// for their /update/accepted before the next update, as a device SDK does.
// The peer in the same run is the same devices doing the same round trip on
// a plain topic of the same gateway (a QoS 1 publish to a topic they are
// subscribed to, nothing stored): the ratio is what the shadow service costs.
// Each measurement runs once (b.N is not used).

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

type roundTrips struct {
	rate     float64 // round trips per second, all devices
	p50, p99 time.Duration
}

// shadowRoundTrips runs n round trips per device, devices at once: publish
// to request (clientToken per request), wait for the message on response
// carrying that token.
func shadowRoundTrips(b *testing.B, g *bridgeGW, devices, n int, request, response func(thing string) string, payload func(i int) string) roundTrips {
	b.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for d := range devices {
		thing := fmt.Sprintf("lamp-%d", d+1)
		s, err := g.sensor(b, thing, nil)
		if err != nil {
			b.Fatalf("%s connect: %v", thing, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sa, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: response(thing), QoS: 1}}})
		cancel()
		if err != nil || sa.Reasons[0] != 1 {
			b.Fatalf("%s subscribe: %v %v", thing, sa, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.close()
			mine := make([]time.Duration, 0, n)
			for i := range n {
				token := fmt.Sprintf(`"clientToken":"%s-%d"`, thing, i)
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := s.c.Publish(ctx, &paho.Publish{Topic: request(thing), QoS: 1, Payload: []byte(`{` + token + `,` + payload(i) + `}`)})
				cancel()
				if err != nil {
					b.Errorf("%s publish: %v", thing, err)
					return
				}
				for got := false; !got; {
					select {
					case m := <-s.msgs:
						got = strings.Contains(string(m.Payload), token)
					case <-time.After(10 * time.Second):
						b.Errorf("%s: no answer to request %d within 10s", thing, i)
						return
					}
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if len(lat) == 0 {
		b.Fatal("no round trip completed")
	}
	slices.Sort(lat)
	return roundTrips{rate: float64(len(lat)) / el.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}

func BenchmarkShadowUpdates(b *testing.B) {
	g := newShadowGW(b, nil, "  sync: []", nil)
	const devices, n = 16, 300
	shadowTopic := func(op string) func(string) string {
		return func(thing string) string { return "$aws/things/" + thing + "/shadow/" + op }
	}
	plain := func(thing string) string { return "$aws/things/" + thing + "/shadow/echo" } // not a shadow topic: an ordinary publish
	update := func(i int) string { return fmt.Sprintf(`"state":{"reported":{"temp":%d,"status":"ok"}}`, i) }

	rss0, _ := gatewaytest.VmRSS(g.cmd.Process.Pid)
	sh1 := shadowRoundTrips(b, g, 1, n, shadowTopic("update"), shadowTopic("update/accepted"), update)
	pl1 := shadowRoundTrips(b, g, 1, n, plain, plain, update)
	sh := shadowRoundTrips(b, g, devices, n, shadowTopic("update"), shadowTopic("update/accepted"), update)
	pl := shadowRoundTrips(b, g, devices, n, plain, plain, update)
	rss, _ := gatewaytest.VmRSS(g.cmd.Process.Pid)

	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	var t strings.Builder
	fmt.Fprintf(&t, "\nshadow updates through edgegw run (mTLS, policy, fdatasynced encrypted store), vs a plain QoS 1 round trip on the same gateway:\n")
	fmt.Fprintf(&t, "%-22s %14s %10s %10s %14s %10s %10s %8s\n", "devices", "shadow upd/s", "p50", "p99", "plain rt/s", "p50", "p99", "ratio")
	for _, r := range []struct {
		n      int
		sh, pl roundTrips
	}{{1, sh1, pl1}, {devices, sh, pl}} {
		fmt.Fprintf(&t, "%-22d %14.0f %10s %10s %14.0f %10s %10s %8.2f\n", r.n, r.sh.rate, ms(r.sh.p50), ms(r.sh.p99), r.pl.rate, ms(r.pl.p50), ms(r.pl.p99), r.sh.rate/max(r.pl.rate, 1e-9))
	}
	fmt.Fprintf(&t, "edgegw RSS: %.1f MiB at start, %.1f MiB after %d shadow updates\n", float64(rss0)/(1<<20), float64(rss)/(1<<20), (1+devices)*n)
	fmt.Fprint(os.Stderr, t.String())
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{sh1.rate, "shadow_1dev_upd/s"}, {float64(sh1.p99.Microseconds()), "shadow_1dev_p99_us"},
		{sh.rate, "shadow_16dev_upd/s"}, {float64(sh.p50.Microseconds()), "shadow_16dev_p50_us"}, {float64(sh.p99.Microseconds()), "shadow_16dev_p99_us"},
		{pl.rate, "plain_16dev_rt/s"}, {sh.rate / max(pl.rate, 1e-9), "ratio_shadow_plain_16dev"},
		{float64(rss) / (1 << 20), "rss_MiB"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
}
