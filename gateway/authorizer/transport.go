package authorizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"syscall"
	"time"
)

// caller sends one event and returns the raw answer. Errors wrap ErrTimeout or
// ErrTransport.
type caller interface {
	call(ctx context.Context, event []byte) ([]byte, error)
}

// httpCaller POSTs the event to a loopback URL or a unix socket.
type httpCaller struct {
	url    string
	client *http.Client
}

func newHTTPCaller(ep endpoint) *httpCaller {
	d := &net.Dialer{Control: loopbackOnly}
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: the event holds passwords
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	if ep.unix != "" {
		path := ep.unix
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}
	}
	return &httpCaller{url: ep.url, client: &http.Client{
		Transport: tr,
		// A redirect could lead off the machine: refuse it.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the authorizer answered with a redirect")
		},
	}}
}

// loopbackOnly refuses a TCP dial to anything but a loopback address, whatever
// "localhost" resolves to.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("refusing to dial %s %s: the authorizer must be on this machine (loopback)", network, address)
	}
	return nil
}

func (h *httpCaller) call(ctx context.Context, event []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(event))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTransport, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("POST %s: %w", h.url, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("reading the answer of %s: %w", h.url, err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", ErrTransport, h.url, resp.Status)
	}
	return body, nil
}

// execCaller runs the command once per call: the event on stdin, the answer on
// stdout. At the deadline its whole process group is killed, so a script's
// children (a `sleep`, a `curl`) cannot keep it alive. It runs with a minimal
// environment: the gateway's own environment is not the authorizer's business.
type execCaller struct {
	argv []string
}

var execEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}

func (x *execCaller) call(ctx context.Context, event []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, x.argv[0], x.argv[1:]...)
	cmd.Env = execEnv
	cmd.Stdin = bytes.NewReader(event)
	var out limitedBuffer
	out.max = maxAnswerBytes + 1
	cmd.Stdout = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // stdout held open by an orphan: give up on it
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, classify(ctx, fmt.Errorf("running %s: %w", x.argv[0], ctx.Err()))
	}
	if err != nil {
		// Its stderr is not read: it may echo what it was given (passwords).
		return nil, fmt.Errorf("%w: running %s: %v", ErrTransport, x.argv[0], err)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps at most max bytes and discards the rest (the answer is
// then refused as too large).
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// classify turns a failed call into ErrTimeout when the call's deadline passed.
func classify(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %v", ErrTransport, err)
}
