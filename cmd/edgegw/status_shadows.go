package main

import (
	"fmt"
	"io"
	"time"

	"github.com/edgegw/edgegw/gateway/observe"
)

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
