package main

// Packaging acceptance (issue 9): the cross builds, the three .deb packages (contents, control
// data, conffiles, maintainer scripts), lintian, the arm binaries under qemu, the 32-bit queue
// under qemu (`edgegw queue smoke` of the shipped armhf binary, and the store's tests), and the
// amd64 package installed with dpkg on this machine (as root, purged again).
//
// Heavy (cold: several minutes of cross builds; warm: about a minute), so it does not run
// under -short; `make test` and `make test-packaging` run it.

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// packagingTools: command -> Debian package that provides it.
var packagingTools = []struct{ cmd, pkg string }{
	{"make", "make"},
	{"dpkg-deb", "dpkg"},
	{"lintian", "lintian"},
	{"qemu-aarch64-static", "qemu-user-static"},
	{"qemu-arm-static", "qemu-user-static"},
	{"aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"},
	{"systemd-analyze", "systemd"},
	{"gzip", "gzip"},
	{"runuser", "util-linux"},
}

var debArches = []string{"amd64", "arm64", "armhf"}

func TestPackaging(t *testing.T) {
	if testing.Short() {
		t.Skip("packaging tests build three architectures; run by `make test` and `make test-packaging`")
	}
	for _, tool := range packagingTools {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			t.Fatalf("%s not found: run `make deps` (apt-get install %s)", tool.cmd, tool.pkg)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// One build per run: cross (three binaries) and the three packages.
	run(t, root, nil, "make", "--no-print-directory", "debs")
	debs := map[string]string{}
	for _, arch := range debArches {
		m, _ := filepath.Glob(filepath.Join(root, "dist", "edgegw_*_"+arch+".deb"))
		if len(m) != 1 {
			t.Fatalf("dist/edgegw_*_%s.deb: found %v; want exactly one", arch, m)
		}
		debs[arch] = m[0]
	}

	for _, arch := range debArches {
		t.Run("contents/"+arch, func(t *testing.T) { checkDebContents(t, debs[arch], arch) })
	}
	for _, arch := range debArches {
		t.Run("lintian/"+arch, func(t *testing.T) { checkLintian(t, debs[arch], arch) })
	}
	t.Run("binaries", func(t *testing.T) { checkBinaries(t, root) })
	t.Run("qemu/arm64", func(t *testing.T) {
		out := run(t, root, nil, "qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", "bin/arm64/edgegw", "version")
		if !strings.HasPrefix(out, "edgegw ") || !strings.Contains(out, "linux/arm64") {
			t.Errorf("edgegw version under qemu-aarch64 printed %q; want \"edgegw ... linux/arm64)\"", out)
		}
	})
	t.Run("qemu/armhf", func(t *testing.T) {
		out := run(t, root, nil, "qemu-arm-static", "-cpu", "arm1176", "bin/armhf/edgegw", "version")
		if !strings.HasPrefix(out, "edgegw ") || !strings.Contains(out, "linux/arm)") {
			t.Errorf("edgegw version under qemu-arm (ARMv6) printed %q; want \"edgegw ... linux/arm)\"", out)
		}
		// PKCS#11 is compiled out of the pure Go build and says so.
		cmd := exec.Command("qemu-arm-static", "-cpu", "arm1176", "bin/armhf/edgegw", "key", "info",
			"--key", "pkcs11:token=gw;object=gw?module-path=/nonexistent.so&pin-source=/nonexistent")
		cmd.Dir = root
		out2, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out2), "this build has no PKCS#11 support") {
			t.Errorf("armhf key info on a pkcs11: URI: err %v, output %q; want a failure saying the build has no PKCS#11 support", err, out2)
		}
	})
	t.Run("qemu/armhf-queue-smoke", func(t *testing.T) {
		// 32-bit Badger on ARMv6 in the binary the package ships: enqueue 5000 (group commit),
		// reopen, drain in order with Next+Ack, reopen empty; then the same encrypted.
		key := filepath.Join(t.TempDir(), "queue.key")
		if err := os.WriteFile(key, bytes.Repeat([]byte{0x5a}, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, extra := range [][]string{nil, {"--encryption-key", "file:" + key}} {
			dir := filepath.Join(t.TempDir(), "queue")
			args := append([]string{"-cpu", "arm1176", "bin/armhf/edgegw", "--log-level", "warn", "queue", "smoke", "--dir", dir, "-n", "5000"}, extra...)
			out := run(t, root, nil, "qemu-arm-static", args...)
			if !strings.HasPrefix(out, "queue smoke: ok: 5000 messages ") || !strings.Contains(out, "(linux/arm, ") {
				t.Errorf("qemu-arm-static %s printed %q; want \"queue smoke: ok: 5000 messages ... (linux/arm, ...\"", strings.Join(args, " "), out)
			}
		}
	})
	t.Run("qemu/arm64-queue-smoke", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "queue")
		out := run(t, root, nil, "qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", "bin/arm64/edgegw", "--log-level", "warn", "queue", "smoke", "--dir", dir, "-n", "5000")
		if !strings.HasPrefix(out, "queue smoke: ok: 5000 messages ") || !strings.Contains(out, "(linux/arm64, ") {
			t.Errorf("queue smoke under qemu-aarch64 printed %q; want \"queue smoke: ok: 5000 messages ... (linux/arm64, ...\"", out)
		}
	})
	t.Run("qemu/armhf-queue", func(t *testing.T) {
		// 32-bit Badger on ARMv6: the store's own tests, cross-compiled, under qemu.
		bin := filepath.Join(t.TempDir(), "store-armhf.test")
		run(t, root, []string{"GOOS=linux", "GOARCH=arm", "GOARM=6", "CGO_ENABLED=0"},
			"go", "test", "-c", "-o", bin, "./store")
		// Left out here: the crash tests (TestCrash*: kill -9 of a child) re-execute their
		// own binary, which fails with "exec format error" under qemu without binfmt_misc.
		// TestDiskFull runs: its 32-bit panic was ristretto's allocator corrupting SSTs (not
		// disk-full), which the store's 32-bit badger profile avoids (store/store.go).
		// TestARMv6 is the host-side version of this very check (it cross-compiles
		// store/internal/smoke with the go tool and runs it under qemu): nothing to run inside.
		out := run(t, root, nil, "qemu-arm-static", "-cpu", "arm1176", bin, "-test.short", "-test.count=1",
			"-test.skip", "^(TestCrash.*|TestARMv6)$")
		if !strings.Contains(out, "PASS") {
			t.Errorf("store tests under qemu-arm (ARMv6): %s", out)
		}
	})
	t.Run("install/amd64", func(t *testing.T) { checkInstall(t, debs["amd64"]) })
}

