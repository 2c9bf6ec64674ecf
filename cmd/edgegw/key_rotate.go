package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/renew"
)

// keyRotateCmd is `edgegw key rotate`: renew a bridge's own certificate now,
// through the running daemon (admin socket), which does exactly what a due
// renewal does (tls.renew): new key next to the old one, signed by the
// configured source, one reconnect under it, old key destroyed. With no
// daemon running, the command does the same itself (key_rotate_offline.go).
func keyRotateCmd(a *app) *cobra.Command {
	var (
		cfgPath, socket, bridgeName string
		wait                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Renew the gateway's upstream certificate and key now (with the daemon running or stopped)",
		Long: `Rotate renews a bridge's own certificate now, with a new key, as the daemon does
by itself before expiry when the bridge has tls.renew: the new key is made where the
current one lives (next TPM handle, PKCS#11 label or file; nothing is overwritten), the
configured source signs it (aws: create-from-csr and the provisioning template over the
bridge's connection; est: simplereenroll), the bridge reconnects once under it, and the
old key is destroyed after that connection. On failure the old certificate stays in use.

It asks the running daemon over its admin socket and waits for the outcome. With the
daemon stopped (a maintenance window) it renews from here, the same way: it connects
upstream as the gateway for the renewal only (nothing is sent from the queue, and what
the upstream holds for the gateway is left there for the daemon), and the daemon uses
the new identity at its next start. Run it as the daemon's user (sudo -u edgegw ...),
so the new key and certificate are the daemon's.

Exit status: 0 renewed, 1 failed (the message says why).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sock, err := adminSocketPath(socket, cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			err = a.keyRotate(cmd.Context(), sock, bridgeName, wait)
			if ee := (*exitError)(nil); errors.As(err, &ee) && ee.code == exitNotRunning {
				return a.keyRotateOffline(cmd.Context(), cfgPath, bridgeName, wait) // key_rotate_offline.go
			}
			return err
		},
	}
	addConfigFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket (default: admin.socket from the config, else "+defaultAdminSocket+")")
	cmd.Flags().StringVar(&bridgeName, "bridge", "", "the bridge whose certificate to renew (default: the first with tls.renew)")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the outcome")
	return cmd
}

func (a *app) keyRotate(ctx context.Context, sock, bridgeName string, wait time.Duration) error {
	find := func() (renew.State, bool, error) {
		var states []renew.State
		if err := observe.AdminGet(ctx, sock, "/identity", &states); err != nil {
			return renew.State{}, false, err
		}
		for i, s := range states {
			if s.Bridge == bridgeName || bridgeName == "" && i == 0 {
				return s, true, nil
			}
		}
		return renew.State{}, false, nil
	}
	before, ok, err := find()
	if err != nil {
		return adminError(sock, err)
	}
	if !ok {
		return &exitError{code: 1, err: fmt.Errorf("no bridge %q renews its certificate: set tls.renew under it (source aws or est) and reload or restart", bridgeName)}
	}
	var started map[string]string
	if err := observe.AdminPost(ctx, sock, "/identity/renew?bridge="+url.QueryEscape(before.Bridge), &started); err != nil {
		return adminError(sock, err)
	}
	fmt.Fprintf(a.stderr, "bridge %s: renewing certificate serial %s (not after %s)...\n", before.Bridge, before.Serial, before.NotAfter.UTC().Format(time.RFC3339))
	deadline := time.Now().Add(wait)
	for {
		s, _, err := find()
		if err != nil {
			return adminError(sock, err)
		}
		switch {
		case s.Renewals > before.Renewals:
			fmt.Fprintf(a.stdout, "bridge %s: renewed: serial %s, not after %s (was %s)\n", s.Bridge, s.Serial, s.NotAfter.UTC().Format(time.RFC3339), before.Serial)
			return nil
		case s.Failures > before.Failures:
			return &exitError{code: 1, err: fmt.Errorf("bridge %s: renewal failed, serial %s stays in use: %s", s.Bridge, s.Serial, s.LastError)}
		case time.Now().After(deadline):
			return &exitError{code: 1, err: fmt.Errorf("bridge %s: no outcome within %v; see the daemon's log and `edgegw status`", s.Bridge, wait)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// printIdentity is `edgegw status`'s line per bridge whose certificate
// renews itself (tls.renew).
func printIdentity(w io.Writer, states []renew.State) {
	for _, s := range states {
		last := "never"
		if !s.LastRenewal.IsZero() {
			last = s.LastRenewal.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "identity:    bridge %s serial %s, %.1f days left, renews %s, last renewal %s",
			s.Bridge, s.Serial, s.DaysLeft, s.Due.UTC().Format(time.RFC3339), last)
		if s.LastError != "" {
			fmt.Fprintf(w, ", LAST ATTEMPT FAILED (%d failures): %s", s.Failures, s.LastError)
		}
		fmt.Fprintln(w)
	}
}
