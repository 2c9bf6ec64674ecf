//go:build tools

// Module estserver pins the third-party EST server the end-to-end tests run
// (github.com/globalsign/est's cmd/estserver, a test server with a mock CA).
// It is a module of its own because est v1.0.6 needs go-tpm v0.3 (its
// legacy tpm2 API), which edgegw's newer go-tpm no longer has: built in
// edgegw's module it does not compile. The tests build it with
// `go build github.com/globalsign/est/cmd/estserver` in this directory.
package tools

import _ "github.com/globalsign/est/cmd/estserver"
