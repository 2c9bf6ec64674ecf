package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// edgegw runs the command line in-process and returns exit code, stdout, stderr.
func edgegw(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// copyDir copies the regular files and directories under src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pkiInitFiles are the files under pki/ that `edgegw pki init` makes and
// configs/edgegw.yaml (the packaged default) names; upstreamFiles are the two
// more the bridge names, which come from the upstream's CA
// (configs/bridged.yaml, or edgegw.yaml with its bridge uncommented).
var (
	pkiInitFiles  = []string{"pki/ca.crt", "pki/server.crt", "pki/server.key", "pki/crl.pem"}
	upstreamFiles = []string{"pki/upstream-ca.pem", "pki/gateway.crt"}
)

// uncommentBridge follows the instructions in configs/edgegw.yaml: remove the
// first '#' of every line from "#bridge:" to the end of that commented block.
func uncommentBridge(t testing.TB, conf string) string {
	t.Helper()
	lines := strings.Split(conf, "\n")
	start := slices.Index(lines, "#bridge:")
	if start < 0 {
		t.Fatalf("no line \"#bridge:\" in the default config")
	}
	n := 0
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "#"); i++ {
		lines[i] = lines[i][1:]
		n++
	}
	if n < 10 {
		t.Fatalf("commented bridge block has %d lines; want the whole section", n)
	}
	return strings.Join(lines, "\n")
}

// bridgeSection returns the lines from "bridge:" to the next top-level key.
func bridgeSection(t *testing.T, conf string) string {
	t.Helper()
	lines := strings.Split(conf, "\n")
	start := slices.Index(lines, "bridge:")
	if start < 0 {
		t.Fatalf("no top-level bridge: key")
	}
	end := start + 1
	for end < len(lines) && (lines[end] == "" || strings.HasPrefix(lines[end], " ") || strings.HasPrefix(lines[end], "#")) {
		end++
	}
	return strings.TrimSpace(strings.Join(lines[start:end], "\n"))
}

func TestCheckExampleConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conf  string // file under configs/
		edit  func(t testing.TB, conf string) string
		files []string // files the config names, made for real (writeExampleFiles)
		want  string   // after "<path>: OK "
	}{
		{"packaged default after pki init", "edgegw.yaml", nil, pkiInitFiles,
			"(2 listeners, no bridge, devices: devices.yaml, policies: policies/)"},
		{"packaged default with the bridge uncommented", "edgegw.yaml", uncommentBridge, append(slices.Clone(pkiInitFiles), upstreamFiles...),
			"(2 listeners, 2 routes, devices: devices.yaml, policies: policies/)"},
		{"bridged", "bridged.yaml", nil, append(slices.Clone(pkiInitFiles), upstreamFiles...),
			"(2 listeners, 2 routes, devices: devices.yaml, policies: policies/)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, filepath.Join("..", "..", "configs"), dir)
			cfg := filepath.Join(dir, tc.conf)
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			conf := localizeRuntimePaths(t, string(b), dir)
			if tc.edit != nil {
				conf = tc.edit(t, conf)
			}
			if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			writeExampleFiles(t, cfg, dir, tc.files)
			code, out, errOut := edgegw(t, "check", "-c", cfg)
			want := cfg + ": OK " + tc.want + "\n"
			if code != 0 || out != want || errOut != "" {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit 0, stdout %q, no stderr", code, out, errOut, want)
			}
		})
	}
}

