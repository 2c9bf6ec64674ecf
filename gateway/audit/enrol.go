package audit

// Audit events of enrolment over MQTT (gateway/enrol, the enrolment section). Device is the
// thing (a claim's name for a refused claim request), Serial the certificate concerned,
// Resource "certificate/<serial of the calling certificate>" for requests.
const (
	EventEnrolIssued     = "enrol_issued"     // a certificate signed from a claim's CSR (pending until RegisterThing)
	EventEnrolRenewed    = "enrol_renewed"    // a certificate signed from a device's CSR for itself (renewal)
	EventEnrolRegistered = "enrol_registered" // RegisterThing activated a thing (or confirmed a renewal)
	EventEnrolRefused    = "enrol_refused"    // a request rejected; Reason is "errorCode: errorMessage"
	EventEnrolSuperseded = "enrol_superseded" // the old certificate of a renewal revoked (superseded)
	EventEnrolAbandoned  = "enrol_abandoned"  // a pending certificate revoked: its token expired unused
)

// EnrolEvents are the enrolment events, in the order metrics list them.
var EnrolEvents = []string{EventEnrolIssued, EventEnrolRenewed, EventEnrolRegistered, EventEnrolRefused, EventEnrolSuperseded, EventEnrolAbandoned}
