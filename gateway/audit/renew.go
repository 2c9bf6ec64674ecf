package audit

// Audit events of the renewal of the gateway's own upstream certificate
// (gateway/renew). Resource is "bridge/<name>", Serial the new certificate
// (renewed) or the one in use (failed); Reason says what failed, or the key
// destroyed (redacted URI).
const (
	EventIdentityRenewed      = "identity_renewed"       // a new certificate is in use upstream
	EventIdentityRenewFailed  = "identity_renew_failed"  // the old certificate stays in use; retried
	EventIdentityKeyDestroyed = "identity_key_destroyed" // the old key, after the new identity connected
)