// The bridge commented out in the packaged default is the one configs/bridged.yaml
// enables, so the checks of bridged.yaml cover what a site gets by uncommenting it.
func TestExampleBridgeSectionsAgree(t *testing.T) {
	def, err := os.ReadFile(filepath.Join("..", "..", "configs", "edgegw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bridged, err := os.ReadFile(filepath.Join("..", "..", "configs", "bridged.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(def), "\nbridge:") {
		t.Errorf("configs/edgegw.yaml enables the bridge; want it commented out (its certificates do not exist after pki init)")
	}
	if got, want := bridgeSection(t, uncommentBridge(t, string(def))), bridgeSection(t, string(bridged)); got != want {
		t.Errorf("configs/edgegw.yaml's bridge section, uncommented:\n%s\nwant the same as configs/bridged.yaml's:\n%s", got, want)
	}
}

// In the repository itself only the certificates are missing: everything
// else the example configs name is committed.
func TestCheckExampleConfigWithoutCerts(t *testing.T) {
	for _, tc := range []struct {
		conf    string
		missing []string
	}{
		{"edgegw.yaml", pkiInitFiles},
		{"bridged.yaml", append(slices.Clone(pkiInitFiles), upstreamFiles...)},
	} {
		t.Run(tc.conf, func(t *testing.T) {
			cfg := filepath.Join("..", "..", "configs", tc.conf)
			code, _, errOut := edgegw(t, "check", "-c", cfg)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != 1 || len(lines) != len(tc.missing)+1 {
				t.Fatalf("got exit %d, stderr:\n%s\nwant exit 1 and %d missing certificate files", code, errOut, len(tc.missing))
			}
			for i, f := range tc.missing {
				if !strings.HasPrefix(lines[i], cfg+":") || !strings.HasSuffix(lines[i], "/configs/"+f+": no such file") {
					t.Errorf("got line %q; want %s:LINE: KEY: .../configs/%s: no such file", lines[i], cfg, f)
				}
			}
		})
	}
}

// TestCheckJSON: check -o json reports what the text form does, as
// objects: the OK summary and counts, or each problem with its file, line,
// key and message (the text line is "FILE:LINE: KEY: MESSAGE"); the exit
// status is the text form's.
func TestCheckJSON(t *testing.T) {
	type problem struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Key     string `json:"key"`
		Message string `json:"message"`
	}
	type result struct {
		OK      bool   `json:"ok"`
		Config  string `json:"config"`
		Summary string `json:"summary"`
		Counts  *struct {
			Listeners int `json:"listeners"`
			Bridges   int `json:"bridges"`
			Routes    int `json:"routes"`
		} `json:"counts"`
		Problems []problem `json:"problems"`
		Warnings []string  `json:"warnings"`
	}
	for _, tc := range []struct{ name, cfg string }{
		{"valid (local only)", localOnlyConfig(t)},
		{"certificates missing", filepath.Join("..", "..", "configs", "edgegw.yaml")},
		{"certificates missing, bridged", filepath.Join("..", "..", "configs", "bridged.yaml")},
	} {
		cfg := tc.cfg
		t.Run(tc.name, func(t *testing.T) {
			tCode, tOut, tErr := edgegw(t, "check", "-c", cfg)
			code, out, errOut := edgegw(t, "check", "-c", cfg, "-o", "json")
			if code != tCode || errOut != "" {
				t.Fatalf("-o json: exit %d, stderr %q; want exit %d (the text form's) and no stderr", code, errOut, tCode)
			}
			var r result
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("not one JSON document: %v\n%s", err, out)
			}
			if r.Config != cfg || r.Problems == nil || r.Warnings == nil {
				t.Errorf("got config %q, problems %v, warnings %v; want %q and lists, never null", r.Config, r.Problems, r.Warnings, cfg)
			}
			if tCode == 0 {
				if !r.OK || r.Summary+"\n" != tOut || r.Counts == nil || r.Counts.Listeners != 1 || r.Counts.Bridges != 0 || r.Counts.Routes != 0 || len(r.Problems) != 0 {
					t.Errorf("got %+v; want ok, the summary %q, counts of 1 listener and no bridge, no problems", r, tOut)
				}
				return
			}
			// The text form: one line per problem, then the count.
			lines := strings.Split(strings.TrimSpace(tErr), "\n")
			if r.OK || r.Counts != nil || len(r.Problems) != len(lines)-1 || len(r.Problems) == 0 {
				t.Fatalf("got ok %v, %d problems; want not ok and the %d of the text form:\n%s", r.OK, len(r.Problems), len(lines)-1, tErr)
			}
			for i, p := range r.Problems {
				if p.File != cfg || p.Line <= 0 || p.Key == "" || !strings.HasSuffix(p.Message, ": no such file") {
					t.Errorf("problem %d: got %+v; want file %s, a line, a key and the missing file named", i, p, cfg)
				}
				if got := fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Key, p.Message); got != lines[i] {
					t.Errorf("problem %d: got %q; want the text form's %q", i, got, lines[i])
				}
			}
		})
	}
}

