package pkicmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/cmd/edgegw/cli/clitest"
	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// testDefaultConfig is -c's default in these tests: absent, as on a machine without the package.
const testDefaultConfig = "/nonexistent/edgegw.yaml"

// newPKI is `edgegw pki` on the command line c.
func newPKI(c cli.CLI) *cobra.Command {
	return New(c, testDefaultConfig, Keys{URIHelp: "Key URIs: file:PATH, tpm:..., pkcs11:...", DefaultStateDir: "/nonexistent/state"})
}

// run runs `edgegw ARGS` with the pki command through the test command line (clitest) and
// returns the exit status, stdout and stderr. The binary's own tests run the same commands
// through main's execute.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, newPKI, args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := run(t, args...)
	if code != 0 {
		t.Fatalf("edgegw %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestPKICommands(t *testing.T) {
	conf, dir, devices := pkitest.Site(t)
	out := t.TempDir()
	mustRun(t, "pki", "init", "-c", conf, "--host", "gw.local", "--host", "127.0.0.1", "--cn", "plant CA")
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatalf("init did not use the config's PKI directory: %v", err)
	}
	if code, _, errs := run(t, "pki", "init", "-c", conf); code == 0 || !strings.Contains(errs, "refusing to overwrite") {
		t.Errorf("second init: exit %d, %q", code, errs)
	}

	got := mustRun(t, "pki", "issue", "-c", conf, "temp-f01-001", "--type", "temperature", "--attr", "floor=01", "--policy", "temperature", "--out", out)
	if !strings.Contains(got, "issued temp-f01-001") {
		t.Errorf("issue output: %s", got)
	}
	crt := filepath.Join(out, "temp-f01-001.crt")
	if err := pkitest.Verify(t, dir, crt); err != nil {
		t.Fatalf("openssl verify: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(out, "temp-f01-001.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v", err)
	}
	code, _, errs := run(t, "pki", "issue", "-c", conf, "temp-f01-001", "--out", out)
	if code != 1 || !strings.Contains(errs, "--renew") {
		t.Errorf("duplicate: exit %d %q; want 1 with a --renew hint", code, errs)
	}
	mustRun(t, "pki", "issue", "-c", conf, "temp-f01-001", "--renew", "--out", out)
	if err := pkitest.Verify(t, dir, crt); err != nil {
		t.Errorf("renewed certificate: %v", err)
	}

	// sign: a CSR made by openssl on "the device".
	openssl := hwtest.Require(t, "openssl", "openssl")
	dev := t.TempDir()
	csr := filepath.Join(dev, "valve-7.csr")
	if b, err := exec.Command(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dev, "valve-7.key"), "-out", csr, "-subj", "/CN=valve-7").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v %s", err, b)
	}
	if code, _, errs := run(t, "pki", "sign", "-c", conf, csr, "--thing", "valve-8", "--out", out); code != 1 || !strings.Contains(errs, `subject CN is "valve-7" but the thing is "valve-8"`) {
		t.Errorf("mismatched sign: exit %d %q", code, errs)
	}
	mustRun(t, "pki", "sign", "-c", conf, csr, "--thing", "valve-7", "--type", "valve", "--out", out)
	if err := pkitest.Verify(t, dir, filepath.Join(out, "valve-7.crt")); err != nil {
		t.Errorf("signed CSR: %v", err)
	}

	// list, table and JSON.
	table := mustRun(t, "pki", "list", "-c", conf)
	for _, want := range []string{"SERIAL", "temp-f01-001", "superseded (superseded)", "valve-7", "gw.local"} {
		if !strings.Contains(table, want) {
			t.Errorf("list lacks %q:\n%s", want, table)
		}
	}
	var entries []pki.Entry
	if err := json.Unmarshal([]byte(mustRun(t, "pki", "list", "-c", conf, "--json")), &entries); err != nil || len(entries) != 4 {
		t.Fatalf("list --json: %d entries, %v", len(entries), err)
	}
	soon := mustRun(t, "pki", "list", "-c", conf, "--expiring", "30d", "--json")
	if strings.TrimSpace(soon) != "[]" {
		t.Errorf("--expiring 30d: %s; want []", soon)
	}
	if n := strings.Count(mustRun(t, "pki", "list", "-c", conf, "--expiring", "400d"), "\n"); n != 3 { // header + 2 devices
		t.Errorf("--expiring 400d: %d lines; want 3", n)
	}

	// revoke: openssl now refuses; the registry keeps the thing.
	regBefore, _ := os.ReadFile(devices)
	mustRun(t, "pki", "revoke", "-c", conf, "temp-f01-001", "--reason", "keyCompromise")
	if err := pkitest.Verify(t, dir, crt); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("openssl verify after revoke: %v; want revoked", err)
	}
	if regAfter, _ := os.ReadFile(devices); string(regAfter) != string(regBefore) {
		t.Error("revoke changed devices.yaml")
	}
	if code, _, errs := run(t, "pki", "revoke", "-c", conf, "temp-f01-001"); code != 0 || !strings.Contains(errs, "nothing to do") {
		t.Errorf("second revoke: exit %d %q", code, errs)
	}
	if code, _, _ := run(t, "pki", "revoke", "-c", conf, "valve-7", "--reason", "whatever"); code != 1 {
		t.Errorf("bad reason: exit %d; want 1", code)
	}
	if got := mustRun(t, "pki", "crl", "-c", conf, "--days", "7"); !strings.Contains(got, "2 revoked") {
		t.Errorf("crl: %s", got)
	}

	var reg struct {
		Things []struct {
			Name       string
			Type       string
			Attributes map[string]string
			Policies   []string
		}
	}
	b, _ := os.ReadFile(devices)
	if err := yaml.Unmarshal(b, &reg); err != nil || len(reg.Things) != 2 || reg.Things[0].Attributes["floor"] != "01" || reg.Things[1].Type != "valve" {
		t.Errorf("devices.yaml: %+v %v\n%s", reg, err, b)
	}
}

