package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/hw/hwtest"
)

func runEdgegw(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func infoSHA256(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "sha256:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no sha256: line in %q", out)
	return ""
}

// TestKeyCommands runs `edgegw key create|info|csr` against swtpm, SoftHSM2 and a file key and
// checks the CSR with the openssl CLI: the self-signature verifies, and its public key's
// SHA-256 (openssl pkey -pubin -outform DER | sha256sum) is the one `edgegw key info` prints.
func TestKeyCommands(t *testing.T) {
	hwtest.Require(t, "openssl", "openssl")
	sw := hwtest.StartSWTPM(t)
	h := hwtest.StartSoftHSM(t, "gw")
	dir := t.TempDir()
	for _, tc := range []struct{ name, uri, typ string }{
		{"tpm-handle", sw.URI("handle=0x81000100"), "p256"},
		{"tpm-blob", sw.URI("blob=" + filepath.Join(dir, "gw.tpm2.pem")), "p256"},
		{"pkcs11", h.URI("gateway"), "p256"},
		{"file-rsa", "file:" + filepath.Join(dir, "gw.key"), "rsa2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runEdgegw(t, "key", "create", "--key", tc.uri, "--type", tc.typ)
			if code != 0 {
				t.Fatalf("key create: exit %d: %s", code, errs)
			}
			created := infoSHA256(t, out)
			_, errs, code = runEdgegw(t, "key", "create", "--key", tc.uri)
			if code != 1 || !strings.Contains(errs, "already exists") || !strings.Contains(errs, tc.uri) {
				t.Fatalf("second key create: exit %d, %q; want 1 and 'already exists' naming the URI", code, errs)
			}
			out, errs, code = runEdgegw(t, "key", "info", "--key", tc.uri)
			if code != 0 {
				t.Fatalf("key info: exit %d: %s", code, errs)
			}
			if got := infoSHA256(t, out); got != created {
				t.Fatalf("key info sha256 %s; key create said %s", got, created)
			}
			// -o json says the same, keys per the convention.
			out, errs, code = runEdgegw(t, "key", "info", "--key", tc.uri, "-o", "json")
			var info map[string]any
			if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil {
				t.Fatalf("key info -o json: exit %d, %v: %s%s", code, err, out, errs)
			}
			if info["public_key_sha256"] != created || info["type"] == "" || info["location"] == "" || !strings.HasPrefix(fmt.Sprint(info["uri"]), strings.SplitN(tc.uri, ":", 2)[0]+":") {
				t.Errorf("key info -o json: got %v; want public_key_sha256 %s, the type, location and the URI", info, created)
			}
			for _, p := range conventionProblems("$", info) {
				t.Errorf("key info -o json: %s", p)
			}
			if strings.Contains(out, h.PIN) {
				t.Errorf("key info -o json shows a PIN: %s", out)
			}
			csr := filepath.Join(t.TempDir(), "gw.csr")
			_, errs, code = runEdgegw(t, "key", "csr", "--key", tc.uri, "--cn", "plant-7-gw", "--san", "gw.plant-7.example", "--san", "10.0.0.7", "--out", csr)
			if code != 0 {
				t.Fatalf("key csr: exit %d: %s", code, errs)
			}
			if out, err := exec.Command("openssl", "req", "-in", csr, "-verify", "-noout").CombinedOutput(); err != nil {
				t.Fatalf("openssl req -verify: %v: %s", err, out)
			}
			text, err := exec.Command("openssl", "req", "-in", csr, "-noout", "-text").Output()
			if err != nil || !strings.Contains(string(text), "CN = plant-7-gw") || !strings.Contains(string(text), "DNS:gw.plant-7.example") || !strings.Contains(string(text), "IP Address:10.0.0.7") {
				t.Fatalf("openssl req -text: %v: %s", err, text)
			}
			sum, err := exec.Command("sh", "-c", "openssl req -in '"+csr+"' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum").Output()
			if err != nil {
				t.Fatalf("openssl pkey | sha256sum: %v", err)
			}
			if got := strings.Fields(string(sum))[0]; got != created {
				t.Fatalf("CSR public key SHA-256 (openssl) %s; key info says %s", got, created)
			}
		})
	}
	t.Run("csr-stdout-and-errors", func(t *testing.T) {
		out, _, code := runEdgegw(t, "key", "csr", "--key", sw.URI("handle=0x81000100"), "--cn", "gw")
		if code != 0 || !strings.HasPrefix(out, "-----BEGIN CERTIFICATE REQUEST-----") {
			t.Fatalf("csr to stdout: exit %d, %q", code, out)
		}
		_, errs, code := runEdgegw(t, "key", "info", "--key", "vault:gw")
		if code != 1 || !strings.Contains(errs, `"vault:gw"`) || !strings.Contains(errs, "unknown scheme") {
			t.Fatalf("unknown scheme: exit %d, %q", code, errs)
		}
		_, errs, code = runEdgegw(t, "key", "create", "--key", "file:"+filepath.Join(dir, "x"), "--type", "dsa")
		if code != 2 || !strings.Contains(errs, "p256 or rsa2048") {
			t.Fatalf("bad --type: exit %d, %q", code, errs)
		}
		_, errs, code = runEdgegw(t, "key", "csr", "--key", sw.URI("handle=0x81000100"))
		if code != 2 || !strings.Contains(errs, "--cn") {
			t.Fatalf("missing --cn: exit %d, %q", code, errs)
		}
	})
	t.Run("auto", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state")
		_, errs, code := runEdgegw(t, "key", "create", "--key", "auto", "--state-dir", state)
		if code != 0 || !strings.Contains(errs, "key auto:") {
			t.Fatalf("key create --key auto: exit %d: %s", code, errs)
		}
		if _, err := os.Stat(state); err != nil {
			t.Fatal(err)
		}
	})
}