// run runs name args in dir and returns stdout; on failure it stops the test with both outputs.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func checkDebContents(t *testing.T, deb, arch string) {
	// dpkg-deb -c: "-rwxr-xr-x root/root 123 2026-11-22 02:39 ./usr/bin/edgegw"
	files := map[string]string{} // path -> mode and owner
	for _, line := range strings.Split(strings.TrimSpace(run(t, ".", nil, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q: want mode owner size date time path", line)
		}
		files[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
	}
	for path, want := range map[string]string{
		"/usr/bin/edgegw":                           "-rwxr-xr-x root/root",
		"/lib/systemd/system/edgegw.service":        "-rw-r--r-- root/root",
		"/etc/edgegw/edgegw.yaml":                   "-rw-r--r-- root/root",
		"/etc/edgegw/devices.yaml":                  "-rw-r--r-- root/root",
		"/usr/share/man/man1/edgegw.1.gz":           "-rw-r--r-- root/root",
		"/usr/share/man/man1/edgegw-run.1.gz":       "-rw-r--r-- root/root",
		"/usr/share/doc/edgegw/copyright":           "-rw-r--r-- root/root",
		"/usr/share/doc/edgegw/changelog.Debian.gz": "-rw-r--r-- root/root",
		"/usr/share/lintian/overrides/edgegw":       "-rw-r--r-- root/root",
	} {
		if got, ok := files[path]; !ok {
			t.Errorf("%s: %s missing", filepath.Base(deb), path)
		} else if got != want {
			t.Errorf("%s: %s is %q; want %q", filepath.Base(deb), path, got, want)
		}
	}
	var etc, policies []string
	for path, mode := range files {
		if strings.HasPrefix(path, "/etc/") && !strings.HasPrefix(mode, "d") {
			etc = append(etc, path)
			if strings.HasPrefix(path, "/etc/edgegw/policies/") && strings.HasSuffix(path, ".json") {
				policies = append(policies, path)
			}
		}
	}
	if len(policies) == 0 {
		t.Errorf("%s: no /etc/edgegw/policies/*.json", filepath.Base(deb))
	}

	// Every file under /etc is a conffile, and nothing else is.
	conffiles := strings.Fields(run(t, ".", nil, "dpkg-deb", "-I", deb, "conffiles"))
	slices.Sort(etc)
	slices.Sort(conffiles)
	if !slices.Equal(conffiles, etc) {
		t.Errorf("%s: conffiles %v; want every file under /etc: %v", filepath.Base(deb), conffiles, etc)
	}

	info := run(t, ".", nil, "dpkg-deb", "-I", deb)
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if !regexp.MustCompile(`(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+` + script + `\s+#!/bin/sh$`).MatchString(info) {
			t.Errorf("%s: dpkg-deb -I lists no executable %s shell script:\n%s", filepath.Base(deb), script, info)
		}
	}
	field := func(name string) string {
		return strings.TrimSpace(run(t, ".", nil, "dpkg-deb", "-f", deb, name))
	}
	if got := field("Architecture"); got != arch {
		t.Errorf("%s: Architecture %q; want %q", filepath.Base(deb), got, arch)
	}
	if got := field("Version"); !strings.HasPrefix(filepath.Base(deb), "edgegw_"+got+"_") {
		t.Errorf("%s: Version %q does not match the file name", filepath.Base(deb), got)
	}
	depends := field("Depends")
	for _, want := range []string{"adduser", "tpm-udev"} {
		if !strings.Contains(depends, want) {
			t.Errorf("%s: Depends %q lacks %s", filepath.Base(deb), depends, want)
		}
	}
	if hasLibc, wantLibc := strings.Contains(depends, "libc6"), arch != "armhf"; hasLibc != wantLibc {
		t.Errorf("%s: Depends %q: libc6 listed = %v; want %v (only the cgo builds link glibc)", filepath.Base(deb), depends, hasLibc, wantLibc)
	}
}

