// Package shadowcmd is `edgegw shadow`: get, update, delete and list the
// device shadows the running daemon serves, through its admin socket
// (observe.AdminShadow), as a device would over MQTT but without a policy
// check. The documents are the shadow service's own (AWS IoT Device Shadow
// keys), printed as-is with -o json or readably as KEY.PATH = VALUE lines.
//
// It is a room of the edgegw command line: package main adds it with New and
// provides the CLI (cmd/edgegw/cli, plus where the admin socket is); an
// error that carries an exit status is a *cli.ExitError. It is a client of
// observe's admin socket only: it must not import mochi-mqtt, badger,
// prometheus or paho, nor the daemon's packages; only cmd/edgegw imports it
// (cmd/edgegw/deps_test.go). Its end-to-end tests, which start the daemon
// (shadow_e2e_test.go, shadow_sdk_e2e_test.go, shadow_sync_e2e_test.go),
// stay beside the binary in cmd/edgegw.
package shadowcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/observe"
)

// CLI is what the shadow command needs from the command line around it: the
// CLI every room shares and where the daemon's admin socket is.
type CLI interface {
	cli.CLI
	// AdminSocket is the admin socket to ask: flag when given, else
	// admin.socket of the config at cfgPath, else DefaultAdminSocket when
	// that config does not load and was not named explicitly (-c given).
	AdminSocket(flag, cfgPath string, explicit bool) (string, error)
	// DefaultAdminSocket is admin.socket's default, for --socket's help.
	DefaultAdminSocket() string
}

// New is `edgegw shadow`. c is the command line around it; defaultConfig is
// -c's default.
func New(c CLI, defaultConfig string) *cobra.Command {
	a := c // the command line, as the command uses it
	var cfgPath, socket, name, file, format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "shadow get|update|delete|list THING [DOCUMENT]",
		Short: "Read and change the device shadows the running daemon serves",
		Long: `Shadow asks the running daemon over its admin socket (as edgegw status does) for a
device shadow, as a device would over MQTT, without a policy check:

  get THING       print the shadow document (state, metadata, version)
  update THING D  apply the update request document D (or --file F, "-" for stdin),
                  e.g. '{"state":{"desired":{"power":"on"}}}'; the device gets the delta
  delete THING    delete the shadow (its version is kept for the next update)
  list THING      print the names of the thing's named shadows

--name selects a named shadow; without it the classic shadow is meant. A change to a
shadow synced with the cloud goes to the cloud like a device's.

The text form lists the state as one line per value, KEY.PATH = VALUE (the value in
JSON), under desired, reported and delta, with the version and when it changed.

Exit status: 0 accepted, 1 refused (the shadow service's code and message are printed)
or failed, 3 when no daemon is running.`,
		Example: `  edgegw shadow get lamp-1
  edgegw shadow update lamp-1 '{"state":{"desired":{"power":"on"}}}'
  edgegw shadow get lamp-1 --name config
  edgegw shadow list lamp-1`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			isJSON, err := a.JSONOutput(format, asJSON)
			if err != nil {
				return err
			}
			op, thing := args[0], args[1]
			method, path, body, err := shadowRequest(op, thing, args, file)
			if err != nil {
				return err
			}
			if op != "update" && len(args) == 3 {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("shadow %s takes no document", op)}
			}
			if op == "list" && name != "" {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("shadow list lists the named shadows of a thing: --name does not apply")}
			}
			spath, err := a.AdminSocket(socket, cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return &cli.ExitError{Code: 1, Err: err}
			}
			code, doc, err := observe.AdminShadow(cmd.Context(), spath, method, path, name, body)
			if err != nil {
				return a.AdminError(spath, err)
			}
			if code != http.StatusOK {
				return shadowRefused(op, thing, code, doc)
			}
			if isJSON {
				return writeIndented(a.Stdout(), doc)
			}
			return printShadowText(a.Stdout(), op, thing, name, doc)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfgPath, "config", "c", defaultConfig, "config file")
	fl.StringVar(&socket, "socket", "", "admin socket (default: admin.socket from the config, else "+a.DefaultAdminSocket()+")")
	fl.StringVar(&name, "name", "", "named shadow (default: the classic shadow)")
	fl.StringVarP(&file, "file", "f", "", `update: read the document from this file ("-": standard input)`)
	a.OutputFlags(cmd, &format, &asJSON)
	return cmd
}

