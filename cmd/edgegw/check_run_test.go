package main

// `edgegw check` catches what `edgegw run` refuses at start (issue 20): for
// each bad configuration, the real binary's `check` exits 1 and `run` exits
// 1 before binding anything, both with the same message; a config check
// accepts, run starts.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	}{
		{"valid", func(*testing.T, *checkRunSite) {}, ""},
		{"policy action typo", func(_ *testing.T, s *checkRunSite) {
			s.policy = strings.Replace(s.policy, `"iot:Publish"`, `"iot:Publsh"`, 1)
		}, `unknown action "iot:Publsh" (did you mean iot:Publish?)`},
		{"mosquitto_passwd file accepted", func(t *testing.T, s *checkRunSite) {
			f := filepath.Join(t.TempDir(), "pw")
			if out, err := gatewaytest.Run(t, 30*time.Second, mosqPasswd, "-c", "-b", f, "node-red", "s3cret"); err != nil {
				t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(f)
			s.passwd = string(b)
		}, ""},
		{"password file in plain text", func(_ *testing.T, s *checkRunSite) {
			s.passwd = "node-red:s3cret\n"
		}, `passwd:1: user "node-red": unknown hash format`},
		{"server cert not of its key", func(_ *testing.T, s *checkRunSite) {
			s.vals["key"] = "file:" + s.vals["otherkey"]
		}, "does not match the configured key"},
		{"server key in a TPM and a cert not of it", func(t *testing.T, s *checkRunSite) {
			uri := hwtest.StartSWTPM(t).URI("handle=0x81000124")
			mustRun(t, "key", "create", "--key", uri)
			s.vals["key"] = uri
		}, "does not match the configured key"},
		{"bridge cert not of its key", func(_ *testing.T, s *checkRunSite) {
			s.bridge = true
			s.vals["gwkey"] = "file:" + s.vals["otherkey"]
		}, "does not belong to the key"},
		{"bridge key in a PKCS11 token and a cert not of it", func(t *testing.T, s *checkRunSite) {
			uri := hwtest.StartSoftHSM(t, "gw").URI("upstream")
			mustRun(t, "key", "create", "--key", uri)
			s.bridge = true
			s.vals["gwkey"] = uri
		}, "does not belong to the key"},
		{"bridge valid", func(_ *testing.T, s *checkRunSite) { s.bridge = true }, ""},
		{"audit directory missing", func(_ *testing.T, s *checkRunSite) {
			s.vals["audit"] = filepath.Join(s.dir, "nolog", "audit.log")
		}, "nolog does not exist"},
		{"admin socket path too long", func(_ *testing.T, s *checkRunSite) {
			s.vals["socket"] = "/tmp/" + strings.Repeat("x", 120) + "/admin.sock"
		}, "path longer than 107 bytes"},
		{"queue key lost next to its queue", func(t *testing.T, s *checkRunSite) {
			s.bridge = true
			s.vals["enckey"] = "file:" + filepath.Join(s.dir, "state", "queue.key")
			gatewaytest.WriteFile(t, filepath.Join(s.vals["store"], "000001.vlog"), []byte("x"), 0o600)
		}, "store.encryption_key"},
		{"store dir not creatable", func(t *testing.T, s *checkRunSite) {
			s.bridge = true
			f := filepath.Join(s.dir, "afile")
			gatewaytest.WriteFile(t, f, []byte("x"), 0o644)
			s.vals["store"] = filepath.Join(f, "queue")
		}, "is not a directory"},
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
