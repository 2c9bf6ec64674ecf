package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw/gateway/observe"
)

// printEnrolment prints the enrolment lines (e nil: no enrolment section, no line).
func printEnrolment(w io.Writer, e *observe.EnrolStatus) {
	if e == nil {
		return
	}
	fmt.Fprintf(w, "enrolment:   templates %s; %d claims seen (%d requests); issued %d, renewed %d, registered %d\n",
		strings.Join(e.Templates, ", "), e.ClaimsSeen, e.ClaimRequests, e.Issued, e.Renewed, e.Registered)
	fmt.Fprintf(w, "             %d renewals waiting for the old certificate's revocation; %d superseded, %d abandoned\n",
		e.AwaitingRevocation, e.Superseded, e.Abandoned)
	if len(e.Rejected) > 0 {
		var rs []string
		for _, code := range slices.Sorted(maps.Keys(e.Rejected)) {
			rs = append(rs, fmt.Sprintf("%s %d", code, e.Rejected[code]))
		}
		fmt.Fprintf(w, "             rejected: %s\n", strings.Join(rs, ", "))
	}
	switch n := e.Nearest; {
	case e.Error != "":
		fmt.Fprintf(w, "             sensor certificates: %s\n", e.Error)
	case n == nil:
		fmt.Fprintln(w, "             sensor certificates: none active")
	default:
		warn := ""
		switch {
		case n.Days < 0:
			warn = " (EXPIRED)"
		case n.Days < 30:
			warn = " (RENEW SOON)"
		}
		fmt.Fprintf(w, "             nearest sensor certificate expiry: %s (serial %s) %s, %.0f days%s; %d expire within 30 days\n",
			n.Thing, n.Serial, n.NotAfter.UTC().Format(time.DateOnly), n.Days, warn, e.ExpiringSoon)
	}
}