func TestPKIDirFlagsAndDefaults(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "site", "pki")
	// No config: --dir, and the registry beside the PKI directory.
	mustRun(t, "pki", "init", "--dir", dir, "--host", "localhost")
	// ... an explicit -c that does not exist is an error.
	if code, _, errs := run(t, "pki", "list", "-c", filepath.Join(root, "absent.yaml"), "--dir", dir); code != 1 || !strings.Contains(errs, "absent.yaml") {
		t.Errorf("missing -c: exit %d %q", code, errs)
	}
	code, _, errs := run(t, "pki", "issue", "--config", "/nonexistent/edgegw.yaml", "--dir", dir, "x", "--out", root)
	if code != 1 {
		t.Errorf("exit %d %s", code, errs)
	}
	// Default config absent: only --dir counts.
	c := clitest.NewCLI(context.Background(), io.Discard, io.Discard)
	f := &pkiFlags{config: filepath.Join(root, "absent-default.yaml"), dir: dir}
	o, err := f.options(app{CLI: c}, newPKI(c))
	if err != nil || o.Dir != dir || o.Devices != filepath.Join(root, "site", "devices.yaml") {
		t.Errorf("options %+v %v", o, err)
	}
	// Neither --dir nor a config: /etc/edgegw/pki, which purging the package keeps.
	f = &pkiFlags{config: filepath.Join(root, "absent-default.yaml")}
	o, err = f.options(app{CLI: c}, newPKI(c))
	if err != nil || o.Dir != "/etc/edgegw/pki" || o.Devices != "/etc/edgegw/devices.yaml" {
		t.Errorf("got dir %q, devices %q, err %v; want /etc/edgegw/pki, /etc/edgegw/devices.yaml", o.Dir, o.Devices, err)
	}
	if code, _, errs := run(t, "pki", "issue"); code != 2 || !strings.Contains(errs, "THING") {
		t.Errorf("issue without a thing: exit %d %q; want 2", code, errs)
	}
	if code, _, _ := run(t, "pki", "list", "--expiring", "soon", "--dir", dir); code != 2 {
		t.Errorf("bad --expiring: exit %d; want 2", code)
	}
}

