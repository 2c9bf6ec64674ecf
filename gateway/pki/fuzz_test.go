package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

// CSRs come from devices: CheckCSR must never panic, and anything it accepts is for the thing.
func FuzzCheckCSR(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(goCSR(f, k, "thing"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := CheckCSR(data, "thing")
		if err == nil && csr.Subject.CommonName != "thing" {
			t.Fatalf("accepted CN %q", csr.Subject.CommonName)
		}
	})
}

// devices.yaml is edited by hand: updateRegistry must never panic, and its output must parse
// again and contain the thing.
func FuzzUpdateRegistry(f *testing.F) {
	f.Add([]byte("version: 1\nthings:\n  - name: a # c\n    policies: [p]\n"))
	f.Add([]byte("things: []\n"))
	f.Add([]byte("things: 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := updateRegistry("devices.yaml", data, []ThingUpdate{{Name: "n-1", Type: "t", Attributes: map[string]string{"k": "01"}, Policies: []string{"p"}}})
		if err != nil {
			return
		}
		again, err := updateRegistry("devices.yaml", out, []ThingUpdate{{Name: "n-1"}})
		if err != nil {
			t.Fatalf("output does not re-parse: %v\n%s", err, out)
		}
		if string(again) != string(out) {
			t.Fatalf("a no-op update changed the file:\n%s\n---\n%s", out, again)
		}
	})
}