// localizeRuntimePaths points the directories the packaged configs give the
// daemon (state, logs, admin socket) into dir, as the check now checks them.
func localizeRuntimePaths(t testing.TB, conf, dir string) string {
	t.Helper()
	sock, err := os.MkdirTemp("", "egw") // short: a UNIX socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o750); err != nil {
		t.Fatal(err)
	}
	conf = strings.NewReplacer("/var/lib/edgegw", filepath.Join(dir, "state"), "/var/log/edgegw", filepath.Join(dir, "log"),
		"/run/edgegw", sock).Replace(conf)
	if !strings.Contains(conf, "\naudit:") { // the default is /var/log/edgegw/audit.log
		conf += "\naudit:\n  file: " + filepath.Join(dir, "log", "audit.log") + "\n"
	}
	return conf
}

// writeExampleFiles makes the certificate files an example config names,
// for real: the site PKI with `edgegw pki init` when files holds
// pkiInitFiles, and the upstream's CA, the gateway's certificate and its
// key (where key: auto finds it in state_dir) when it holds upstreamFiles.
func writeExampleFiles(t *testing.T, cfg, dir string, files []string) {
	t.Helper()
	if slices.Contains(files, pkiInitFiles[0]) {
		mustRun(t, "pki", "init", "-c", cfg, "--host", "gw.local")
	}
	if slices.Contains(files, upstreamFiles[0]) {
		up := gatewaytest.NewPKI(t, "cloud")
		gw := up.Issue(t, "plant-7-gw")
		for src, dst := range map[string]string{up.CAFile: "pki/upstream-ca.pem", gw.CertFile: "pki/gateway.crt", gw.KeyFile: "state/gateway.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			gatewaytest.WriteFile(t, filepath.Join(dir, dst), b, 0o600)
		}
	}
}

// localOnlyConfig is configs/local-only.yaml copied into a temporary
// directory with its runtime paths there: a config check passes.
func localOnlyConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "configs"), dir)
	cfg := filepath.Join(dir, "local-only.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(localizeRuntimePaths(t, string(b), dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCheckLocalOnly(t *testing.T) {
	cfg := localOnlyConfig(t)
	code, out, errOut := edgegw(t, "check", "-c", cfg)
	want := cfg + ": OK (1 listener, no bridge, devices: devices.yaml, policies: policies/)\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit 0, stdout %q", code, out, errOut, want)
	}
}

func TestCheckErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "devices.yaml"), []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "version: 1\nsite: lab\nlisteners:\n  - name: local\n    adress: \"127.0.0.1:1883\"\ndevices: devices.yaml\npolicies: policies/\n")
	two := write("two.yaml", "version: 1\nsite: lab\nlisteners:\n  - name: lan\n    address: \"0.0.0.0:1883\"\ndevices: nope.yaml\npolicies: policies/\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"typo'd key names the line", []string{"check", "-c", typo}, 1,
			typo + ":5: listeners[0]: unknown key \"adress\" (did you mean \"address\"?)\n" +
				"edgegw: 1 problem in the configuration\n"},
		{"every problem at once", []string{"check", "-c", two}, 1,
			two + ":5: listeners[0].address: \"0.0.0.0:1883\": a listener without tls must bind a loopback address (127.0.0.1, ::1 or localhost); add tls or bind 127.0.0.1\n" +
				two + ":6: devices: " + filepath.Join(dir, "nope.yaml") + ": no such file\n" +
				"edgegw: 2 problems in the configuration\n"},
		{"missing config file", []string{"check", "-c", filepath.Join(dir, "absent.yaml")}, 1,
			"edgegw: reading config: open " + filepath.Join(dir, "absent.yaml") + ": no such file or directory\n"},
		{"run refuses a bad config too", []string{"run", "-c", typo}, 1,
			typo + ":5: listeners[0]: unknown key \"adress\" (did you mean \"address\"?)\n" +
				"edgegw: 1 problem in the configuration\n"},
		{"unknown flag is a usage error", []string{"check", "--bogus"}, 2,
			"edgegw: unknown flag: --bogus (see 'edgegw check --help')\n"},
		{"bad --log-level", []string{"--log-level", "loud", "run", "-c", typo}, 2,
			"edgegw: --log-level \"loud\": want debug, info, warn or error\n"},
		{"bad --log-format", []string{"--log-format", "xml", "run", "-c", typo}, 2,
			"edgegw: --log-format \"xml\": want text or json\n"},
		{"unknown command", []string{"chek"}, 2,
			"edgegw: unknown command \"chek\" for \"edgegw\"\n\nDid you mean this?\n\tcheck\n\n"},
		{"extra argument", []string{"check", "edgegw.yaml"}, 2,
			"edgegw: unknown command \"edgegw.yaml\" for \"edgegw check\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := edgegw(t, tt.args...)
			if code != tt.wantCode || errOut != tt.wantStderr || out != "" {
				t.Errorf("got exit %d, stdout %q, stderr:\n%s\nwant exit %d, no stdout, stderr:\n%s", code, out, errOut, tt.wantCode, tt.wantStderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	want := "edgegw dev (commit dev, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := edgegw(t, args...)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%v: got exit %d, stdout %q, stderr %q; want exit 0, stdout %q", args, code, out, errOut, want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"check", "--help"}, {"version", "--help"}, {"help", "check"}} {
		code, out, errOut := edgegw(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") || errOut != "" {
			t.Errorf("%v: got exit %d, stderr %q, stdout:\n%s\nwant exit 0 and a usage text", args, code, errOut, out)
		}
	}
	_, out, _ := edgegw(t, "check", "--help")
	if !strings.Contains(out, "-c, --config string") || !strings.Contains(out, "/etc/edgegw/edgegw.yaml") {
		t.Errorf("check --help: got\n%s\nwant -c/--config with its default", out)
	}
}

// runConfig writes a config for `edgegw run` that touches nothing outside a
// temporary directory: an ephemeral loopback port, state and queue in the
// directory, no metrics.
func runConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "configs"), dir)
	body := `version: 1
site: lab
state_dir: state
listeners:
  - {name: local, address: "127.0.0.1:0"}
devices: devices.yaml
policies: policies/
store: {dir: state/queue}
metrics: {address: ""}
admin: {socket: state/admin.sock}
audit: {file: ""}
`
	p := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr gatewaytest.Buffer
	done := make(chan int, 1)
	cfg := runConfig(t)
	go func() {
		done <- execute(ctx, []string{"--log-format", "json", "run", "-c", cfg}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"gateway started"`) {
		if time.Now().After(deadline) {
			t.Fatalf("got stderr %q; want \"gateway started\" within 30s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("got exit %d; want 0 after the context ends", code)
	}
	for _, want := range []string{`"msg":"config loaded","component":"main"`, `"site":"lab"`, `"msg":"stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("got stderr %q; want it to contain %q", stderr.String(), want)
		}
	}
}

// TestBinary builds the real binary the way the Makefile does and checks the
// -ldflags injection and that SIGTERM stops `edgegw run` cleanly.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgegw")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=1.2.3-test -X main.commit=abc1234", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	want := "edgegw 1.2.3-test (commit abc1234, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if err != nil || string(out) != want {
		t.Errorf("version: got %q, %v; want %q", out, err, want)
	}

	run := exec.Command(bin, "run", "-c", runConfig(t))
	stderr, err := run.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for started := false; !started; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("edgegw run exited before \"gateway started\"")
			}
			started = strings.Contains(l, "gateway started")
		case <-timeout:
			t.Fatalf("got no \"gateway started\" line within 30s")
		}
	}
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain until EOF
	}
	if err := run.Wait(); err != nil {
		t.Errorf("after SIGTERM: got %v; want exit 0", err)
	}
}
