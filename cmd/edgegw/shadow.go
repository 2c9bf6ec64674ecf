package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/gateway/observe"
)

func init() { extraCommands = append(extraCommands, newShadowCmd) }

func newShadowCmd(a *app) *cobra.Command {
	var cfgPath, socket, name, file string
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

Exit status: 0 accepted, 1 refused (the shadow service's code and message are printed)
or failed, 3 when no daemon is running.`,
		Example: `  edgegw shadow get lamp-1
  edgegw shadow update lamp-1 '{"state":{"desired":{"power":"on"}}}'
  edgegw shadow get lamp-1 --name config
  edgegw shadow list lamp-1`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, thing := args[0], args[1]
			et := url.PathEscape(thing)
			var method, path string
			var body []byte
			switch op {
			case "get":
				method, path = http.MethodGet, "/shadow/"+et
			case "delete":
				method, path = http.MethodDelete, "/shadow/"+et
			case "list":
				method, path = http.MethodGet, "/shadows/"+et
			case "update":
				method, path = http.MethodPost, "/shadow/"+et
				var err error
				switch {
				case len(args) == 3 && file == "":
					body = []byte(args[2])
				case len(args) == 2 && file == "-":
					body, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				case len(args) == 2 && file != "":
					body, err = os.ReadFile(file)
				default:
					return &exitError{code: 2, err: fmt.Errorf("shadow update %s: give the update document as an argument or with --file (not both)", thing)}
				}
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("reading the update document: %w", err)}
				}
			default:
				return &exitError{code: 2, err: fmt.Errorf("shadow %q: want get, update, delete or list", op)}
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
			var out bytes.Buffer
			if json.Indent(&out, doc, "", "  ") != nil {
				out.Reset()
				out.Write(doc)
			}
			out.WriteByte('\n')
			if code != http.StatusOK {
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
			_, err = a.stdout.Write(out.Bytes())
			return err
		},
	}
	addConfigFlag(cmd, &cfgPath)
	fl := cmd.Flags()
	fl.StringVar(&socket, "socket", "", "admin socket (default: admin.socket from the config, else "+defaultAdminSocket+")")
	fl.StringVar(&name, "name", "", "named shadow (default: the classic shadow)")
	fl.StringVarP(&file, "file", "f", "", `update: read the document from this file ("-": standard input)`)
	return cmd
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
