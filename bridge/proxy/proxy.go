// Package proxy opens TCP tunnels through an HTTP proxy with the CONNECT
// method, the usual way out of a site whose firewall opens port 443 only to
// its proxy. The bridge dials its upstreams through it when Config.Proxy is
// set.
//
// Accepted proxy URLs: http://[user:password@]host[:port] (port 8080 when
// none is given); a user means Basic authentication. The proxy's refusals
// are errors that say what to check (407: the user and password; 403: the
// proxy's allowed destinations). The password is never logged: errors name
// the proxy by its redacted URL.
//
// Imports: the standard library only; nothing of edgegw.
package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Dial opens a tunnel to addr through an HTTP proxy with the CONNECT
// method (RFC 9110, section 9.3.6), with Basic authentication when the proxy
// URL carries a user (RFC 7617). It is a few lines of HTTP/1.1: the proxy's
// answer is read with net/http's response parser, and any bytes the proxy
// sent after it stay readable on the returned conn.
func Dial(ctx context.Context, d *net.Dialer, p *url.URL, addr string) (net.Conn, error) {
	paddr := p.Host
	if p.Port() == "" {
		paddr = net.JoinHostPort(p.Hostname(), "8080")
	}
	nc, err := d.DialContext(ctx, "tcp", paddr)
	if err != nil {
		return nil, fmt.Errorf("connecting to proxy %s: %w", p.Redacted(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	var req strings.Builder
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", addr, addr)
	if u := p.User; u != nil {
		pw, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pw))
		fmt.Fprintf(&req, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	req.WriteString("\r\n")
	if _, err := nc.Write([]byte(req.String())); err != nil {
		nc.Close()
		return nil, fmt.Errorf("sending CONNECT %s to proxy %s: %w", addr, p.Redacted(), err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("reading the answer of proxy %s to CONNECT %s: %w", p.Redacted(), addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		nc.Close()
		hint := ""
		switch resp.StatusCode {
		case http.StatusProxyAuthRequired:
			hint = ": check the user and password in the proxy URL"
		case http.StatusForbidden:
			hint = ": the proxy does not allow this destination (many allow CONNECT to port 443 only)"
		}
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s%s", p.Redacted(), addr, resp.Status, hint)
	}
	if !stop() {
		return nil, fmt.Errorf("connecting through proxy %s: %w", p.Redacted(), ctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: nc, r: br}, nil
	}
	return nc, nil
}

// bufferedConn reads what the proxy's bufio.Reader already holds first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Validate checks a proxy URL: http://[user:password@]host[:port].
func Validate(p *url.URL) error {
	if p.Scheme != "http" {
		return fmt.Errorf("proxy %q: scheme must be http:// (an HTTP CONNECT proxy)", p.Redacted())
	}
	if p.Hostname() == "" {
		return fmt.Errorf("proxy %q: host is missing", p.Redacted())
	}
	if p.Path != "" && p.Path != "/" {
		return fmt.Errorf("proxy %q: a proxy URL has no path", p.Redacted())
	}
	return nil
}
