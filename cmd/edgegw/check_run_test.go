package main

// `edgegw check` catches what `edgegw run` refuses at start (issue 20): for
// each bad configuration, the real binary's `check` exits 1 and `run` exits
// 1 before binding anything, both with the same message; a config check
// accepts, run starts.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/hw/hwtest"
)

// checkRunSite is a valid local-broker site in dir, with a bridge section
// when bridge is set; mutate edits the files before they are written.
type checkRunSite struct {
	dir, conf string
	site, up  *gatewaytest.PKI
	vals      map[string]string
	policy    string
	passwd    string // password file content ("" = none)
	bridge    bool
}

func newCheckRunSite(t *testing.T) *checkRunSite {
	s := &checkRunSite{dir: t.TempDir(), site: gatewaytest.NewPKI(t, "site"), up: gatewaytest.NewPKI(t, "cloud")}
	gw := s.up.Issue(t, "plant-7-gw")
	other := s.up.Issue(t, "someone-else")
	s.vals = map[string]string{
		"addr": gatewaytest.FreeAddr(t), "ca": s.site.CAFile, "cert": s.site.ServerCert, "key": "file:" + s.site.ServerKey, "crl": s.site.CRLFile,
		"audit": filepath.Join(s.dir, "log", "audit.log"), "store": filepath.Join(s.dir, "state", "queue"),
		"upca": s.up.CAFile, "gwcert": gw.CertFile, "gwkey": "file:" + gw.KeyFile, "otherkey": other.KeyFile,
	}
	s.policy = gatewaytest.SensorPolicy
	return s
}

func (s *checkRunSite) write(t *testing.T) {
	v := s.vals
	pw := ""
	if s.passwd != "" {
		gatewaytest.WriteFile(t, filepath.Join(s.dir, "passwd"), []byte(s.passwd), 0o600)
		pw = ", password_file: passwd"
	}
	bridge := ""
	if s.bridge {
		bridge = fmt.Sprintf(`bridge:
  upstreams: [{url: "mqtts://127.0.0.1:1", server_name: localhost}]
  client_id: plant-7-gw
  tls: {ca: %s, cert: %s, key: %q}
  routes:
    - {name: telemetry, topic: "sensors/#", direction: out}
`, v["upca"], v["gwcert"], v["gwkey"])
	}
	conf := fmt.Sprintf(`version: 1
site: plant-7
state_dir: %s
listeners:
  - {name: lan, address: %q%s, tls: {ca: %s, cert: %s, key: %q, crl: %s}}
devices: devices.yaml
policies: policies/
store: {dir: %s, min_free: 1MiB, encryption_key: %q}
metrics: {address: ""}
admin: {socket: %q}
audit: {file: %s}
%s`, filepath.Join(s.dir, "state"), v["addr"], pw, v["ca"], v["cert"], v["key"], v["crl"], v["store"], v["enckey"], v["socket"], v["audit"], bridge)
	s.conf = filepath.Join(s.dir, "edgegw.yaml")
	gatewaytest.WriteFile(t, s.conf, []byte(conf), 0o644)
	gatewaytest.WriteSiteFiles(t, s.dir, gatewaytest.Registry, map[string]string{"sensor": s.policy, "monitor": gatewaytest.MonitorPolicy})
}

// edgegwBin runs the binary; a run still going after within is stopped
// (SIGTERM) and reported as started.
func edgegwBin(t *testing.T, within time.Duration, args ...string) (code int, stderr string, started bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Edgegw(t), args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var errBuf gatewaytest.Buffer
	cmd.Stderr = &errBuf
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return 0, errBuf.String(), true
	case errors.As(err, &ee):
		return ee.ExitCode(), errBuf.String(), false
	case err != nil:
		t.Fatalf("running edgegw %v: %v", args, err)
	}
	return 0, errBuf.String(), false
}

// refusal is the "edgegw: ..." message at the end of stderr.
func refusal(stderr string) string {
	i := strings.LastIndex("\n"+stderr, "\nedgegw: ")
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(stderr[i:])
}

