package pkicmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw"
)

// serverRenewal is what `pki server --reuse-key` takes from the command line.
type serverRenewal struct {
	keyURI, out, renewBefore string
	hosts, ips               []string
	days                     int
	isJSON                   bool
}

// renewReusingKey is `pki server --reuse-key`: the existing certificate in r.out is renewed for
// its own public key, without opening the key. A TPM that serves one connection at a time (swtpm;
// a TPM without the kernel's resource manager) is held by the running daemon, so opening the key
// there would wait until the daemon stops; the CA needs only the public half, and the existing
// certificate, which it issued (pki.ServerRequest.Renews checks), has it.
func renewReusingKey(a app, cmd *cobra.Command, o pki.Options, r serverRenewal) error {
	old, err := readLeaf(r.out)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	if old == nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("pki server --reuse-key: %s does not exist: there is no certificate to renew; issue the first one without --reuse-key (stop the daemon first if it holds the TPM)", r.out)}
	}
	for _, ip := range r.ips {
		if net.ParseIP(ip) == nil {
			return &cli.ExitError{Code: 2, Err: fmt.Errorf("--ip %q is not an IP address", ip)}
		}
	}
	names := append(slices.Clone(r.hosts), r.ips...)
	if len(names) == 0 {
		names = certNames(old)
	}
	if r.renewBefore != "" {
		before, err := parseDays(r.renewBefore)
		if err != nil {
			return &cli.ExitError{Code: 2, Err: fmt.Errorf("--renew-before %q: %v", r.renewBefore, err)}
		}
		now := time.Now()
		if fl := clockFloor(); now.Before(fl) {
			now = fl
		}
		if left := old.NotAfter.Sub(now); left > before {
			if r.isJSON {
				return a.WriteJSON(a.Stdout(), ServerJSON{Action: "not_due", Serial: old.SerialNumber.Text(16), Hosts: certNames(old),
					NotAfter: old.NotAfter.UTC(), CertFile: r.out, Key: hw.Redact(r.keyURI)})
			}
			fmt.Fprintf(a.Stdout(), "%s is valid until %s (%d days): not due for renewal (--renew-before %s)\n",
				r.out, old.NotAfter.Format(time.DateOnly), int(left.Hours()/24), r.renewBefore)
			return nil
		}
	}
	b, err := pki.SignServer(cmd.Context(), o, pki.ServerRequest{Renews: old, Hosts: names, Days: r.days, Out: r.out})
	if errors.Is(err, pki.ErrNoHosts) {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("pki server --reuse-key: %s names no host or address: give --host or --ip", r.out)}
	}
	if err != nil {
		return err
	}
	if r.isJSON {
		return a.WriteJSON(a.Stdout(), ServerJSON{Action: "renewed", Serial: b.Serial, Hosts: names, NotAfter: b.Cert.NotAfter.UTC(),
			CertFile: r.out, Key: hw.Redact(r.keyURI)})
	}
	fmt.Fprintf(a.Stdout(), "server certificate renewed for the same key: serial %s for %s, valid until %s\n  cert: %s\n",
		b.Serial, strings.Join(names, ", "), b.Cert.NotAfter.Format(time.DateOnly), r.out)
	return nil
}

// ServerKeyWait bounds opening the listener's key in `pki server`.
var ServerKeyWait = 30 * time.Second

// openServerKey is hw.Open bounded by ServerKeyWait. A TPM that serves one connection at a time
// (swtpm) and is held by the running daemon accepts the connection and then never answers (the
// TPM transport has no deadline), so without the bound `pki server` would wait until the daemon
// stops. A key that opens after the bound is closed.
func openServerKey(ctx context.Context, uri string, opts ...hw.Option) (hw.Key, error) {
	type opened struct {
		k   hw.Key
		err error
	}
	ch, gave := make(chan opened), make(chan struct{})
	go func() {
		k, err := hw.Open(ctx, uri, opts...)
		select {
		case ch <- opened{k, err}:
		case <-gave:
			if k != nil {
				_ = k.Close()
			}
		}
	}()
	t := time.NewTimer(ServerKeyWait)
	defer t.Stop()
	select {
	case r := <-ch:
		if errors.Is(r.err, hw.ErrTimeout) { // hw's own TPM deadline came first
			return nil, fmt.Errorf("%w; to renew beside the running daemon, use --reuse-key (it does not open the key)", r.err)
		}
		return r.k, r.err
	case <-t.C:
		close(gave)
		return nil, fmt.Errorf("%s: no answer within %s: a TPM that serves one connection at a time (swtpm, or no /dev/tpmrm0) is held by the running daemon; renew the existing certificate with --reuse-key, or stop the daemon to issue one for another key", hw.Redact(uri), ServerKeyWait)
	}
}
