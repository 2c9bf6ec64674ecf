package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// newPKI makes a CA in a temp dir with a devices.yaml beside it.
func newPKI(t testing.TB) Options {
	t.Helper()
	root := t.TempDir()
	o := Options{Dir: filepath.Join(root, "pki"), Devices: filepath.Join(root, "devices.yaml")}
	if _, err := Init(context.Background(), o, InitOptions{Hosts: []string{"localhost", "127.0.0.1"}}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return o
}

func issueOne(t testing.TB, o Options, out string, r IssueRequest) Bundle {
	t.Helper()
	res, err := Issue(context.Background(), o, out, r)
	if err != nil {
		t.Fatalf("Issue(%s): %v", r.Thing, err)
	}
	return res.Bundles[0]
}

func readState(t testing.TB, o Options) state {
	t.Helper()
	var st state
	if err := readJSON(o.path(IssuedFile), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// snapshot maps every file under the given roots to its bytes and mode, to prove refusals
// write nothing.
func snapshot(t testing.TB, roots ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, r := range roots {
		_ = filepath.Walk(r, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			if fi.IsDir() {
				m[p] = "dir"
				return nil
			}
			b, _ := os.ReadFile(p)
			m[p] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(b))
			return nil
		})
	}
	return m
}

func TestInitLayout(t *testing.T) {
	o := newPKI(t)
	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{
		{CACertFile, 0o644}, {CAKeyFile, 0o600}, {CAConfigFile, 0o644}, {ServerCertFile, 0o644},
		{ServerKeyFile, 0o600}, {CRLFile, 0o644}, {IssuedFile, 0o644},
	} {
		fi, err := os.Stat(o.path(tc.name))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if fi.Mode().Perm() != tc.mode {
			t.Errorf("%s mode = %v; want %v", tc.name, fi.Mode().Perm(), tc.mode)
		}
	}
	b, _ := os.ReadFile(o.path(CACertFile))
	cas, _ := parseCerts(b)
	ca := cas[0]
	if !ca.IsCA || !ca.MaxPathLenZero || ca.MaxPathLen != 0 || ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA profile: IsCA=%v pathlen0=%v ku=%v", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
	}
	if d := ca.NotAfter.Sub(ca.NotBefore); d < 3649*24*time.Hour || d > 3651*24*time.Hour {
		t.Errorf("CA lifetime = %v; want ~10 years", d)
	}
	sb, _ := os.ReadFile(o.path(ServerCertFile))
	srv, _ := parseCerts(sb)
	if len(srv) != 2 || !slices.Equal(srv[0].ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Fatalf("server chain: %d certs, eku %v", len(srv), srv[0].ExtKeyUsage)
	}
	if err := srv[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := srv[0].VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	crl, err := LoadCRL(o.path(CRLFile), o.path(CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if crl.Len() != 0 || crl.Number.Int64() != 1 {
		t.Errorf("first CRL: %d entries, number %v; want 0, 1", crl.Len(), crl.Number)
	}
	_, err = Init(context.Background(), o, InitOptions{})
	if !errors.Is(err, ErrExists) {
		t.Errorf("second Init: err = %v; want ErrExists", err)
	}
}

func TestIssueProfile(t *testing.T) {
	o := newPKI(t)
	out := t.TempDir()
	b := issueOne(t, o, out, IssueRequest{Thing: "temp-f01-001", Type: "temperature"})
	c := b.Cert
	if c.Subject.CommonName != "temp-f01-001" || len(c.URIs) != 1 || c.URIs[0].String() != "urn:edgegw:thing:temp-f01-001" {
		t.Errorf("subject %q uris %v", c.Subject, c.URIs)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() < 100 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x: %d bits", c.SerialNumber, c.SerialNumber.BitLen())
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || c.IsCA {
		t.Errorf("ku %v eku %v ca %v", c.KeyUsage, c.ExtKeyUsage, c.IsCA)
	}
	cab, _ := os.ReadFile(o.path(CACertFile))
	cas, _ := parseCerts(cab)
	if len(c.SubjectKeyId) == 0 || string(c.AuthorityKeyId) != string(cas[0].SubjectKeyId) {
		t.Errorf("ski %x aki %x; want aki %x", c.SubjectKeyId, c.AuthorityKeyId, cas[0].SubjectKeyId)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < 365*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("lifetime %v; want one year", d)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %s; want ECDSA P-256", keyDescription(c.PublicKey))
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas[0])
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	fi, err := os.Stat(filepath.Join(out, "temp-f01-001.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v; want 0600", err, fi)
	}
	if _, err := os.Stat(filepath.Join(out, "ca.crt")); err != nil {
		t.Error(err)
	}
	kb, _ := os.ReadFile(b.KeyFile)
	k, err := parseKeyPEM(kb)
	if err != nil || !samePublicKey(k.Public(), c.PublicKey) {
		t.Errorf("key file does not match certificate: %v", err)
	}
	st := readState(t, o)
	e := st.Certs[len(st.Certs)-1]
	if e.Serial != b.Serial || e.Thing != "temp-f01-001" || e.Type != "temperature" || e.Status != StatusActive || e.Kind != KindDevice {
		t.Errorf("issued.json entry %+v", e)
	}
}

func TestDuplicateAndRenew(t *testing.T) {
	o := newPKI(t)
	ctx := context.Background()
	first := issueOne(t, o, "", IssueRequest{Thing: "dev1"})
	before := snapshot(t, o.Dir, o.Devices)
	_, err := Issue(ctx, o, "", IssueRequest{Thing: "dev1"})
	if !errors.Is(err, ErrThingActive) || !strings.Contains(err.Error(), "--renew") {
		t.Fatalf("duplicate: err = %v; want ErrThingActive mentioning --renew", err)
	}
	if after := snapshot(t, o.Dir, o.Devices); !mapsEqual(before, after) {
		t.Errorf("refused duplicate changed files")
	}
	second := issueOne(t, o, "", IssueRequest{Thing: "dev1", Renew: true})
	if !slices.Equal(second.Superseded, []string{first.Serial}) {
		t.Errorf("superseded %v; want [%s]", second.Superseded, first.Serial)
	}
	crl, err := LoadCRL(o.path(CRLFile), o.path(CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !crl.Revoked(first.Cert.SerialNumber) || crl.Revoked(second.Cert.SerialNumber) {
		t.Errorf("CRL: old revoked=%v new revoked=%v; want true,false", crl.Revoked(first.Cert.SerialNumber), crl.Revoked(second.Cert.SerialNumber))
	}
	if r, _ := crl.Reason(first.Cert.SerialNumber); r != 4 {
		t.Errorf("reason %d; want 4 (superseded)", r)
	}
	st := readState(t, o)
	if st.Certs[1].Status != StatusSuperseded || st.Certs[2].Status != StatusActive {
		t.Errorf("statuses %v %v", st.Certs[1].Status, st.Certs[2].Status)
	}
}

func TestRevoke(t *testing.T) {
	o := newPKI(t)
	ctx := context.Background()
	a := issueOne(t, o, "", IssueRequest{Thing: "a"})
	b := issueOne(t, o, "", IssueRequest{Thing: "b"})
	regBefore, _ := os.ReadFile(o.Devices)

	if _, err := Revoke(ctx, o, "a", "bogus"); err == nil || !strings.Contains(err.Error(), "keyCompromise") {
		t.Errorf("bad reason: %v", err)
	}
	if _, err := Revoke(ctx, o, "nobody", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown thing: %v", err)
	}
	res, err := Revoke(ctx, o, "a", "keyCompromise")
	if err != nil || len(res.Revoked) != 1 || res.Revoked[0].Serial != a.Serial {
		t.Fatalf("revoke by thing: %+v, %v", res, err)
	}
	// By serial, in openssl's colon form.
	var colon []string
	for _, by := range b.Cert.SerialNumber.Bytes() {
		colon = append(colon, fmt.Sprintf("%02X", by))
	}
	if _, err := Revoke(ctx, o, strings.Join(colon, ":"), "cessationOfOperation"); err != nil {
		t.Fatalf("revoke by serial: %v", err)
	}
	if _, err := Revoke(ctx, o, "a", ""); !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("second revoke: %v; want ErrAlreadyRevoked", err)
	}
	crl, err := LoadCRL(o.path(CRLFile), o.path(CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if crl.Number.Int64() != 3 {
		t.Errorf("CRL number %v; want 3", crl.Number)
	}
	if !crl.RevokedCert(a.Cert) || !crl.RevokedCert(b.Cert) {
		t.Error("revoked certificates not on CRL")
	}
	if r, _ := crl.Reason(a.Cert.SerialNumber); r != 1 {
		t.Errorf("reason %d; want keyCompromise", r)
	}
	if d := crl.NextUpdate.Sub(crl.ThisUpdate); d != 30*24*time.Hour {
		t.Errorf("nextUpdate - thisUpdate = %v; want 30 days", d)
	}
	regAfter, _ := os.ReadFile(o.Devices)
	if string(regBefore) != string(regAfter) {
		t.Error("revoke changed devices.yaml")
	}
	// A revoked thing can get a new certificate without --renew.
	issueOne(t, o, "", IssueRequest{Thing: "a"})

	rl, err := RefreshCRL(ctx, o, 7)
	if err != nil {
		t.Fatal(err)
	}
	if rl.Number.Int64() != 4 || rl.NextUpdate.Sub(rl.ThisUpdate) != 7*24*time.Hour || len(rl.RevokedCertificateEntries) != 2 {
		t.Errorf("refreshed CRL: number %v, lifetime %v, %d entries", rl.Number, rl.NextUpdate.Sub(rl.ThisUpdate), len(rl.RevokedCertificateEntries))
	}
}

func TestLoadCRLRejectsForeignSignature(t *testing.T) {
	a, b := newPKI(t), newPKI(t)
	if _, err := LoadCRL(a.path(CRLFile), b.path(CACertFile)); err == nil {
		t.Fatal("CRL of CA a accepted under CA b")
	}
	// Same subject, different key: the signature check must catch it.
	crlb, _ := os.ReadFile(a.path(CRLFile))
	cab, _ := os.ReadFile(b.path(CACertFile))
	cas, _ := parseCerts(cab)
	if _, err := ParseCRL(crlb, cas); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("err = %v; want a signature error", err)
	}
}

func TestClockBeforeBuildDate(t *testing.T) {
	build := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	root := t.TempDir()
	o := Options{Dir: filepath.Join(root, "pki"), Now: func() time.Time { return time.Unix(0, 0) }, NotBefore: build}
	res, err := Init(context.Background(), o, InitOptions{Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ClockClamped || !res.CACert.NotBefore.Equal(build) {
		t.Errorf("clamped=%v notBefore=%v; want true, %v", res.ClockClamped, res.CACert.NotBefore, build)
	}
	ir, err := Issue(context.Background(), o, "", IssueRequest{Thing: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !ir.ClockClamped || !ir.Bundles[0].Cert.NotBefore.Equal(build) {
		t.Errorf("device notBefore %v; want %v", ir.Bundles[0].Cert.NotBefore, build)
	}
}

func TestRegistryEditing(t *testing.T) {
	o := newPKI(t)
	orig := `# site registry
version: 1
default: {policies: []}
things:
  # the boiler
  - name: boiler-1   # keep me
    type: boiler
    attributes: {floor: "02"}
    policies: [boiler]
groups:
  - name: temps
    match: {name: "temp-*"}
    policies: [temperature]
`
	if err := os.WriteFile(o.Devices, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	issueOne(t, o, "", IssueRequest{Thing: "temp-1", Type: "temperature", Attributes: map[string]string{"floor": "01", "building": "hq"}, Policies: []string{"temperature"}})
	issueOne(t, o, "", IssueRequest{Thing: "boiler-1", Type: "boiler2", Attributes: map[string]string{"zone": "7"}, Policies: []string{"boiler", "extra"}, Renew: true})
	got, _ := os.ReadFile(o.Devices)
	for _, want := range []string{"# site registry", "# the boiler", "# keep me", "groups:", "default:"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("devices.yaml lost %q:\n%s", want, got)
		}
	}
	var reg struct {
		Version int
		Things  []struct {
			Name       string
			Type       string
			Attributes map[string]string
			Policies   []string
		}
		Groups []any
	}
	if err := yaml.Unmarshal(got, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.Version != 1 || len(reg.Things) != 2 || len(reg.Groups) != 1 {
		t.Fatalf("registry %+v", reg)
	}
	b, n := reg.Things[0], reg.Things[1]
	if b.Name != "boiler-1" || b.Type != "boiler2" || b.Attributes["floor"] != "02" || b.Attributes["zone"] != "7" || !slices.Equal(b.Policies, []string{"boiler", "extra"}) {
		t.Errorf("updated thing %+v", b)
	}
	if n.Name != "temp-1" || n.Type != "temperature" || n.Attributes["floor"] != "01" || !slices.Equal(n.Policies, []string{"temperature"}) {
		t.Errorf("new thing %+v", n)
	}
	// A missing registry is created.
	o2 := newPKI(t)
	issueOne(t, o2, "", IssueRequest{Thing: "n1", Type: "t"})
	got2, _ := os.ReadFile(o2.Devices)
	if err := yaml.Unmarshal(got2, &reg); err != nil || reg.Version != 1 || len(reg.Things) != 1 || reg.Things[0].Name != "n1" {
		t.Errorf("new registry %q: %v", got2, err)
	}
}

func goCSR(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignCSR(t *testing.T) {
	o := newPKI(t)
	out := t.TempDir()
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	broken := goCSR(t, ec256, "s1")
	blk, _ := pem.Decode(broken)
	blk.Bytes[len(blk.Bytes)-5] ^= 0x01 // inside the signature
	broken = pem.EncodeToMemory(blk)

	for _, tc := range []struct {
		name, thing string
		csr         []byte
		want        string // "" = accepted
	}{
		{"p256", "s1", goCSR(t, ec256, "s1"), ""},
		{"p384", "s2", goCSR(t, ec384, "s2"), ""},
		{"broken signature", "s1", broken, "signature does not verify"},
		{"rsa1024", "s3", goCSR(t, rsa1024, "s3"), "1024 bits"},
		{"p224", "s3", goCSR(t, ec224, "s3"), "P-224"},
		{"ed25519", "s3", goCSR(t, ed, "s3"), "Ed25519"},
		{"subject mismatch", "s3", goCSR(t, ec256, "other"), `subject CN is "other" but the thing is "s3"`},
		{"garbage", "s3", []byte("hello"), "not a readable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, o.Dir, o.Devices, out)
			b, err := Sign(context.Background(), o, out, tc.csr, IssueRequest{Thing: tc.thing})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b.KeyPEM != nil || b.KeyFile != "" || b.Cert.Subject.CommonName != tc.thing {
					t.Errorf("bundle %+v", b)
				}
				return
			}
			if !errors.Is(err, ErrBadCSR) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want ErrBadCSR containing %q", err, tc.want)
			}
			if after := snapshot(t, o.Dir, o.Devices, out); !mapsEqual(before, after) {
				t.Errorf("refused CSR changed files")
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestConcurrentIssue(t *testing.T) {
	o := newPKI(t)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Issue(context.Background(), o, "", IssueRequest{Thing: fmt.Sprintf("c-%02d", i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkConsistent(t, o, n)
}

// checkConsistent asserts issued.json holds n device certificates and devices.yaml n things,
// the same names.
func checkConsistent(t *testing.T, o Options, n int) {
	t.Helper()
	st := readState(t, o)
	names := map[string]bool{}
	serials := map[string]bool{}
	for _, e := range st.Certs {
		if e.Kind == KindDevice {
			names[e.Thing] = true
			serials[e.Serial] = true
		}
	}
	if len(names) != n || len(serials) != n {
		t.Fatalf("issued.json: %d things, %d serials; want %d", len(names), len(serials), n)
	}
	var reg struct{ Things []struct{ Name string } }
	b, _ := os.ReadFile(o.Devices)
	if err := yaml.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	if len(reg.Things) != n {
		t.Fatalf("devices.yaml: %d things; want %d", len(reg.Things), n)
	}
	for _, th := range reg.Things {
		if !names[th.Name] {
			t.Errorf("devices.yaml has %q, issued.json does not", th.Name)
		}
	}
}

func TestBatchIsAtomic(t *testing.T) {
	o := newPKI(t)
	issueOne(t, o, "", IssueRequest{Thing: "dup"})
	before := snapshot(t, o.Dir, o.Devices)
	_, err := Issue(context.Background(), o, t.TempDir(), IssueRequest{Thing: "new1"}, IssueRequest{Thing: "dup"})
	if !errors.Is(err, ErrThingActive) {
		t.Fatalf("err = %v", err)
	}
	if after := snapshot(t, o.Dir, o.Devices); !mapsEqual(before, after) {
		t.Error("failed batch changed files")
	}
	if _, err := Issue(context.Background(), o, "", IssueRequest{Thing: "bad name"}); !errors.Is(err, ErrBadThing) {
		t.Errorf("bad name: %v", err)
	}
}

func TestInitCSRAndImportCA(t *testing.T) {
	ctx := context.Background()
	// An "enterprise root" made here.
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Corp Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(20, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootT, rootT, rootKey.Public(), rootKey)
	root, _ := x509.ParseCertificate(rootDER)

	o := Options{Dir: filepath.Join(t.TempDir(), "pki")}
	res, err := Init(ctx, o, InitOptions{CSR: true, CN: "plant-7 CA", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(ctx, o, "", IssueRequest{Thing: "x"}); !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), "import-ca") {
		t.Errorf("issue before import: %v", err)
	}
	blk, _ := pem.Decode(res.CSRPEM)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CA CSR: %v", err)
	}
	var isCA bool
	for _, e := range csr.Extensions {
		if e.Id.Equal(oidExtBasicConstraints) {
			isCA = true
		}
	}
	if !isCA {
		t.Error("CA CSR lacks basicConstraints request")
	}
	sign := func(ca bool) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().AddDate(5, 0, 0), IsCA: ca, BasicConstraintsValid: true, MaxPathLenZero: ca,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		return append(certPEM(der), certPEM(rootDER)...)
	}
	if _, err := ImportCA(ctx, o, sign(false)); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("non-CA import: %v", err)
	}
	if _, err := ImportCA(ctx, o, certPEM(rootDER)); err == nil || !strings.Contains(err.Error(), "not for this CA's key") {
		t.Errorf("wrong-key import: %v", err)
	}
	if _, err := ImportCA(ctx, o, sign(true)); err != nil {
		t.Fatal(err)
	}
	b := issueOne(t, o, "", IssueRequest{Thing: "dev"})
	pool := x509.NewCertPool()
	pool.AddCert(root)
	cab, _ := os.ReadFile(o.path(CACertFile))
	cas, _ := parseCerts(cab)
	inter := x509.NewCertPool()
	inter.AddCert(cas[0])
	if _, err := b.Cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	if _, err := Revoke(ctx, o, "dev", ""); err != nil {
		t.Fatal(err)
	}
	crl, err := LoadCRL(o.path(CRLFile), o.path(CACertFile))
	if err != nil || !crl.RevokedCert(b.Cert) {
		t.Errorf("CRL after import: %v", err)
	}
	if _, err := ImportCA(ctx, o, sign(true)); !errors.Is(err, ErrExists) {
		t.Errorf("second import: %v", err)
	}
}

func TestListJSONFields(t *testing.T) {
	o := newPKI(t)
	issueOne(t, o, "", IssueRequest{Thing: "l1", Type: "t"})
	if _, err := Revoke(context.Background(), o, "l1", "superseded"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(o.path(IssuedFile))
	var generic struct{ Certs []map[string]any }
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	e := generic.Certs[1]
	for _, k := range []string{"serial", "thing", "type", "not_before", "not_after", "status", "revoked_at", "reason"} {
		if _, ok := e[k]; !ok {
			t.Errorf("issued.json entry lacks %q: %v", k, e)
		}
	}
	l, err := List(o)
	if err != nil || len(l) != 2 || l[1].Status != StatusRevoked {
		t.Errorf("List: %+v %v", l, err)
	}
}

func TestInitWithExistingKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemKey, _ := marshalKeyPEM(k)
	keyPath := filepath.Join(dir, "my-ca.pem")
	if err := os.WriteFile(keyPath, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: filepath.Join(dir, "pki")}
	res, err := Init(context.Background(), o, InitOptions{Key: "file:" + keyPath, Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if !samePublicKey(k.Public(), res.CACert.PublicKey) || exists(o.path(CAKeyFile)) {
		t.Error("existing key not used, or ca.key written")
	}
	issueOne(t, o, "", IssueRequest{Thing: "d"})
	// hw refuses a CA key readable by others.
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(context.Background(), o, "", IssueRequest{Thing: "e"}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable CA key: err = %v; want a chmod hint", err)
	}
}
