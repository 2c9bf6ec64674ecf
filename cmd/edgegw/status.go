package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/queuecmd"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
)

func init() { extraCommands = append(extraCommands, newStatusCmd) }

// defaultAdminSocket is admin.socket's default (contract-config.yaml).
const defaultAdminSocket = "/run/edgegw/admin.sock"

// exitNotRunning is systemd's (LSB's) "program is not running" status code.
const exitNotRunning = 3

func newStatusCmd(a *app) *cobra.Command {
	var (
		cfgPath, socket, format string
		asJSON, all             bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Ask the running daemon: upstream, queues, devices, denials, certificates",
		Long: `Status asks the running daemon over its admin socket (admin.socket in the config,
default /run/edgegw/admin.sock; owner edgegw, mode 0660: run it as root or as a member
of group edgegw) and prints the upstream state, the backlog and rate per route, the
connected devices, the last denials and how long the certificates have left; with an
enrolment section, the sensors' enrolment: templates, claims seen, certificates issued and
renewed, renewals waiting for the old certificate's revocation, refusals by errorCode and the
nearest sensor-certificate expiry.

Exit status: 0 when the daemon answered, 3 when no daemon is running, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(format, asJSON) // output.go
			if err != nil {
				return err
			}
			path, err := adminSocketPath(socket, cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			var st observe.Status
			urlPath := "/status"
			if all {
				urlPath += "?all=1"
			}
			if err := observe.AdminGet(cmd.Context(), path, urlPath, &st); err != nil {
				return adminError(path, err)
			}
			if isJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(a.stdout, &st)
			return nil
		},
	}
	addConfigFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket (default: admin.socket from the config, else "+defaultAdminSocket+")")
	outputFlags(cmd, &format, &asJSON)
	cmd.Flags().BoolVar(&all, "all", false, "list every thing not connected (default: the longest silent ones)")
	return cmd
}

// adminSocketPath: --socket wins; else admin.socket of the config (an
// explicit -c must load; the default config may be absent or unreadable).
func adminSocketPath(flag, cfgPath string, explicit bool) (string, error) {
	if flag != "" {
		return flag, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		if explicit {
			return "", fmt.Errorf("reading %s for admin.socket: %w", cfgPath, err)
		}
		return defaultAdminSocket, nil
	}
	if cfg.Admin.Socket == "" {
		return "", fmt.Errorf("%s: admin.socket is \"\" (disabled): the daemon has no admin socket to ask", cfgPath)
	}
	return cfg.Admin.Socket, nil
}

// adminError turns an admin socket failure into the message and exit code.
func adminError(path string, err error) error {
	switch {
	case errors.Is(err, observe.ErrNotRunning):
		return &exitError{code: exitNotRunning, err: fmt.Errorf("edgegw is not running (no daemon at %s); start it with: systemctl start edgegw", path)}
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission):
		return &exitError{code: 1, err: fmt.Errorf("permission denied on %s: run as root or as a member of group edgegw", path)}
	}
	return &exitError{code: 1, err: err}
}

func printStatus(w io.Writer, s *observe.Status) {
	fmt.Fprintf(w, "edgegw %s (commit %s), site %s, up %s (pid %d)\n", s.Version, s.Commit, s.Site, durStr(time.Duration(s.Uptime*float64(time.Second))), s.PID)
	h := s.Health
	fmt.Fprintf(w, "health:      %s (listeners %d, queue %s, upstream %s)\n", h.Status, h.Listeners, h.Queue, h.Upstream)
	if h.Error != "" {
		fmt.Fprintf(w, "             %s\n", h.Error)
	}
	if !s.ClockSane {
		fmt.Fprintln(w, "clock:       system clock is before the build date: certificate checks use the build date (no RTC? check NTP)")
	}
	var ls []string
	for _, l := range s.Listeners {
		kind := "plaintext"
		if l.TLS {
			kind = "mTLS"
		}
		ls = append(ls, fmt.Sprintf("%s %s (%s)", l.Name, l.Address, kind))
	}
	fmt.Fprintf(w, "listeners:   %s\n", strings.Join(ls, ", "))
	if len(s.Bridges) > 0 {
		printBridges(w, s.Bridges) // status_bridges.go
	} else {
		printUpstream(w, s.Upstream)
		printQueue(w, s.Queue)
	}
	printShadows(w, s.Shadows)
	printDevices(w, s.Devices)
	printPresence(w, s.Presence, time.Now())
	printDenials(w, s.Denials)
	printCerts(w, s.Certs)
	printEnrolment(w, s.Enrolment) // status_enrol.go
	printIdentity(w, s.Identity)   // key_rotate.go
	if !s.Reload.OK {
		fmt.Fprintf(w, "reload:      FAILED at %s: %s\n", s.Reload.At.UTC().Format(time.RFC3339), s.Reload.Error)
	}
	if len(s.Reload.RestartRequired) > 0 {
		fmt.Fprintf(w, "restart:     required to apply %s (systemctl restart edgegw)\n", strings.Join(s.Reload.RestartRequired, ", "))
	}
	var af []string
	for k, v := range s.Counters {
		if v > 0 {
			af = append(af, fmt.Sprintf("%s %d", k, v))
		}
	}
	if len(af) > 0 {
		sort.Strings(af)
		fmt.Fprintf(w, "auth failures: %s\n", strings.Join(af, ", "))
	}
}

// printUpstream prints the upstream line (u nil: no bridge).
func printUpstream(w io.Writer, u *observe.UpstreamStatus) {
	if u != nil {
		state := "DOWN"
		if u.Connected {
			state = "connected since " + u.ConnectedSince.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "upstream:    %s %s, %d reconnects, %d sent, %d acked, %.1f msg/s\n", u.URL, state, u.Reconnects, u.Sent, u.Acked, u.Rate)
		if u.LastError != "" {
			fmt.Fprintf(w, "             last error: %s\n", u.LastError)
		}
	} else {
		fmt.Fprintln(w, "upstream:    none (no bridge configured: local broker only)")
	}
}

// printQueue prints the queue and its routes (q nil: no queue).
func printQueue(w io.Writer, q *observe.QueueStatus) {
	if q == nil {
		return
	}
	fmt.Fprintf(w, "queue:       %d messages, %s of %s; disk free %s\n", q.Depth, sizeStr(q.Bytes), sizeStr(q.MaxBytes), sizeStr(int64(q.FreeBytes)))
	queuecmd.PrintQueueOpen(w, q.Open)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROUTE\tBACKLOG\tBYTES\tOLDEST\tRATE\tDROPS\tDEAD")
	for _, r := range q.Routes {
		var drops uint64
		for _, n := range r.Drops {
			drops += n
		}
		oldest := "-"
		if r.OldestAge > 0 {
			oldest = durStr(time.Duration(r.OldestAge * float64(time.Second)))
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%.1f/s\t%d\t%d\n", r.Name, r.Depth, sizeStr(r.Bytes), oldest, r.Rate, drops, r.DeadLetters)
	}
	tw.Flush()
}

// maxConnectedRows caps the connected devices status prints: at a
// building's scale the list is thousands of rows (edgegw devices has them).
const maxConnectedRows = 20

// printDevices prints the connected devices.
func printDevices(w io.Writer, d observe.DevicesStatus) {
	fmt.Fprintf(w, "devices:     %d connected\n", d.Count)
	if len(d.Connected) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  THING\tCLIENT ID\tREMOTE\tLISTENER\tSINCE")
		for i, c := range d.Connected {
			if i == maxConnectedRows {
				fmt.Fprintf(tw, "  ... %d more (edgegw devices, or edgegw status --json)\n", len(d.Connected)-i)
				break
			}
			since := "-"
			if !c.Since.IsZero() {
				since = c.Since.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Thing, c.ClientID, c.Remote, c.Listener, since)
		}
		tw.Flush()
	}
}

// printDenials prints the ten newest denials.
func printDenials(w io.Writer, denials []observe.DenialStatus) {
	if len(denials) == 0 {
		fmt.Fprintln(w, "denials:     none recently")
	} else {
		fmt.Fprintf(w, "denials:     %d recent (newest first)\n", len(denials))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for i, d := range denials {
			if i == 10 {
				fmt.Fprintf(tw, "  ... %d more (edgegw status --json)\n", len(denials)-10)
				break
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), d.Device, d.Action, d.Resource, d.Statement)
		}
		tw.Flush()
	}
}

// printCerts prints the certificates' days to expiry.
func printCerts(w io.Writer, certs []observe.CertExpiry) {
	var out []string
	for _, c := range certs {
		if c.Error != "" {
			out = append(out, fmt.Sprintf("%s: %s", c.Cert, c.Error))
			continue
		}
		warn := ""
		if c.Days < 30 {
			warn = " (RENEW SOON)"
		}
		if c.Days < 0 {
			warn = " (EXPIRED)"
		}
		out = append(out, fmt.Sprintf("%s %.0f days%s", c.Cert, c.Days, warn))
	}
	if len(out) > 0 {
		fmt.Fprintf(w, "certificates: %s\n", strings.Join(out, ", "))
	}
}

func durStr(d time.Duration) string {
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func sizeStr(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(k*k*k))
}
