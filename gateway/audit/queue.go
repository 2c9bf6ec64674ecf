package audit

// Audit events of the durable queue's open (store.OpenReport).
const (
	// EventQueueRepair is one file of the queue repaired at open after a
	// crash (Resource "queue/<file>", Reason the kind and what was done).
	EventQueueRepair = "queue_repair"
	// EventQueueSalvage is a queue that could not be read, moved aside,
	// with its readable messages copied into a new one (Count the
	// messages salvaged, Reason all the counts).
	EventQueueSalvage = "queue_salvage"
)
