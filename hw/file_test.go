package hw_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/hw"
	"github.com/edgegw/edgegw/hw/hwtest"
)

func assertMode0600(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %04o; want 0600", path, st.Mode().Perm())
	}
}

// opensslSHA256 runs `openssl pkey [-pubin] -in FILE -pubout -outform DER | sha256sum`.
func opensslSHA256(t *testing.T, file string, pubin bool) string {
	t.Helper()
	hwtest.Require(t, "openssl", "openssl")
	in := ""
	if pubin {
		in = "-pubin"
	}
	out, err := exec.Command("sh", "-c", "openssl pkey "+in+" -in '"+file+"' -pubout -outform DER | sha256sum").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkey | sha256sum: %v: %s", err, out)
	}
	return strings.Fields(string(out))[0]
}

// checkCSRWithOpenSSL verifies the CSR's self-signature with `openssl req -verify` and that its
// public key hashes (openssl pkey -pubin -outform DER | sha256sum) to wantSum.
func checkCSRWithOpenSSL(t *testing.T, csrPEM []byte, wantSum string) {
	t.Helper()
	hwtest.Require(t, "openssl", "openssl")
	dir := t.TempDir()
	csr := filepath.Join(dir, "req.csr")
	if err := os.WriteFile(csr, csrPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("openssl", "req", "-in", csr, "-verify", "-noout").CombinedOutput(); err != nil {
		t.Fatalf("openssl req -verify: %v: %s", err, out)
	}
	pub, err := exec.Command("openssl", "req", "-in", csr, "-pubkey", "-noout").Output()
	if err != nil {
		t.Fatalf("openssl req -pubkey: %v", err)
	}
	pubFile := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubFile, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := opensslSHA256(t, pubFile, true); got != wantSum {
		t.Fatalf("CSR public key SHA-256 (openssl) = %s; want %s", got, wantSum)
	}
}

// TestFileKeys opens keys made by the openssl CLI in every accepted encoding, signs TLS with
// them, and checks Info's fingerprint against openssl.
func TestFileKeys(t *testing.T) {
	hwtest.Require(t, "openssl", "openssl")
	ctx := context.Background()
	for _, tc := range []struct{ name, cmd, typ string }{
		{"pkcs8-ec", "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out OUT", "ECDSA P-256"},
		{"sec1-ec-with-params", "openssl ecparam -name prime256v1 -genkey -out OUT", "ECDSA P-256"},
		{"pkcs1-rsa", "openssl genrsa -traditional -out OUT 2048", "RSA-2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			out, err := exec.Command("sh", "-c", "umask 077; "+strings.Replace(tc.cmd, "OUT", "'"+path+"'", 1)).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", tc.cmd, err, out)
			}
			uri := "file:" + path
			k, err := hw.Open(ctx, uri)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer k.Close()
			bothTLS(t, k)
			info, err := hw.Info(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			if want := opensslSHA256(t, path, false); info.PublicSHA256 != want || info.Type != tc.typ {
				t.Fatalf("Info = %+v; want type %s, SHA-256 %s", info, tc.typ, want)
			}
		})
	}
	t.Run("create", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "new.key")
		k, err := hw.Create(ctx, "file:"+path, hw.P256)
		if err != nil {
			t.Fatal(err)
		}
		k.Close()
		assertMode0600(t, path)
		if _, err := hw.Create(ctx, "file:"+path, hw.P256); !errors.Is(err, hw.ErrExists) {
			t.Fatalf("second Create: got %v; want ErrExists", err)
		}
	})
}

func TestFileSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, n int, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		b := make([]byte, n)
		rand.Read(b)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", 32, 0o600)
	if s, err := hw.OpenSecret(ctx, "file:"+good); err != nil || len(s) != 32 {
		t.Fatalf("good secret: got %d bytes, %v; want 32 bytes, no error", len(s), err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Errors are the same whether or not a missing file may be created, except "missing".
	for _, tc := range []struct {
		name, uri, want string
		is              error
	}{
		{"short", "file:" + write("short", 31, 0o600), "want exactly 32 raw bytes", nil},
		{"long", "file:" + write("long", 33, 0o400), "want exactly 32 raw bytes", nil},
		{"group-readable", "file:" + write("open", 32, 0o640), "chmod 600", hw.ErrPermissions},
		{"world-readable", "file:" + write("world", 32, 0o604), "chmod 600", hw.ErrPermissions},
		{"directory", "file:" + filepath.Join(dir, "adir"), "not a regular file", nil},
		{"no-directory", "file:" + filepath.Join(dir, "none", "key"), "", nil},
		{"no-path", "file:", "file: needs a path", hw.ErrBadURI},
		{"scheme", "vault:x", "unknown secret scheme", hw.ErrUnsupported},
		{"sealed-attr", "tpm-sealed:/x;handle=0x81000100", "unknown tpm-sealed: attribute", hw.ErrBadURI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(fn string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.uri) || (tc.is != nil && !errors.Is(err, tc.is)) {
					t.Errorf("%s: got %v; want an error naming %q and saying %q", fn, err, tc.uri, tc.want)
				}
			}
			_, err := hw.OpenSecret(ctx, tc.uri)
			check("OpenSecret", err)
			_, created, err := hw.OpenOrCreateSecret(ctx, tc.uri)
			check("OpenOrCreateSecret", err)
			if created {
				t.Errorf("OpenOrCreateSecret: got created true with an error; want false")
			}
		})
	}
	// OpenSecret never creates a missing file: inspection tools must not invent a key.
	missing := filepath.Join(dir, "missing")
	if _, err := hw.OpenSecret(ctx, "file:"+missing); !errors.Is(err, hw.ErrNotFound) || !strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
		t.Errorf("OpenSecret on a missing file: got %v; want ErrNotFound with the head -c 32 hint", err)
	}
	if _, err := os.Lstat(missing); err == nil {
		t.Errorf("OpenSecret created %s; want it left absent", missing)
	}
}

// TestOpenOrCreateFileSecret: a missing file: secret is made once (32 bytes, 0600, nothing else
// left in the directory) and read back afterwards; an existing one is never replaced.
func TestOpenOrCreateFileSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.key")
	first, created, err := hw.OpenOrCreateSecret(ctx, "file:"+path)
	if err != nil || !created || len(first) != hw.SecretSize {
		t.Fatalf("first call: got %d bytes, created %v, err %v; want 32 bytes, created true, no error", len(first), created, err)
	}
	assertMode0600(t, path)
	onDisk, err := os.ReadFile(path)
	if err != nil || string(onDisk) != string(first) {
		t.Fatalf("file holds %x (err %v); want the returned secret %x", onDisk, err, first)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("got %d entries in the directory; want only queue.key (no temporary file left)", len(ents))
	}
	for _, tc := range []struct {
		name string
		open func() ([]byte, bool, error)
	}{
		{"OpenOrCreateSecret again", func() ([]byte, bool, error) { return hw.OpenOrCreateSecret(ctx, "file:"+path) }},
		{"OpenSecret", func() ([]byte, bool, error) { s, err := hw.OpenSecret(ctx, "file:"+path); return s, false, err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, created, err := tc.open()
			if err != nil || created || string(s) != string(first) {
				t.Errorf("got %x, created %v, err %v; want the first secret, created false", s, created, err)
			}
		})
	}
}

// TestOpenOrCreateSecretRace: processes starting together agree on one secret, made once.
func TestOpenOrCreateSecretRace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.key")
	const n = 8
	type result struct {
		s       []byte
		created bool
		err     error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			s, created, err := hw.OpenOrCreateSecret(ctx, "file:"+path)
			results <- result{s, created, err}
		}()
	}
	close(start)
	var first []byte
	made := 0
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatalf("got %v; want no error", r.err)
		}
		if r.created {
			made++
		}
		if first == nil {
			first = r.s
		} else if string(r.s) != string(first) {
			t.Errorf("got secret %x; want %x as every other caller", r.s, first)
		}
	}
	if made != 1 {
		t.Errorf("got %d callers that created the secret; want 1", made)
	}
}

