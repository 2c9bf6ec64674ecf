package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProxy is a one-purpose HTTP CONNECT proxy on 127.0.0.1: Basic
// authentication when user is set, every tunnel to target, and greeting
// written right after its 200 in the same write (bytes the client's
// response parser buffers and Dial must hand on).
type fakeProxy struct {
	ln         net.Listener
	user, pass string
	target     string
	greeting   string
	status     string // answer instead of a tunnel when set
	asked      chan string
}

func startProxy(t *testing.T, p *fakeProxy) *fakeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	p.asked = make(chan string, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
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
	return p
}

func (p *fakeProxy) url(user, pass string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

func (p *fakeProxy) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.asked <- req.Host
	if p.status != "" {
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n", p.status)
		return
	}
	if p.user != "" && req.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass)) {
		fmt.Fprint(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n"+p.greeting)
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

// startEcho is a TCP echo server on 127.0.0.1.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, p *url.URL, addr string) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	return Dial(ctx, &d, p, addr)
}

// TestDialTunnels: through the proxy, with and without Basic
// authentication, the conn reaches the target; the CONNECT names the
// target; bytes the proxy sent with its 200 are read first.
func TestDialTunnels(t *testing.T) {
	for _, tc := range []struct {
		name, user, pass, greeting string
	}{
		{"no authentication", "", "", ""},
		{"basic authentication", "gw", "s3cret:with colon", ""},
		{"bytes after the 200", "", "", "early"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := startEcho(t)
			p := startProxy(t, &fakeProxy{user: tc.user, pass: tc.pass, target: target, greeting: tc.greeting})
			c, err := dial(t, p.url(tc.user, tc.pass), "cloud.example:8883")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := <-p.asked; got != "cloud.example:8883" {
				t.Errorf("proxy was asked for %q; want cloud.example:8883", got)
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			want := tc.greeting + "ping"
			got := make([]byte, len(want))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading through the tunnel: %v", err)
			}
			if string(got) != want {
				t.Errorf("got %q through the tunnel; want %q", got, want)
			}
		})
	}
}

// TestDialRefused: a refusal is an error naming the proxy (password
// redacted), the target and the status, with what to check.
func TestDialRefused(t *testing.T) {
	for _, tc := range []struct {
		name, status, pass string
		want               []string
	}{
		{"wrong password", "", "wrong", []string{"407", "check the user and password", "cloud.example:443", "xxxxx"}},
		{"destination forbidden", "403 Forbidden", "right", []string{"403", "does not allow this destination"}},
		{"bad gateway", "502 Bad Gateway", "right", []string{"502 Bad Gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, &fakeProxy{user: "gw", pass: "right", target: startEcho(t), status: tc.status})
			c, err := dial(t, p.url("gw", tc.pass), "cloud.example:443")
			if err == nil {
				c.Close()
				t.Fatal("got a tunnel; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q; want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tc.pass) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestDialDeadline: a proxy that accepts and never answers costs at most the
// context's deadline.
func TestDialDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // reads, never answers
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var d net.Dialer
	_, err = Dial(ctx, &d, &url.URL{Scheme: "http", Host: ln.Addr().String()}, "cloud.example:443")
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		t.Fatalf("got %v; want the deadline", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		in, wantErr string
	}{
		{"http://proxy.site:3128", ""},
		{"http://u:p@proxy.site", ""},
		{"http://proxy.site/", ""},
		{"https://proxy.site:3128", "scheme must be http://"},
		{"socks5://proxy.site:1080", "scheme must be http://"},
		{"http://:3128", "host is missing"},
		{"http://proxy.site/path", "has no path"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		err = Validate(u)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Validate(%s): got %v; want nil", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Validate(%s): got %v; want an error containing %q", tc.in, err, tc.wantErr)
		}
	}
}
