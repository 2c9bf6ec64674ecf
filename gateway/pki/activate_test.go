package pki

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"crypto/ecdsa"
	"crypto/elliptic"
)

func TestPendingThenActivate(t *testing.T) {
	o := newPKI(t)
	ctx := context.Background()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res, err := Issue(ctx, o, "", IssueRequest{Thing: "sensor-1", CSR: goCSR(t, k, "sensor-1"), Pending: true})
	if err != nil {
		t.Fatal(err)
	}
	serial := res.Bundles[0].Serial
	if b, _ := os.ReadFile(o.Devices); strings.Contains(string(b), "sensor-1") {
		t.Fatal("a pending certificate wrote the registry")
	}
	if _, err := Activate(ctx, o, serial, ThingUpdate{Name: "sensor-2"}); err == nil {
		t.Fatal("Activate for another thing succeeded")
	}
	e, err := Activate(ctx, o, serial, ThingUpdate{Name: "sensor-1", Type: "temperature", Policies: []string{"p"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != StatusActive || e.Type != "temperature" {
		t.Errorf("activated entry = %+v; want active, temperature", e)
	}
	if b, _ := os.ReadFile(o.Devices); !strings.Contains(string(b), "name: sensor-1") {
		t.Errorf("registry lacks the activated thing:\n%s", b)
	}
	if _, err := Activate(ctx, o, serial, ThingUpdate{Name: "sensor-1"}); !errors.Is(err, ErrNotPending) {
		t.Errorf("second Activate = %v; want ErrNotPending", err)
	}
	// Another pending certificate for a thing in use cannot be activated.
	res2, err := Issue(ctx, o, "", IssueRequest{Thing: "sensor-1", Pending: true, Overlap: true})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, o.Dir, o.Devices)
	if _, err := Activate(ctx, o, res2.Bundles[0].Serial, ThingUpdate{Name: "sensor-1"}); !errors.Is(err, ErrThingActive) {
		t.Errorf("Activate over an active certificate = %v; want ErrThingActive", err)
	}
	if after := snapshot(t, o.Dir, o.Devices); !mapsEqual(before, after) {
		t.Error("a refused Activate wrote files")
	}
}

func TestOverlapAndRevokeSerials(t *testing.T) {
	o := newPKI(t)
	ctx := context.Background()
	old := issueOne(t, o, "", IssueRequest{Thing: "dev1"})
	nw := issueOne(t, o, "", IssueRequest{Thing: "dev1", Overlap: true})
	if nw.Renews != old.Serial {
		t.Errorf("Renews = %q; want %s", nw.Renews, old.Serial)
	}
	st := readState(t, o)
	active := 0
	for _, e := range st.Certs {
		if e.Thing == "dev1" && e.Status == StatusActive {
			active++
		}
	}
	if active != 2 {
		t.Fatalf("%d active certificates for dev1 after an overlapping renewal; want 2", active)
	}
	claim := issueOne(t, o, "", IssueRequest{Thing: "claimA", Kind: KindClaim})
	for _, tc := range []struct{ name, thing, serial string }{
		{"another thing's certificate", "dev2", old.Serial},
		{"a claim certificate", "claimA", claim.Serial},
		{"an unknown serial", "dev1", "0123456789abcdef0123"},
	} {
		before := snapshot(t, o.Dir, o.Devices)
		if _, err := Issue(ctx, o, "", IssueRequest{Thing: tc.thing, Overlap: true, RenewSerial: tc.serial}); !errors.Is(err, ErrNotRenewable) {
			t.Errorf("%s: renewing = %v; want ErrNotRenewable", tc.name, err)
		}
		if after := snapshot(t, o.Dir, o.Devices); !mapsEqual(before, after) {
			t.Errorf("%s: a refused renewal wrote files", tc.name)
		}
	}
	if _, err := RevokeSerials(ctx, o, []string{old.Serial, "0123456789abcdef"}, "superseded"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RevokeSerials with an unknown serial = %v; want ErrNotFound", err)
	}
	res, err := RevokeSerials(ctx, o, []string{strings.ToUpper(old.Serial)}, "superseded")
	if err != nil || len(res.Revoked) != 1 {
		t.Fatalf("RevokeSerials = %+v, %v", res, err)
	}
	crl, err := LoadCRL(o.path(CRLFile), o.path(CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := crl.Reason(old.Cert.SerialNumber); !ok || code != Reasons["superseded"] {
		t.Errorf("CRL reason = %d, %v; want superseded", code, ok)
	}
	if _, err := RevokeSerials(ctx, o, []string{old.Serial}, "superseded"); !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("revoking again = %v; want ErrAlreadyRevoked", err)
	}
}

func TestClaimCertificate(t *testing.T) {
	o := newPKI(t)
	b := issueOne(t, o, "", IssueRequest{Thing: "batch7", Kind: KindClaim, Type: "claim", Policies: []string{"edgegw-claim"}})
	if len(b.Cert.URIs) != 1 || b.Cert.URIs[0].String() != ClaimURIPrefix+"batch7" {
		t.Errorf("claim SAN URIs = %v; want %sbatch7", b.Cert.URIs, ClaimURIPrefix)
	}
	if st := readState(t, o); st.Certs[len(st.Certs)-1].Kind != KindClaim {
		t.Errorf("kind = %q; want claim", st.Certs[len(st.Certs)-1].Kind)
	}
	res, err := Revoke(context.Background(), o, "batch7", "privilegeWithdrawn")
	if err != nil || len(res.Revoked) != 1 {
		t.Fatalf("revoking the claim by name = %+v, %v", res, err)
	}
}

func TestCSRAskingForCAIsRefused(t *testing.T) {
	o := newPKI(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev1"},
		ExtraExtensions: []pkix.Extension{{Id: oidExtBasicConstraints, Critical: true, Value: bc}}}, k)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, o.Dir, o.Devices)
	_, err = Sign(context.Background(), o, "", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), IssueRequest{Thing: "dev1"})
	if !errors.Is(err, ErrBadCSR) || !strings.Contains(err.Error(), "CA:TRUE") {
		t.Fatalf("Sign of a CA:true CSR = %v; want ErrBadCSR naming CA:TRUE", err)
	}
	if after := snapshot(t, o.Dir, o.Devices); !mapsEqual(before, after) {
		t.Error("a refused CSR wrote files")
	}
}