func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	mosqPasswd := gatewaytest.Need(t, "mosquitto_passwd", "mosquitto")
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, s *checkRunSite)
		want   string // in the refusal; "" = both accept
		// runDenies: run starts anyway and logs want at ERROR, denying only
		// what the broken file attaches (a bad policy file must not take the
		// other policies down), while check refuses it.
		runDenies bool
	}{
		{"valid", func(*testing.T, *checkRunSite) {}, "", false},
		{"policy action typo", func(_ *testing.T, s *checkRunSite) {
			s.policy = strings.Replace(s.policy, `"iot:Publish"`, `"iot:Publsh"`, 1)
		}, `unknown action "iot:Publsh" (did you mean iot:Publish?)`, true},
		{"mosquitto_passwd file accepted", func(t *testing.T, s *checkRunSite) {
			f := filepath.Join(t.TempDir(), "pw")
			if out, err := gatewaytest.Run(t, 30*time.Second, mosqPasswd, "-c", "-b", f, "node-red", "s3cret"); err != nil {
				t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(f)
			s.passwd = string(b)
		}, "", false},
		{"password file in plain text", func(_ *testing.T, s *checkRunSite) {
			s.passwd = "node-red:s3cret\n"
		}, `passwd:1: user "node-red": unknown hash format`, false},
		{"server cert not of its key", func(_ *testing.T, s *checkRunSite) {
			s.vals["key"] = "file:" + s.vals["otherkey"]
		}, "does not match the configured key", false},
		{"server key in a TPM and a cert not of it", func(t *testing.T, s *checkRunSite) {
			uri := hwtest.StartSWTPM(t).URI("handle=0x81000124")
			mustRun(t, "key", "create", "--key", uri)
			s.vals["key"] = uri
		}, "does not match the configured key", false},
		{"bridge cert not of its key", func(_ *testing.T, s *checkRunSite) {
			s.bridge = true
			s.vals["gwkey"] = "file:" + s.vals["otherkey"]
		}, "does not belong to the key", false},
		{"bridge key in a PKCS11 token and a cert not of it", func(t *testing.T, s *checkRunSite) {
			uri := hwtest.StartSoftHSM(t, "gw").URI("upstream")
			mustRun(t, "key", "create", "--key", uri)
			s.bridge = true
			s.vals["gwkey"] = uri
		}, "does not belong to the key", false},
		{"bridge valid", func(_ *testing.T, s *checkRunSite) { s.bridge = true }, "", false},
		{"audit directory missing", func(_ *testing.T, s *checkRunSite) {
			s.vals["audit"] = filepath.Join(s.dir, "nolog", "audit.log")
		}, "nolog does not exist", false},
		{"admin socket path too long", func(_ *testing.T, s *checkRunSite) {
			s.vals["socket"] = "/tmp/" + strings.Repeat("x", 120) + "/admin.sock"
		}, "path longer than 107 bytes", false},
		{"queue key lost next to its queue", func(t *testing.T, s *checkRunSite) {
			s.bridge = true
			s.vals["enckey"] = "file:" + filepath.Join(s.dir, "state", "queue.key")
			gatewaytest.WriteFile(t, filepath.Join(s.vals["store"], "000001.vlog"), []byte("x"), 0o600)
		}, "store.encryption_key", false},
		{"store dir not creatable", func(t *testing.T, s *checkRunSite) {
			s.bridge = true
			f := filepath.Join(s.dir, "afile")
			gatewaytest.WriteFile(t, f, []byte("x"), 0o644)
			s.vals["store"] = filepath.Join(f, "queue")
		}, "is not a directory", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCheckRunSite(t)
			if err := os.MkdirAll(filepath.Join(s.dir, "log"), 0o750); err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, s)
			s.write(t)
			cCode, cErr, _ := edgegwBin(t, 60*time.Second, "check", "-c", s.conf)
			rCode, rErr, started := edgegwBin(t, 8*time.Second, "run", "-c", s.conf)
			if tc.want == "" {
				if cCode != 0 || !started {
					t.Fatalf("check exit %d, run started %v; want 0 and started\ncheck: %s\nrun: %s", cCode, started, cErr, rErr)
				}
				return
			}
			if tc.runDenies {
				if cCode != 1 || !started || !strings.Contains(cErr, tc.want) {
					t.Fatalf("check exit %d, run started %v; want check to refuse with %q and run to start\ncheck: %s\nrun: %s", cCode, started, tc.want, cErr, rErr)
				}
				if !strings.Contains(rErr, "level=ERROR") || !strings.Contains(rErr, strings.ReplaceAll(tc.want, `"`, `\"`)) {
					t.Errorf("run log: want an ERROR line with %q\n%s", tc.want, rErr)
				}
				return
			}
			if cCode != 1 || rCode != 1 {
				t.Fatalf("check exit %d, run exit %d (started %v); want 1 and 1\ncheck: %s\nrun: %s", cCode, rCode, started, cErr, rErr)
			}
			cMsg, rMsg := refusal(cErr), refusal(rErr)
			if !strings.Contains(cMsg, tc.want) {
				t.Errorf("check says %q; want it to contain %q\n%s", cMsg, tc.want, cErr)
			}
			if cMsg != rMsg {
				t.Errorf("check says %q; run says %q; want the same", cMsg, rMsg)
			}
		})
	}
}