func TestPKIIssueBatch(t *testing.T) {
	conf, dir, devices := pkitest.Site(t)
	out := t.TempDir()
	mustRun(t, "pki", "init", "-c", conf, "--host", "localhost")
	batch := filepath.Join(t.TempDir(), "things.txt")
	if err := os.WriteFile(batch, []byte("# building hq\ntemp-1 temperature floor=01\n\nhum-1 humidity floor=02 wing=b  # comment\nplain-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "pki", "issue", "-c", conf, "--batch", batch, "--attr", "building=hq", "--policy", "sensors", "--out", out)
	var reg struct {
		Things []struct {
			Name       string
			Type       string
			Attributes map[string]string
			Policies   []string
		}
	}
	b, _ := os.ReadFile(devices)
	if err := yaml.Unmarshal(b, &reg); err != nil || len(reg.Things) != 3 {
		t.Fatalf("registry: %+v %v", reg, err)
	}
	h := reg.Things[1]
	if h.Name != "hum-1" || h.Type != "humidity" || h.Attributes["wing"] != "b" || h.Attributes["building"] != "hq" || h.Policies[0] != "sensors" {
		t.Errorf("hum-1: %+v", h)
	}
	if reg.Things[0].Attributes["floor"] != "01" || reg.Things[0].Attributes["wing"] != "" {
		t.Errorf("temp-1 attributes leaked between lines: %+v", reg.Things[0])
	}
	for _, th := range []string{"temp-1", "hum-1", "plain-1"} {
		if err := pkitest.Verify(t, dir, filepath.Join(out, th+".crt")); err != nil {
			t.Error(err)
		}
	}
	if err := os.WriteFile(batch, []byte("ok-1\nbad/name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "pki", "issue", "-c", conf, "--batch", batch, "--out", out); code != 1 || !strings.Contains(errs, "things.txt:2") {
		t.Errorf("bad batch: exit %d %q; want the file:line", code, errs)
	}
}

// TestPKIHelperProcess is not a test: TestPKIConcurrentProcesses runs this test binary as
// `edgegw` with the arguments in EDGEGW_PKI_HELPER_ARGS.
func TestPKIHelperProcess(t *testing.T) {
	raw := os.Getenv("EDGEGW_PKI_HELPER_ARGS")
	if raw == "" {
		return // not a helper run: nothing to do
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(clitest.Execute(context.Background(), newPKI, args, os.Stdout, os.Stderr))
}

// Several processes issuing at once leave consistent state: every serial in issued.json,
// every thing in devices.yaml.
func TestPKIConcurrentProcesses(t *testing.T) {
	conf, dir, devices := pkitest.Site(t)
	mustRun(t, "pki", "init", "-c", conf, "--host", "localhost")
	out := t.TempDir()
	const procs, per = 6, 3
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"pki", "issue", "-c", conf, "--out", out}
			for i := range per {
				args = append(args, fmt.Sprintf("p%d-t%d", p, i))
			}
			raw, _ := json.Marshal(args)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPKIHelperProcess$")
			cmd.Env = append(os.Environ(), "EDGEGW_PKI_HELPER_ARGS="+string(raw))
			if b, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("process %d: %v\n%s", p, err, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, err := pki.List(pki.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	serials := map[string]bool{}
	for _, e := range entries {
		if e.Kind == pki.KindDevice {
			serials[e.Serial] = true
		}
	}
	var reg struct{ Things []struct{ Name string } }
	b, _ := os.ReadFile(devices)
	if err := yaml.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	if len(serials) != procs*per || len(reg.Things) != procs*per {
		t.Fatalf("issued.json: %d serials, devices.yaml: %d things; want %d each", len(serials), len(reg.Things), procs*per)
	}
	for p := range procs {
		for i := range per {
			if err := pkitest.Verify(t, dir, filepath.Join(out, fmt.Sprintf("p%d-t%d.crt", p, i))); err != nil {
				t.Error(err)
			}
		}
	}
}