// checkLintian: no error, warning or unexpected override; the armhf package uses exactly the one
// documented override (statically-linked-binary), the cgo builds use none.
func checkLintian(t *testing.T, deb, arch string) {
	// --show-overrides lists the overrides used (O:); the overridden tag is an error, so the
	// exit status is left to the parsing below (--fail-on warning: an E: line fails there).
	cmd := exec.Command("lintian", "--show-overrides", "--fail-on", "warning", deb)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var overrides []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		switch {
		case line == "", strings.HasPrefix(line, "N: "), line == "N:":
			// notes: the override's comment
		case strings.HasPrefix(line, "O: "):
			overrides = append(overrides, line)
		default:
			t.Errorf("lintian %s: %s", filepath.Base(deb), line)
		}
	}
	if err != nil {
		t.Errorf("lintian %s: %v\n%s%s", filepath.Base(deb), err, stdout.String(), stderr.String())
	}
	var want []string
	if arch == "armhf" {
		want = []string{"O: edgegw: statically-linked-binary [usr/bin/edgegw]"}
	}
	if !slices.Equal(overrides, want) {
		t.Errorf("lintian %s: overrides used %q; want %q", filepath.Base(deb), overrides, want)
	}
}

// checkBinaries: the machine, linking and PIE-ness of each cross build.
func checkBinaries(t *testing.T, root string) {
	for _, tc := range []struct {
		arch    string
		machine elf.Machine
		dynamic bool // linked against glibc (cgo, PKCS#11); PIE
	}{
		{"amd64", elf.EM_X86_64, true},
		{"arm64", elf.EM_AARCH64, true},
		{"armhf", elf.EM_ARM, false},
	} {
		f, err := elf.Open(filepath.Join(root, "bin", tc.arch, "edgegw"))
		if err != nil {
			t.Fatalf("bin/%s/edgegw: %v", tc.arch, err)
		}
		interp := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		if f.Machine != tc.machine || interp != tc.dynamic || (f.Type == elf.ET_DYN) != tc.dynamic {
			t.Errorf("bin/%s/edgegw: machine %v, dynamic %v, type %v; want %v, dynamic %v (PIE when dynamic)",
				tc.arch, f.Machine, interp, f.Type, tc.machine, tc.dynamic)
		}
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
			t.Errorf("bin/%s/edgegw is not stripped (lintian: unstripped-binary-or-object)", tc.arch)
		}
		f.Close()
	}
}

