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
//	edgegw queue stats -o json         queueStatsJSON below
//	edgegw queue peek -o json          observe.QueuePeek (observe.QueueMessage)
//	edgegw queue purge -o json         observe.QueueOpResult
//	edgegw queue replay -o json        observe.QueueOpResult
//	edgegw queue export                JSON lines, one message a line (store's export format)
//	edgegw pki list -o json            [pki.Entry]
//	edgegw pki init|import-ca -o json  pkiInitJSON (pki_json.go)
//	edgegw pki issue|sign|claim -o json pkiIssueJSON (pki_json.go)
//	edgegw pki revoke -o json          pkiRevokeJSON (pki_json.go): "nothing_to_do" when already revoked, exit 0
//	edgegw pki crl -o json             pkiCRLJSON (pki_json.go)
//	edgegw pki server -o json          pkiServerJSON (pki_json.go)
//	edgegw passwd -o json              passwdJSON (passwd.go)
//	edgegw shadow ... -o json          the shadow service's document as-is (AWS keys, shadow.go)
//	edgegw version -o json             versionJSON below
//	edgegw check -o json               checkJSON (check.go): printed on refusal too, exit 1
//	edgegw policy test -o json         policyTestJSON (policy.go): printed on deny too, exit 1
//	edgegw key info|create -o json     keyInfoJSON (key.go)
//	edgegw rule test -o json           ruleTestJSON (rule.go): printed when it does not fire too, exit 1
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

	"github.com/edgegw/edgegw/store"
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

// queueStatsJSON is `edgegw queue stats -o json`.
type queueStatsJSON struct {
	DepthMessages  int64            `json:"depth"`
	Bytes          int64            `json:"bytes"`
	MaxBytes       int64            `json:"max_bytes"`
	FreeBytes      uint64           `json:"disk_free_bytes"`
	MinFreeBytes   uint64           `json:"disk_min_free_bytes"`
	RejectedFull   uint64           `json:"rejected_full"`
	DeadLetters    int64            `json:"dead_letters"`
	NextSeq        uint64           `json:"next_seq"`
	CorruptMovedTo string           `json:"corrupt_moved_to,omitempty"`
	Routes         []routeStatsJSON `json:"routes"`
}

type routeStatsJSON struct {
	Name             string            `json:"name"`
	Configured       bool              `json:"configured"`
	Priority         int               `json:"priority"`
	Depth            int64             `json:"depth"`
	Bytes            int64             `json:"bytes"`
	InFlight         int               `json:"inflight"`
	OldestSeq        uint64            `json:"oldest_seq"`
	OldestAgeSeconds float64           `json:"oldest_age_seconds"`
	Enqueued         uint64            `json:"enqueued"`
	Acked            uint64            `json:"acked"`
	Rejected         uint64            `json:"rejected"`
	Drops            map[string]uint64 `json:"drops"`
	DeadLettered     uint64            `json:"dead_lettered"`
	DeadLetters      int64             `json:"dead_letters"`
	DeadBytes        int64             `json:"dead_bytes"`
}

func queueStatsView(st store.Stats) queueStatsJSON {
	v := queueStatsJSON{DepthMessages: st.Depth, Bytes: st.Bytes, MaxBytes: st.MaxBytes, FreeBytes: st.FreeBytes,
		MinFreeBytes: st.MinFreeBytes, RejectedFull: st.RejectedFull, DeadLetters: st.DeadLetters, NextSeq: st.NextSeq,
		CorruptMovedTo: st.CorruptMovedTo, Routes: []routeStatsJSON{}}
	for _, r := range st.Routes {
		drops := map[string]uint64{}
		for k, n := range r.Drops {
			drops[k] = n
		}
		v.Routes = append(v.Routes, routeStatsJSON{Name: r.Name, Configured: r.Configured, Priority: r.Priority,
			Depth: r.Depth, Bytes: r.Bytes, InFlight: r.InFlight, OldestSeq: r.OldestSeq, OldestAgeSeconds: r.OldestAge.Seconds(),
			Enqueued: r.Enqueued, Acked: r.Acked, Rejected: r.Rejected, Drops: drops, DeadLettered: r.DeadLettered,
			DeadLetters: r.DeadLetters, DeadBytes: r.DeadBytes})
	}
	return v
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