func TestSignServer(t *testing.T) {
	o := newPKI(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "gw"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tls", "server.crt")
	b, err := SignServer(context.Background(), o, ServerRequest{CSR: der, Hosts: []string{"10.0.0.5", "gw.plant-7.example"}, Days: 30, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := parseCerts(chain)
	if len(certs) != 2 || !certs[0].PublicKey.(*ecdsa.PublicKey).Equal(k.Public()) {
		t.Fatalf("%s: %d certificates or the wrong key", out, len(certs))
	}
	c := certs[0]
	if c.Subject.CommonName != "gw.plant-7.example" || c.VerifyHostname("10.0.0.5") != nil || c.VerifyHostname("gw.plant-7.example") != nil {
		t.Errorf("server certificate CN %q, names %v %v", c.Subject.CommonName, c.DNSNames, c.IPAddresses)
	}
	if d := c.NotAfter.Sub(c.NotBefore).Hours() / 24; d < 29 || d > 31 {
		t.Errorf("lifetime %.1f days; want 30", d)
	}
	if _, err := SignServer(context.Background(), o, ServerRequest{CSR: der}); !errors.Is(err, ErrNoHosts) {
		t.Errorf("SignServer without hosts = %v; want ErrNoHosts", err)
	}
	// A second one supersedes the first in issued.json.
	if _, err := SignServer(context.Background(), o, ServerRequest{CSR: der, Hosts: []string{"gw.plant-7.example"}, Out: out}); err != nil {
		t.Fatal(err)
	}
	for _, e := range readState(t, o).Certs {
		if e.Serial == b.Serial && e.Status != StatusSuperseded {
			t.Errorf("first server certificate is %s; want superseded", e.Status)
		}
	}
}
