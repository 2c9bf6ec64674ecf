package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/observe"
	"github.com/edgegw/edgegw/gateway/presence"
)

func init() { extraCommands = append(extraCommands, newDevicesCmd) }

func newDevicesCmd(a *app) *cobra.Command {
	var (
		cfgPath, socket, typ, output string
		offline, asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the registered things: connected or not, since when, last seen, certificate expiry",
		Long: `Devices lists every thing of the registry with its presence: online, offline (seen
before, not connected now) or never_seen, since when, when it was last seen and from
which address, and when its certificate expires. Connected things the registry does not
list (admitted by a group's name pattern) show as unlisted.

It asks the running daemon over its admin socket. When no daemon runs, it reads what
the daemon saved in state_dir/presence.json (written every few seconds and at stop)
and the registry named by the configuration: nothing is connected then.

Exit status: 0 listed, 1 error.`,
		Example: `  edgegw devices --offline
  edgegw devices --type temperature -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(output, asJSON)
			if err != nil {
				return err
			}
			state := ""
			if offline {
				state = "not_connected"
			}
			devs, fromFile, err := a.devices(cmd, cfgPath, socket, state, typ)
			if err != nil {
				return err
			}
			if isJSON {
				return writeJSONOut(a.stdout, observe.DevicesList{Count: len(devs), Devices: devs})
			}
			if fromFile != "" {
				fmt.Fprintf(a.stderr, "edgegw is not running: presence as saved in %s (nothing is connected)\n", fromFile)
			}
			printDeviceTable(a.stdout, devs, time.Now())
			return nil
		},
	}
	addConfigFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket (default: admin.socket from the config, else "+defaultAdminSocket+")")
	cmd.Flags().BoolVar(&offline, "offline", false, "only things not connected (offline or never seen)")
	cmd.Flags().StringVar(&typ, "type", "", "only things of this thing type (the registry's type)")
	outputFlags(cmd, &output, &asJSON)
	return cmd
}

// devices asks the daemon, or reads the saved presence when none runs
// (fromFile names the file then).
func (a *app) devices(cmd *cobra.Command, cfgPath, socket, state, typ string) (devs []presence.Device, fromFile string, err error) {
	path, err := adminSocketPath(socket, cfgPath, cmd.Flags().Changed("config"))
	if err != nil {
		return nil, "", &exitError{code: 1, err: err}
	}
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if typ != "" {
		q.Set("type", typ)
	}
	var list observe.DevicesList
	err = observe.AdminGet(cmd.Context(), path, "/devices?"+q.Encode(), &list)
	if err == nil {
		return list.Devices, "", nil
	}
	if !errors.Is(err, observe.ErrNotRunning) {
		return nil, "", adminError(path, err)
	}
	cfg, cerr := config.Load(cfgPath)
	if cerr != nil {
		return nil, "", &exitError{code: 1, err: fmt.Errorf("edgegw is not running, and the saved presence needs the configuration: %w", cerr)}
	}
	eng, _, lerr := broker.LoadPolicy(cfg.Devices, cfg.Policies) // things only: a broken policy file does not matter here
	if lerr != nil {
		return nil, "", &exitError{code: 1, err: fmt.Errorf("edgegw is not running; reading the registry: %w", lerr)}
	}
	var reg []presence.Registered
	for th := range eng.Things() {
		if th.Type == config.OperatorType {
			continue // an engineer's laptop, not a device (as the daemon counts)
		}
		reg = append(reg, presence.Registered{Name: th.Name, Type: th.Type})
	}
	file := filepath.Join(cfg.StateDir, presence.FileName)
	all, serr := presence.Snapshot(file, reg)
	if serr != nil {
		return nil, "", &exitError{code: 1, err: serr}
	}
	return observe.FilterDevices(all, state, typ), file, nil
}

// writeJSONOut is the JSON output of every command: indented, one document.
func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printDeviceTable(w io.Writer, devs []presence.Device, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "THING\tTYPE\tSTATE\tSINCE\tLAST SEEN\tLAST REMOTE\tCERT EXPIRES")
	for _, d := range devs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Thing, dash(d.Type), d.State, ago(d.Since, now), ago(d.LastSeen, now), dash(d.LastRemote), expiry(d.CertNotAfter, now))
	}
	tw.Flush()
	if len(devs) == 0 {
		fmt.Fprintln(w, "(no things)")
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago is "2026-12-01T08:00:00Z (3h ago)", or "-" for a zero time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), durStr(d))
}

func expiry(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	days := t.Sub(now).Hours() / 24
	if days < 0 {
		return t.UTC().Format("2006-01-02") + " (EXPIRED)"
	}
	return fmt.Sprintf("%s (%.0f days)", t.UTC().Format("2006-01-02"), days)
}

// printPresence is the presence part of `edgegw status`: counts by state,
// then the things not connected (capped by the daemon unless --all).
func printPresence(w io.Writer, p *observe.PresenceStatus, now time.Time) {
	if p == nil {
		return
	}
	fmt.Fprintf(w, "presence:    %d registered: %d online, %d offline, %d never seen; %d unlisted connected\n",
		p.Registered, p.Counts["online"], p.Counts["offline"], p.Counts["never_seen"], p.Counts["unlisted"])
	if len(p.NotConnected) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NOT CONNECTED\tSTATE\tLAST SEEN\tLAST REMOTE")
	for _, d := range p.NotConnected {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Thing, d.State, ago(d.LastSeen, now), dash(d.LastRemote))
	}
	tw.Flush()
	if p.Truncated > 0 {
		fmt.Fprintf(w, "  ... %d more (edgegw status --all, or edgegw devices --offline)\n", p.Truncated)
	}
}
