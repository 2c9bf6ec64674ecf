package main

import (
	"fmt"
	"io"

	"github.com/edgegw/edgegw/gateway/observe"
)

// printQueueOpen prints what the queue's open repaired or salvaged after a
// crash (o nil: nothing, no line).
func printQueueOpen(w io.Writer, o *observe.QueueOpenStatus) {
	if o == nil {
		return
	}
	fmt.Fprintf(w, "             at open after a crash: %s\n", o)
}
