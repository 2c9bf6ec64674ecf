package bridge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"

	"github.com/edgegw/edgegw/bridge/proxy"
)

// ReadPasswordFile reads an upstream password from a file that only its
// owner may read (mode 0600 or 0400): a looser mode is refused, since
// anyone on the Pi could then take the gateway's upstream identity. One
// trailing newline is removed. The password is never logged.
func ReadPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading password file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading password file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("password file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("password file %s has mode %04o: others can read it; run chmod 600 %s", path, perm, path)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("reading password file %s: %w", path, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("password file %s is empty", path)
	}
	if len(b) > 65535 {
		return nil, fmt.Errorf("password file %s: %d bytes, MQTT allows at most 65535", path, len(b))
	}
	return b, nil
}

// dialTCP connects to addr, through the HTTP CONNECT proxy when one is
// configured.
func (b *Bridge) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	p := b.cfg.Proxy
	if p == nil {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		return nc, nil
	}
	return proxy.Dial(ctx, &d, p, addr)
}
