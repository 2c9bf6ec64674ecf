package main

// Acceptance test of the metrics endpoint (issue 9): the real `edgegw run`
// binary bridged to Debian's mosquitto over mTLS; while the link to the
// upstream is cut, /metrics shows the route's queue depth rising with every
// acknowledged publish, and after the link is back, falling to 0 while every
// message arrives upstream.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
)

// cutLink forwards TCP to target; cut closes every connection and refuses
// new ones until restore (an upstream outage as the gateway sees it).
type cutLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newCutLink(t *testing.T, target string) *cutLink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &cutLink{ln: ln, target: target, conns: map[net.Conn]bool{}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			down := l.down
			l.mu.Unlock()
			u, err := net.DialTimeout("tcp", target, 3*time.Second)
			if down || err != nil {
				c.Close()
				if u != nil {
					u.Close()
				}
				continue
			}
			l.mu.Lock()
			l.conns[c], l.conns[u] = true, true
			l.mu.Unlock()
			for _, p := range [][2]net.Conn{{c, u}, {u, c}} {
				l.wg.Add(1)
				go func(dst, src net.Conn) {
					defer l.wg.Done()
					_, _ = io.Copy(dst, src)
					dst.Close()
					src.Close()
				}(p[0], p[1])
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); l.cut(); l.wg.Wait() })
	return l
}

func (l *cutLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.Close()
	}
	l.conns = map[net.Conn]bool{}
}

func (l *cutLink) restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

