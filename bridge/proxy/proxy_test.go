package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

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
			p := gatewaytest.StartConnectProxy(t, &gatewaytest.ConnectProxy{User: tc.user, Pass: tc.pass, Target: func(string) string { return target }, Greeting: tc.greeting})
			c, err := dial(t, p.URL(tc.user, tc.pass), "cloud.example:8883")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := p.Asked(); len(got) != 1 || got[0] != "cloud.example:8883" {
				t.Errorf("proxy was asked for %q; want one CONNECT cloud.example:8883", got)
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
			echo := startEcho(t)
			p := gatewaytest.StartConnectProxy(t, &gatewaytest.ConnectProxy{User: "gw", Pass: "right", Target: func(string) string { return echo }, Status: tc.status})
			c, err := dial(t, p.URL("gw", tc.pass), "cloud.example:443")
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
