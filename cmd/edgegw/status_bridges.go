package main

import (
	"fmt"
	"io"

	"github.com/edgegw/edgegw/gateway/observe"
)

// printBridges prints each bridge's upstream line and queue, headed by its
// name and protocol.
func printBridges(w io.Writer, bs []observe.BridgeStatus) {
	for _, b := range bs {
		fmt.Fprintf(w, "bridge %s (MQTT %s):\n", b.Name, b.Protocol)
		if b.Upstream != nil {
			printUpstream(w, b.Upstream)
		}
		printQueue(w, b.Queue)
	}
}
