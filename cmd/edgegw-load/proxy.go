package main

// A TCP proxy between the gateway's bridge and the upstream broker that can
// hold the path open but silent: connections stay established, nothing is
// forwarded in either direction (a dead NAT entry, a black-holed route), and
// when the silence ends the held connections are reset, as the NAT would.

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards 127.0.0.1:port to Target.
type Proxy struct {
	Target string
	ln     net.Listener

	mu     sync.Mutex
	silent bool
	gate   chan struct{} // closed while not silent
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy listens on a free loopback port.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Target: target, ln: ln, gate: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Silence holds every connection (existing and new) open without forwarding.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.silent {
		p.silent = true
		p.gate = make(chan struct{})
	}
}

// Resume resets the held connections and forwards again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Reset first, then open the gate: a pump holding bytes read during the
	// silence must find its peer closed, not forward them late.
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	if p.silent {
		p.silent = false
		close(p.gate)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.Resume()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	p.mu.Unlock()
}

func (p *Proxy) waitOpen() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer c.Close()
	<-p.waitOpen() // a new connection during silence: accepted, never answered
	up, err := net.DialTimeout("tcp", p.Target, 2*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	p.track(up)
	done := make(chan struct{}, 2)
	go func() { p.pump(up, c); done <- struct{}{} }()
	go func() { p.pump(c, up); done <- struct{}{} }()
	<-done
}

// pump copies src to dst, waiting at the gate before every write so that a
// silenced path forwards nothing (the bytes stay in the socket buffers).
func (p *Proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.waitOpen()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			if err != io.EOF {
				break
			}
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}