func scrape(t testing.TB, addr string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sample returns the value of series in a scrape (-1 when absent).
func sample(scrape, series string) float64 {
	for _, l := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func health(addr string) (int, observe.Health) {
	var h observe.Health
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, h
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

func TestMetricsE2EQueueDepthDuringOutage(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	upPKI, gw, cloudCert := up.PKI, up.Gateway, up.Cloud
	link := newCutLink(t, up.Addr)

	site, dir, lan, metrics, conf := oneSensorSite(t)
	gatewaytest.WriteFile(t, conf, fmt.Appendf(nil, `version: 1
site: plant-7
state_dir: %[1]s/state
listeners:
  - name: lan
    address: %[2]q
    tls: {ca: %[3]s, cert: %[4]s, key: "file:%[5]s", crl: %[6]s}
devices: devices.yaml
policies: policies/
store: {dir: %[1]s/state/queue, min_free: 16MiB}
metrics: {address: %[7]q}
admin: {socket: ""}
audit: {file: ""}
bridge:
  upstreams: [{url: "mqtts://%[8]s"}]
  client_id: plant-7-gw
  tls: {ca: %[9]s, cert: %[10]s, key: "file:%[11]s"}
  keepalive: 5s
  connect_timeout: 3s
  backoff: {min: 100ms, max: 500ms}
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}
`, dir, lan, site.CAFile, site.ServerCert, site.ServerKey, site.CRLFile, metrics,
		link.ln.Addr().String(), upPKI.CAFile, gw.CertFile, gw.KeyFile), 0o644)

	_, exited, _ := runDaemon(t, conf)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for i := 0; !cond(); i++ {
			select {
			case <-exited:
				t.Fatalf("edgegw run exited while waiting for %s", what)
			default:
			}
			if i == 1500 {
				t.Fatalf("no %s after 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("healthy gateway with the upstream connected", func() bool {
		code, h := health(metrics)
		return code == 200 && h.Upstream == "connected" && h.Queue == "open"
	})

	// The cloud side, directly on mosquitto: counts distinct payloads.
	var mu sync.Mutex
	got := map[string]bool{}
	ctls, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", up.Addr, upPKI.ClientTLS(cloudCert))
	if err != nil {
		t.Fatal(err)
	}
	cloud := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(ctls),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			mu.Lock()
			got[string(pr.Packet.Payload)] = true
			mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cloud.Connect(ctx, &paho.Connect{ClientID: "cloud", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("cloud connect: %v", err)
	}
	defer cloud.Disconnect(&paho.Disconnect{})
	if _, err := cloud.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sites/#", QoS: 1}}}); err != nil {
		t.Fatalf("cloud subscribe: %v", err)
	}
	delivered := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	sconn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", lan, site.ClientTLS(site.Issue(t, "sensor-1")))
	if err != nil {
		t.Fatal(err)
	}
	sensor := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(sconn)})
	if _, err := sensor.Connect(ctx, &paho.Connect{ClientID: "sensor-1", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("sensor connect: %v", err)
	}
	defer sensor.Disconnect(&paho.Disconnect{})
	n := 0
	publish := func(k int) {
		t.Helper()
		for range k {
			n++
			r, err := sensor.Publish(ctx, &paho.Publish{Topic: "sensors/sensor-1/temp", QoS: 1, Payload: fmt.Appendf(nil, "m%04d", n)})
			if err != nil || r == nil || r.ReasonCode >= 0x80 {
				t.Fatalf("publish %d: %v %+v", n, err, r)
			}
		}
	}
	const depthSeries = `edgegw_queue_depth{route="telemetry"}`

	publish(10)
	waitFor("10 messages upstream", func() bool { return delivered() == 10 })
	waitFor("queue depth 0 with the upstream up", func() bool { return sample(scrape(t, metrics), depthSeries) == 0 })
	// Every acknowledged QoS 1 publish waited for a group-commit fsync: the
	// histogram has samples, and gets more with every publish below.
	const fsyncCount, fsyncSum = "edgegw_store_fsync_duration_seconds_count", "edgegw_store_fsync_duration_seconds_sum"
	s := scrape(t, metrics)
	syncs0 := sample(s, fsyncCount)
	if syncs0 < 1 || syncs0 > float64(n) {
		t.Errorf("%s after %d QoS 1 publishes one at a time = %v; want 1..%d", fsyncCount, n, syncs0, n)
	}
	if sum := sample(s, fsyncSum); sum <= 0 {
		t.Errorf("%s = %v; want > 0", fsyncSum, sum)
	}

	// Outage: the depth rises with every batch the gateway acknowledges.
	link.cut()
	waitFor("upstream_connected 0", func() bool { return sample(scrape(t, metrics), "edgegw_upstream_connected") == 0 })
	if code, h := health(metrics); code != 200 || h.Upstream != "down" {
		t.Errorf("/healthz during the outage: %d %+v; want 200 with upstream down (the queue is what an outage is for)", code, h)
	}
	var rising []float64
	for range 3 {
		publish(10)
		rising = append(rising, sample(scrape(t, metrics), depthSeries))
	}
	t.Logf("queue depth while the upstream is down, after each 10 acks: %v", rising)
	if rising[0] != 10 || rising[1] != 20 || rising[2] != 30 {
		t.Errorf("queue depth during the outage: %v; want [10 20 30]", rising)
	}
	s = scrape(t, metrics)
	if syncs := sample(s, fsyncCount); syncs < syncs0+30 {
		// one publisher waiting for each PUBACK: a commit, and its fsync, per message
		t.Errorf("%s after 30 more QoS 1 publishes = %v; want >= %v", fsyncCount, syncs, syncs0+30)
	}
	if age := sample(s, `edgegw_queue_oldest_age_seconds{route="telemetry"}`); age <= 0 {
		t.Errorf("queue_oldest_age_seconds during the outage = %v; want > 0", age)
	}
	if b := sample(s, `edgegw_queue_bytes{route="telemetry"}`); b <= 0 {
		t.Errorf("queue_bytes during the outage = %v; want > 0", b)
	}

	// Back: the depth falls to 0 and everything arrives.
	link.restore()
	var falling []float64
	waitFor("queue depth 0 after the upstream came back", func() bool {
		v := sample(scrape(t, metrics), depthSeries)
		if len(falling) == 0 || falling[len(falling)-1] != v {
			falling = append(falling, v)
		}
		return v == 0
	})
	t.Logf("queue depth after the upstream came back (distinct samples): %v", falling)
	for i := 1; i < len(falling); i++ {
		if falling[i] > falling[i-1] {
			t.Errorf("queue depth rose while draining: %v", falling)
		}
	}
	waitFor("all 40 messages upstream", func() bool { return delivered() == 40 })
	s = scrape(t, metrics)
	for series, want := range map[string]float64{
		`edgegw_messages_in_total{route="telemetry"}`:  40,
		`edgegw_messages_out_total{route="telemetry"}`: 40,
		`edgegw_upstream_connected`:                    1,
		`edgegw_connections`:                           1,
	} {
		if v := sample(s, series); v != want {
			t.Errorf("%s = %v; want %v", series, v, want)
		}
	}
	if v := sample(s, "edgegw_upstream_reconnects_total"); v < 1 {
		t.Errorf("upstream_reconnects_total = %v; want >= 1 after the outage", v)
	}
}

const bridgeSensorPolicyMetrics = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/sensors/${iot:Connection.Thing.ThingName}/*"}
]}`