// checkInstall installs the amd64 package on this machine, checks what postinst did, the unit,
// `edgegw pki init` + `edgegw check` on the installed default config, an upgrade over a local
// edit (conffiles kept) and the purge. It restores the machine: the package is purged.
func checkInstall(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		t.Fatalf("installing the package needs root: run the tests as root (CI does), e.g. sudo make test-packaging")
	}
	// ${Status} is "want ok state"; after a purge dpkg may still list "unknown ok not-installed".
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "edgegw").Output(); err == nil && !strings.HasSuffix(strings.TrimSpace(string(out)), " not-installed") {
		t.Fatalf("edgegw is already installed on this machine (%s); this test installs and purges it: run `dpkg --purge edgegw` first", out)
	}
	for _, p := range []string{"/etc/edgegw", "/var/lib/edgegw", "/var/log/edgegw"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists but edgegw is not installed; this test would delete it on purge: move it away first", p)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "edgegw").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge edgegw: %v\n%s", err, out)
		}
		os.RemoveAll("/etc/edgegw/pki") // made by pki init below, not the package's
		os.Remove("/etc/edgegw")
	})
	run(t, ".", nil, "dpkg", "-i", deb)

	u := run(t, ".", nil, "id", "edgegw")
	if !strings.Contains(u, "(edgegw)") || !strings.Contains(u, "(tss)") {
		t.Errorf("id edgegw: %q; want user and group edgegw, member of tss", u)
	}
	for path, want := range map[string]string{
		"/var/lib/edgegw": "700 edgegw:edgegw",
		"/var/log/edgegw": "750 edgegw:edgegw",
	} {
		if got := strings.TrimSpace(run(t, ".", nil, "stat", "-c", "%a %U:%G", path)); got != want {
			t.Errorf("%s: %q; want %q", path, got, want)
		}
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/edgegw.service"); err != nil {
		t.Errorf("edgegw.service not enabled: %v", err)
	}
	run(t, ".", nil, "systemd-analyze", "verify", "/lib/systemd/system/edgegw.service")
	if out := run(t, ".", nil, "edgegw", "version"); !strings.HasPrefix(out, "edgegw ") {
		t.Errorf("edgegw version: %q", out)
	}

	// The installed default config passes the check once the site PKI exists, also as the
	// daemon's user (ExecReload runs `edgegw check` as edgegw): pki init, run as root, hands
	// the directory and server.key to edgegw and keeps ca.key root's.
	run(t, ".", nil, "edgegw", "pki", "init", "-c", "/etc/edgegw/edgegw.yaml")
	for path, want := range map[string]string{
		"/etc/edgegw/pki":            "750 root:edgegw",
		"/etc/edgegw/pki/server.key": "600 edgegw:edgegw",
		"/etc/edgegw/pki/ca.key":     "600 root:root",
		"/etc/edgegw/pki/server.crt": "644 root:root",
		"/etc/edgegw/pki/ca.crt":     "644 root:root",
		"/etc/edgegw/pki/crl.pem":    "644 root:root",
	} {
		if got := strings.TrimSpace(run(t, ".", nil, "stat", "-c", "%a %U:%G", path)); got != want {
			t.Errorf("after pki init %s: %q; want %q", path, got, want)
		}
	}
	if out, err := exec.Command("edgegw", "check", "-c", "/etc/edgegw/edgegw.yaml").CombinedOutput(); err != nil {
		t.Errorf("edgegw check on the installed default config after pki init: %v\n%s", err, out)
	}
	if out, err := exec.Command("runuser", "-u", "edgegw", "--", "edgegw", "check", "-c", "/etc/edgegw/edgegw.yaml").CombinedOutput(); err != nil {
		t.Errorf("runuser -u edgegw -- edgegw check on the installed default config after pki init: %v\n%s", err, out)
	}

	// Upgrade (same package again) keeps a locally edited conffile.
	const edit = "# edited on site by the upgrade test\n"
	f, err := os.OpenFile("/etc/edgegw/edgegw.yaml", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(edit); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, ".", nil, "dpkg", "-i", "--force-confold", deb)
	if b, err := os.ReadFile("/etc/edgegw/edgegw.yaml"); err != nil || !strings.HasSuffix(string(b), edit) {
		t.Errorf("after the upgrade /etc/edgegw/edgegw.yaml lost the local edit (err %v)", err)
	}

	// Purge removes state, logs and the user; remove alone would keep them.
	run(t, ".", nil, "dpkg", "--purge", "edgegw")
	for _, p := range []string{"/var/lib/edgegw", "/var/log/edgegw", "/usr/bin/edgegw"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("after purge %s still exists", p)
		}
	}
	if err := exec.Command("id", "edgegw").Run(); err == nil {
		t.Errorf("after purge the user edgegw still exists")
	}
}