// JSONNote is the schema section of shadow's help (cmd/edgegw's
// output_schema.go): the documents are the shadow service's own, as a device
// gets them.
const JSONNote = `the shadow service's answer, as-is (indented), as a
device gets it on the accepted topic (AWS IoT Device Shadow documents):
  get, update  {"state": {"desired": {...}, "reported": {...}, "delta": {...}},
                "metadata": {...}, "version": INTEGER, "timestamp": UNIX SECONDS}
  delete       {"version": INTEGER, "timestamp": UNIX SECONDS}
  list         {"thing": STRING, "named": [STRING]}
Its keys are AWS's (clientToken stays camelCase), not edgegw's convention. A refusal
prints no document: the code and message go to stderr, exit 1.`

// shadowRequest is the admin socket request for shadow op on thing; an update's
// document is the third argument or the --file (file) contents.
func shadowRequest(op, thing string, args []string, file string) (method, path string, body []byte, err error) {
	et := url.PathEscape(thing)
	switch op {
	case "get":
		return http.MethodGet, "/shadow/" + et, nil, nil
	case "delete":
		return http.MethodDelete, "/shadow/" + et, nil, nil
	case "list":
		return http.MethodGet, "/shadows/" + et, nil, nil
	case "update":
		switch {
		case len(args) == 3 && file == "":
			body = []byte(args[2])
		case len(args) == 2 && file == "-":
			body, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		case len(args) == 2 && file != "":
			body, err = os.ReadFile(file)
		default:
			return "", "", nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("shadow update %s: give the update document as an argument or with --file (not both)", thing)}
		}
		if err != nil {
			return "", "", nil, &cli.ExitError{Code: 1, Err: fmt.Errorf("reading the update document: %w", err)}
		}
		return http.MethodPost, "/shadow/" + et, body, nil
	}
	return "", "", nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("shadow %q: want get, update, delete or list", op)}
}

// shadowRefused is the error for a request the shadow service refused with
// status code: its code and message (doc is its JSON error document).
func shadowRefused(op, thing string, code int, doc []byte) error {
	var e struct {
		Code    int
		Message string
		Error   string
	}
	_ = json.Unmarshal(doc, &e)
	msg := e.Message
	if msg == "" {
		msg = e.Error
	}
	return &cli.ExitError{Code: 1, Err: fmt.Errorf("shadow %s %s: refused: %d %s", op, thing, code, msg)}
}

// writeIndented writes the JSON document doc indented (as it is when it is
// not valid JSON), with a final newline.
func writeIndented(w io.Writer, doc []byte) error {
	var out bytes.Buffer
	if json.Indent(&out, doc, "", "  ") != nil {
		out.Reset()
		out.Write(doc)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// printShadowText prints the shadow service's answer doc for op readably:
// the named shadows one a line (list), else the version, when it changed and
// each state section's values as KEY.PATH = JSON VALUE.
func printShadowText(w io.Writer, op, thing, name string, doc []byte) error {
	var d struct {
		Thing     string                     `json:"thing"`
		Named     []string                   `json:"named"`
		State     map[string]json.RawMessage `json:"state"`
		Version   *int64                     `json:"version"`
		Timestamp int64                      `json:"timestamp"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("shadow %s %s: the daemon's answer is not a shadow document (%v); -o json prints it as-is", op, thing, err)}
	}
	if op == "list" {
		if len(d.Named) == 0 {
			fmt.Fprintf(w, "%s has no named shadows\n", thing)
		}
		for _, n := range d.Named {
			fmt.Fprintln(w, n)
		}
		return nil
	}
	which := "classic shadow"
	if name != "" {
		which = fmt.Sprintf("named shadow %q", name)
	}
	head := map[string]string{"get": "%s of %s", "update": "%s of %s updated", "delete": "%s of %s deleted"}[op]
	fmt.Fprintf(w, head, which, thing)
	if d.Version != nil {
		fmt.Fprintf(w, ", version %d", *d.Version)
	}
	if d.Timestamp > 0 {
		fmt.Fprintf(w, ", at %s", time.Unix(d.Timestamp, 0).UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if op == "delete" {
		fmt.Fprintln(w, "(the version is kept: the next update continues from it)")
	}
	for _, section := range []string{"desired", "reported", "delta"} {
		raw, ok := d.State[section]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%s:\n", section)
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("shadow %s %s: state.%s: %w", op, thing, section, err)
		}
		lines := flattenJSON("", v, nil)
		if len(lines) == 0 {
			fmt.Fprintln(w, "  (empty)")
		}
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	return nil
}

// flattenJSON lists v's leaves as "a.b = VALUE" (VALUE compact JSON), keys
// in sorted order; a list is a leaf.
func flattenJSON(prefix string, v any, out []string) []string {
	m, ok := v.(map[string]any)
	if !ok || (len(m) == 0 && prefix != "") {
		b, _ := json.Marshal(v)
		return append(out, prefix+" = "+string(b))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = flattenJSON(p, m[k], out)
	}
	return out
}
