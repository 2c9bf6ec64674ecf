package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testOwner is who the daemon-owned files go to in tests: as root a uid/gid that is neither
// root's nor (usually) any real user's, so the chown is visible; otherwise the test's own ids,
// the only ones an unprivileged process may give a file to.
func testOwner() Owner {
	if os.Geteuid() == 0 {
		return Owner{UID: 65534, GID: 65534}
	}
	return Owner{UID: os.Getuid(), GID: os.Getgid()}
}

// TestInitOwner: with Options.Owner, the daemon can enter DIR through its group and owns
// server.key (0600); the CA key and the registry stay with the caller. The plan survives
// ImportCA and later operations.
func TestInitOwner(t *testing.T) {
	own := testOwner()
	me := Owner{UID: os.Geteuid(), GID: os.Getegid()}
	type want struct {
		mode     os.FileMode
		uid, gid int
	}
	caller := func(mode os.FileMode) want { return want{mode, me.UID, me.GID} }
	layout := map[string]want{
		"":             {DirMode, me.UID, own.GID},
		ServerKeyFile:  {0o600, own.UID, own.GID},
		ServerCertFile: caller(0o644),
		CACertFile:     caller(0o644),
		CRLFile:        caller(0o644),
		CAKeyFile:      caller(0o600),
		CAConfigFile:   caller(0o644),
		IssuedFile:     caller(0o644),
		".lock":        caller(0o600),
	}
	check := func(t *testing.T, o Options, layout map[string]want) {
		t.Helper()
		for name, w := range layout {
			fi, err := os.Stat(filepath.Join(o.Dir, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if got := (want{fi.Mode().Perm(), int(st.Uid), int(st.Gid)}); got != w {
				t.Errorf("%q: got mode %04o owner %d:%d; want %04o %d:%d", name, got.mode, got.uid, got.gid, w.mode, w.uid, w.gid)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) // before Init
	}{
		{"new directory", func(*testing.T, string) {}},
		{"existing 0700 directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			o := Options{Dir: filepath.Join(root, "pki"), Devices: filepath.Join(root, "devices.yaml"), Owner: &own}
			tc.setup(t, o.Dir)
			if _, err := Init(context.Background(), o, InitOptions{Hosts: []string{"localhost"}}); err != nil {
				t.Fatalf("Init: %v", err)
			}
			check(t, o, layout)
			// Issue and revoke rewrite crl.pem and issued.json; server.key stays the daemon's.
			issueOne(t, o, t.TempDir(), IssueRequest{Thing: "temp-1", Type: "temperature"})
			if _, err := Revoke(context.Background(), o, "temp-1", ""); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			check(t, o, layout)
		})
	}
	t.Run("import-ca", func(t *testing.T) {
		root := t.TempDir()
		o := Options{Dir: filepath.Join(root, "pki"), Owner: &own}
		if _, err := Init(context.Background(), o, InitOptions{CSR: true}); err != nil {
			t.Fatalf("Init --csr: %v", err)
		}
		if err := os.Chmod(o.Dir, 0o700); err != nil { // as an older edgegw left it
			t.Fatal(err)
		}
		if _, err := ImportCA(context.Background(), o, signAsSubCA(t, o)); err != nil {
			t.Fatalf("ImportCA: %v", err)
		}
		check(t, o, layout)
	})
	t.Run("no owner", func(t *testing.T) {
		o := newPKI(t)
		check(t, o, map[string]want{"": caller(0o700), ServerKeyFile: caller(0o600)})
	})
}

func TestDaemonOwner(t *testing.T) {
	lookupErr := errors.New("nsswitch: backend down")
	for _, tc := range []struct {
		name    string
		lookup  func(string) (*user.User, error)
		want    *Owner // as root; nil when not root whatever the lookup says
		wantErr string // as root
	}{
		{"user exists", func(string) (*user.User, error) { return &user.User{Uid: "998", Gid: "997"}, nil }, &Owner{UID: 998, GID: 997}, ""},
		{"no such user", func(n string) (*user.User, error) { return nil, user.UnknownUserError(n) }, nil, ""},
		{"lookup fails", func(string) (*user.User, error) { return nil, lookupErr }, nil, `looking up the daemon's user "edgegw": nsswitch: backend down`},
		{"uid not a number", func(string) (*user.User, error) { return &user.User{Uid: "S-1-5", Gid: "1"}, nil }, nil, `uid "S-1-5" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DaemonOwner("edgegw", tc.lookup)
			want, wantErr := tc.want, tc.wantErr
			if os.Geteuid() != 0 {
				want, wantErr = nil, ""
			}
			if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
				t.Fatalf("got error %v; want %q", err, wantErr)
			}
			if (got == nil) != (want == nil) || (got != nil && *got != *want) {
				t.Errorf("got %+v; want %+v", got, want)
			}
		})
	}
}

// signAsSubCA signs DIR/ca.csr as a subordinate CA under a throwaway root and returns the
// certificate followed by the root, as `edgegw pki import-ca` takes it.
func signAsSubCA(t *testing.T, o Options) []byte {
	t.Helper()
	b, err := os.ReadFile(o.path(CACSRFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", o.path(CACSRFile))
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	subT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, subT, root, csr.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return append(certPEM(der), certPEM(rootDER)...)
}
