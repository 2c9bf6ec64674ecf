package audit

// EventAdmissionRefused summarises the connections a listener refused or
// closed before their handshake because their source address had taken its
// share of the pending-handshake budget (Count: how many, Remote: the
// address). The broker writes at most one per address per few seconds.
const EventAdmissionRefused = "admission_refused"
