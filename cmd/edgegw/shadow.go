package main

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

	"github.com/edgegw/edgegw/gateway/observe"
)

func init() { extraCommands = append(extraCommands, newShadowCmd) }

func newShadowCmd(a *app) *cobra.Command {
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
			isJSON, err := jsonOutput(format, asJSON) // output.go
			if err != nil {
				return err
			}
			op, thing := args[0], args[1]
			method, path, body, err := shadowRequest(op, thing, args, file)
			if err != nil {
				return err
			}
			if op != "update" && len(args) == 3 {
				return &exitError{code: 2, err: fmt.Errorf("shadow %s takes no document", op)}
			}
			if op == "list" && name != "" {
				return &exitError{code: 2, err: fmt.Errorf("shadow list lists the named shadows of a thing: --name does not apply")}
			}
			spath, err := adminSocketPath(socket, cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			code, doc, err := observe.AdminShadow(cmd.Context(), spath, method, path, name, body)
			if err != nil {
				return adminError(spath, err)
			}
			if code != http.StatusOK {
				return shadowRefused(op, thing, code, doc)
			}
			if isJSON {
				return writeIndented(a.stdout, doc)
			}
			return printShadowText(a.stdout, op, thing, name, doc)
		},
	}
	addConfigFlag(cmd, &cfgPath)
	fl := cmd.Flags()
	fl.StringVar(&socket, "socket", "", "admin socket (default: admin.socket from the config, else "+defaultAdminSocket+")")
	fl.StringVar(&name, "name", "", "named shadow (default: the classic shadow)")
	fl.StringVarP(&file, "file", "f", "", `update: read the document from this file ("-": standard input)`)
	outputFlags(cmd, &format, &asJSON)
	return cmd
}

// shadowJSONNote is the schema section of shadow's help (output_schema.go):
// the documents are the shadow service's own, as a device gets them.
const shadowJSONNote = `the shadow service's answer, as-is (indented), as a
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
			return "", "", nil, &exitError{code: 2, err: fmt.Errorf("shadow update %s: give the update document as an argument or with --file (not both)", thing)}
		}
		if err != nil {
			return "", "", nil, &exitError{code: 1, err: fmt.Errorf("reading the update document: %w", err)}
		}
		return http.MethodPost, "/shadow/" + et, body, nil
	}
	return "", "", nil, &exitError{code: 2, err: fmt.Errorf("shadow %q: want get, update, delete or list", op)}
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
	return &exitError{code: 1, err: fmt.Errorf("shadow %s %s: refused: %d %s", op, thing, code, msg)}
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
		return &exitError{code: 1, err: fmt.Errorf("shadow %s %s: the daemon's answer is not a shadow document (%v); -o json prints it as-is", op, thing, err)}
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

// printShadows prints the shadows line of edgegw status (sh nil: none served).
func printShadows(w io.Writer, sh *observe.ShadowStatus) {
	if sh == nil {
		return
	}
	fmt.Fprintf(w, "shadows:     %d stored, %d requests, %d denied\n", sh.Stored, sh.Requests, sh.Denied)
	if sh.Synced > 0 {
		state := "offline"
		if sh.Online {
			state = "online"
		}
		fmt.Fprintf(w, "shadow sync: %d shadows %s, %d changes waiting for the cloud (lag %s), %d conflicts, %d failures, %d dropped\n",
			sh.Synced, state, sh.Outbox, durStr(time.Duration(sh.LagSeconds*float64(time.Second))), sh.Conflicts, sh.Failures, sh.Dropped)
	}
}
