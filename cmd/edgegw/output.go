package main

// # Machine-readable output
//
// Every command that prints data takes -o/--output table|json (table is the
// default; the older --json flags remain as hidden aliases). The
// exceptions are `edgegw import mosquitto` and `edgegw key csr`, whose -o
// names the output (a directory, the CSR file). JSON output follows one convention:
//
//   - one JSON document, indented, on stdout; errors stay on stderr;
//   - keys are snake_case;
//   - a quantity carries its unit in its name: _seconds, _bytes, _days,
//     _msgs_per_second; counts are plain numbers (depth, count, acked);
//   - times are RFC 3339 in UTC ("2026-12-01T08:00:00Z"); a time that is not
//     known is left out, never "0001-01-01T00:00:00Z";
//   - lists are [] when empty, never null; maps are {} when empty;
//   - payloads are base64 strings.
//
// The schema of each command is the Go type it prints (field tags are the
// keys):
//
//	edgegw status -o json              observe.Status (with observe.PresenceStatus)
//	edgegw devices -o json             observe.DevicesList (presence.Device)
//	edgegw queue stats -o json         queuecmd.StatsJSON
//	edgegw queue peek -o json          observe.QueuePeek (observe.QueueMessage)
//	edgegw queue purge -o json         observe.QueueOpResult
//	edgegw queue replay -o json        observe.QueueOpResult
//	edgegw queue export                JSON lines, one message a line (store's export format)
//	edgegw pki list -o json            [pki.Entry]
//	edgegw pki init|import-ca -o json  pkicmd.InitJSON
//	edgegw pki issue|sign|claim -o json pkicmd.IssueJSON
//	edgegw pki revoke -o json          pkicmd.RevokeJSON: "nothing_to_do" when already revoked, exit 0
//	edgegw pki crl -o json             pkicmd.CRLJSON
//	edgegw pki server -o json          pkicmd.ServerJSON
//	edgegw passwd -o json              passwdJSON (passwd.go)
//	edgegw shadow ... -o json          the shadow service's document as-is (AWS keys, shadowcmd.JSONNote)
//	edgegw version -o json             versionJSON below
//	edgegw check -o json               checkJSON (check.go): printed on refusal too, exit 1
//	edgegw policy test -o json         evalcmd.PolicyTestJSON: printed on deny too, exit 1
//	edgegw key info|create -o json     keyInfoJSON (key.go)
//	edgegw rule test -o json           evalcmd.RuleTestJSON: printed when it does not fire too, exit 1
//
// jsonSchemas (output_schema.go) maps each command to that type and
// generates the "JSON output (-o json)" section of its help from it, so the
// help and man page cannot drift from what is printed. TestJSONConvention
// runs each command and checks the convention; TestJSONSchemaInHelp checks
// that every key of each type is in the command's help.

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
)

// outputFlags registers -o/--output (table|json) and the hidden --json alias.
func outputFlags(cmd *cobra.Command, format *string, legacy *bool) {
	cmd.Flags().StringVarP(format, "output", "o", "table", "output format: table or json (see 'edgegw help' for the JSON convention)")
	cmd.Flags().BoolVar(legacy, "json", false, "same as -o json")
	_ = cmd.Flags().MarkHidden("json")
	_ = cmd.RegisterFlagCompletionFunc("output", func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, f := range []string{"table", "json"} {
			if strings.HasPrefix(f, prefix) {
				out = append(out, f)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// jsonOutput reports whether JSON was asked for; any format other than
// table and json is a usage error.
func jsonOutput(format string, legacy bool) (bool, error) {
	switch {
	case legacy || format == "json":
		return true, nil
	case format == "table":
		return false, nil
	}
	return false, &exitError{code: 2, err: fmt.Errorf("-o %q: want table or json", format)}
}

// versionJSON is `edgegw version -o json`.
type versionJSON struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

func versionView() versionJSON {
	return versionJSON{Version: version, Commit: commit, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}
