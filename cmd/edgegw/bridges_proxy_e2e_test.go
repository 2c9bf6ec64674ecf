package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// connectProxy is a minimal HTTP CONNECT proxy on 127.0.0.1 that records
// the targets it was asked for and tunnels to them.
type connectProxy struct {
	addr  string
	mu    sync.Mutex
	asked []string
}

func startConnectProxy(t *testing.T) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.mu.Lock()
	p.asked = append(p.asked, req.Host)
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", req.Host, 5*time.Second)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	_ = c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// TestBridgesE2EProxy: a bridge with proxy: reaches its mqtts upstream
// through an HTTP CONNECT proxy (the proxy is asked for the upstream's
// address) and its messages arrive in order.
func TestBridgesE2EProxy(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	proxy := startConnectProxy(t)
	cloud := startCloudSub(t, up, "sites/#")
	g := newGW(t, "bridges:\n"+bridgeYAML("behind-proxy", "plant-7-gw", up, `
      - {name: p-a, topic: "sensors/sensor-a/#", remote_prefix: "sites/plant-7/"}`)+
		fmt.Sprintf("    proxy: \"http://%s\"\n", proxy.addr))
	const n = 100
	var todo []msgID
	for i := range n {
		todo = append(todo, msgID{"sensor-a", i})
	}
	if _, failed := g.publishAll(t, todo, 1, nil); len(failed) > 0 {
		t.Fatalf("%d publishes failed", len(failed))
	}
	cloud.waitDistinct(t, n, 20*time.Second, 60*time.Second)
	checkArrivals(t, "upstream behind the proxy", cloud, "sensor-a", n)
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.asked) == 0 || proxy.asked[0] != up.Addr {
		t.Errorf("proxy was asked for %q; want CONNECT %s", proxy.asked, up.Addr)
	}
}
