package gatewaytest

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// ServeAll accepts on ln until the test's cleanup, each connection served in
// its own goroutine; the cleanup closes ln and waits for every serve to end.
func ServeAll(t testing.TB, ln net.Listener, serve func(net.Conn)) {
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
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// Relay copies both ways between a and b until either side ends, then
// closes both and waits for the other copy.
func Relay(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
	a.Close()
	b.Close()
	<-done
}

// ConnectProxy is a fake HTTP CONNECT proxy on 127.0.0.1 for the bridge's
// proxy tests. Set the fields, then StartConnectProxy.
type ConnectProxy struct {
	User, Pass string                       // Basic authentication asked when User is set (407 otherwise)
	Target     func(hostport string) string // where a tunnel to hostport goes; nil: hostport itself
	Status     string                       // answered instead of a tunnel when set (e.g. "403 Forbidden")
	Greeting   string                       // written in the same write as the 200 (bytes the client's parser buffers)

	ln      net.Listener
	mu      sync.Mutex
	asked   []string // CONNECT targets, in order
	refused int      // 407 answers
}

// StartConnectProxy listens on 127.0.0.1 and serves p until the test's
// cleanup.
func StartConnectProxy(t testing.TB, p *ConnectProxy) *ConnectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	ServeAll(t, ln, p.serve)
	return p
}

// Addr is the proxy's host:port.
func (p *ConnectProxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's http URL, with user and password when user is set.
func (p *ConnectProxy) URL(user, pass string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.Addr()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

// Asked is the CONNECT targets asked for so far, in order.
func (p *ConnectProxy) Asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.asked...)
}

// Refused is how many 407 answers the proxy gave.
func (p *ConnectProxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

func (p *ConnectProxy) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprint(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.asked = append(p.asked, req.Host)
	p.mu.Unlock()
	if p.Status != "" {
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n", p.Status)
		return
	}
	if p.User != "" && req.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(p.User+":"+p.Pass)) {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		fmt.Fprint(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	target := req.Host
	if p.Target != nil {
		target = p.Target(req.Host)
	}
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	_ = c.SetDeadline(time.Time{})
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n"+p.Greeting)
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		_, _ = up.Write(b)
	}
	Relay(c, up)
}