// TestBadInput: every bad URI gives a clear error that names the URI (never the PIN).
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.pem")
	k, err := hw.Create(ctx, "file:"+loose, hw.P256)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, uri string
		is        error
		want      string
	}{
		{"unknown-scheme", "vault:secret/gw", hw.ErrUnsupported, "unknown scheme"},
		{"no-scheme", "/etc/edgegw/gw.key", hw.ErrBadURI, "no scheme"},
		{"empty-file", "file:", hw.ErrBadURI, "needs a path"},
		{"handle-not-hex", "tpm:handle=81000100", hw.ErrBadURI, "hex persistent handle"},
		{"handle-out-of-range", "tpm:handle=0x80000001", hw.ErrBadURI, "not an owner persistent handle"},
		{"missing-handle", "tpm:tcp=127.0.0.1:2321", hw.ErrBadURI, "needs handle="},
		{"handle-and-blob", "tpm:handle=0x81000100;blob=/x", hw.ErrBadURI, "not both"},
		{"repeated-attr", "tpm:handle=0x81000100;handle=0x81000101", hw.ErrBadURI, "given twice"},
		{"tcp-no-port", "tpm:tcp=127.0.0.1;handle=0x81000100", hw.ErrBadURI, "HOST:PORT"},
		{"unknown-tpm-attr", "tpm:handle=0x81000100;pcr=7", hw.ErrBadURI, "unknown tpm: attribute"},
		{"no-tpm-device", "tpm:device=" + filepath.Join(dir, "tpmrm9") + ";handle=0x81000100", hw.ErrNoDevice, "does not exist"},
		{"no-simulator", "tpm:tcp=127.0.0.1:1;handle=0x81000100", hw.ErrNoDevice, "TPM simulator"},
		{"no-key-file", "file:" + filepath.Join(dir, "absent.pem"), hw.ErrNotFound, "does not exist"},
		{"world-readable", "file:" + loose, hw.ErrPermissions, "chmod 600 " + loose},
		{"pkcs11-no-token", "pkcs11:object=gw?module-path=/m.so&pin-source=/p", hw.ErrBadURI, "exactly one of token="},
		{"pkcs11-no-module", "pkcs11:token=gw;object=gw?pin-source=/p", hw.ErrBadURI, "module-path"},
		{"pkcs11-unknown-attr", "pkcs11:token=gw;object=gw;color=red?module-path=/m.so", hw.ErrUnsupported, "color"},
		{"pkcs11-bad-escape", "pkcs11:token=g%zz;object=gw?module-path=/m.so", hw.ErrBadURI, "percent-encoding"},
		{"pkcs11-pin-value", "pkcs11:token=gw;object=gw?module-path=/m.so&pin-value=s3cr3t-PIN", hw.ErrPIN, "use pin-source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hw.Open(ctx, tc.uri)
			if err == nil {
				t.Fatalf("Open(%q) succeeded; want an error", tc.uri)
			}
			msg := err.Error()
			if !errors.Is(err, tc.is) || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %v; want %v saying %q", err, tc.is, tc.want)
			}
			t.Logf("%v", err)
			if strings.Contains(msg, "s3cr3t-PIN") {
				t.Fatalf("error leaks the PIN: %v", err)
			}
			if !strings.Contains(msg, hw.Redact(tc.uri)) {
				t.Fatalf("error %q does not name the URI %q", msg, hw.Redact(tc.uri))
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := hw.Redact("pkcs11:token=a;object=b?pin-value=1234&module-path=/m.so&pin-value=99")
	if strings.Contains(got, "1234") || strings.Contains(got, "=99") || !strings.Contains(got, "module-path=/m.so") {
		t.Fatalf("Redact = %q", got)
	}
}