// TestCheckAndRunAsDaemonUser: run by hand as an unprivileged user (here
// nobody, standing for edgegw) without /run/edgegw, check and run refuse
// with the same message saying to use systemd or create the directory.
func TestCheckAndRunAsDaemonUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test switches to the user nobody: run it as root (make test runs as root in CI)")
	}
	s := newCheckRunSite(t)
	if err := os.MkdirAll(filepath.Join(s.dir, "log"), 0o750); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir() // root's, 0755 below: stands for /run
	s.vals["socket"] = filepath.Join(parent, "edgegw", "admin.sock")
	s.write(t)
	// Everything belongs to nobody, as /etc/edgegw's files to edgegw; the
	// socket's parent stays root's, as /run.
	const nobody = 65534
	for _, root := range []string{s.dir, s.site.Dir, s.up.Dir} {
		if err := os.Chmod(filepath.Dir(root), 0o755); err != nil {
			t.Fatal(err)
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(parent), 0o755); err != nil {
		t.Fatal(err)
	}
	// The binary where nobody may run it.
	binDir := t.TempDir()
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(gatewaytest.Edgegw(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "edgegw")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(within time.Duration, args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Dir = "/"
		var errBuf gatewaytest.Buffer
		cmd.Stderr = &errBuf
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		var ee *exec.ExitError
		if ctx.Err() != nil {
			t.Fatalf("edgegw %v as nobody still running after %v:\n%s", args, within, errBuf.String())
		}
		if errors.As(err, &ee) {
			return ee.ExitCode(), errBuf.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, errBuf.String()
	}
	cCode, cErr := asNobody(60*time.Second, "check", "-c", s.conf)
	rCode, rErr := asNobody(30*time.Second, "run", "-c", s.conf)
	want := "start the daemon with systemd (systemctl start edgegw: the unit's RuntimeDirectory= creates it)"
	if cCode != 1 || rCode != 1 || !strings.Contains(refusal(cErr), want) {
		t.Fatalf("check exit %d, run exit %d; want 1 and 1 and %q\ncheck: %s\nrun: %s", cCode, rCode, want, cErr, rErr)
	}
	if refusal(cErr) != refusal(rErr) {
		t.Errorf("check says %q; run says %q; want the same", refusal(cErr), refusal(rErr))
	}
	if _, err := os.Stat(filepath.Dir(s.vals["socket"])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket directory after check and run: %v; want none created", err)
	}
}
