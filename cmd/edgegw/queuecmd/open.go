package queuecmd

import (
	"fmt"
	"io"

	"github.com/edgegw/edgegw/gateway/observe"
)

// PrintQueueOpen prints, for `edgegw status`, what the queue's open repaired
// or salvaged after a crash (o nil: nothing, no line).
func PrintQueueOpen(w io.Writer, o *observe.QueueOpenStatus) {
	if o == nil {
		return
	}
	fmt.Fprintf(w, "             at open after a crash: %s\n", o)
}
