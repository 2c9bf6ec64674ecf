// Package renew renews the gateway's own upstream certificate (a bridge's
// tls.cert and tls.key) and swaps it in without a restart.
//
// One renewal (Renewer.Renew), triggered Before the certificate expires, by
// `edgegw key rotate`, or retried with backoff after a failure:
//
//  1. a new key where the current one lives (hw.Successor: the next file,
//     TPM persistent handle or blob, PKCS#11 label; never on top of a key);
//  2. a source signs it: AWS (create-from-csr over the bridge's live
//     connection, then the provisioning template's RegisterThing with the
//     ownership token; the JSON shapes are gateway/enrol's) or EST
//     (simplereenroll with gateway/est, authenticated by the current
//     identity);
//  3. the new certificate is written (0600, atomically) under
//     <state_dir>/renew/<bridge>/ with identity.json naming it and the new
//     key: that file is the commit point, and Current reads it at start;
//  4. the bridge reconnects once under the new identity (Swapper, the
//     bridge's SwapIdentity: the queue resends what was in flight);
//  5. the old key is destroyed (hw.Destroy) only after that connection.
//
// A failure at 2 or 4 destroys the new key, keeps (or puts back) the old
// identity and is retried with backoff between RetryMin and RetryMax; every
// outcome is an Event (the gateway writes it to the audit log) and is in
// State (metrics, `edgegw status`).
//
// Which identity is current: identity.json when its certificate is newer
// (later NotBefore) than the configured tls.cert, else the configured one;
// so an operator who installs a new tls.cert by hand (and SIGHUPs) wins.
//
// Package renew must not import gateway, bridge, store, mochi, badger,
// prometheus or paho: the bridge arrives as the small Caller and Swapper
// interfaces (cmd/edgegw/deps_test.go enforces it).
package renew
