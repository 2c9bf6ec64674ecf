package shadowcmd

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/cmd/edgegw/cli/clitest"
)

// testCLI is clitest's command line plus the admin socket: --socket, else
// none (these tests always name it).
type testCLI struct{ cli.CLI }

func (testCLI) AdminSocket(flag, _ string, _ bool) (string, error) {
	if flag == "" {
		return "", errors.New("no --socket")
	}
	return flag, nil
}
func (testCLI) DefaultAdminSocket() string { return "/nonexistent/admin.sock" }

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, func(c cli.CLI) *cobra.Command { return New(testCLI{c}, "/nonexistent/edgegw.yaml") }, args...)
}

// request is what the fake daemon was asked.
type request struct{ method, path, query, body string }

// fakeDaemon serves the admin socket's shadow paths on a real unix socket:
// each request is recorded and answered with the status and document of
// answer. The end-to-end tests (cmd/edgegw/shadow_e2e_test.go) ask the real
// daemon; this one checks what the command sends and prints.
func fakeDaemon(t *testing.T, answer func(r request) (int, string)) (socket string, got chan request) {
	t.Helper()
	dir, err := os.MkdirTemp("", "shadowcmd") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket = filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	got = make(chan request, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{r.Method, r.URL.Path, r.URL.RawQuery, string(b)}
		got <- req
		code, doc := answer(req)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, doc)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return socket, got
}

func TestShadowCommand(t *testing.T) {
	const doc = `{"state":{"desired":{"power":"on","level":{"max":3}},"reported":{"power":"off"},"delta":{"power":"on"}},"version":7,"timestamp":1780000000}`
	socket, got := fakeDaemon(t, func(r request) (int, string) {
		switch {
		case strings.HasSuffix(r.path, "/missing"):
			return http.StatusNotFound, `{"code":404,"message":"No shadow exists with name: 'missing'"}`
		case r.path == "/shadows/lamp-1":
			return http.StatusOK, `{"thing":"lamp-1","named":["config","firmware"]}`
		case r.method == http.MethodDelete:
			return http.StatusOK, `{"version":7,"timestamp":1780000000}`
		}
		return http.StatusOK, doc
	})
	tests := []struct {
		name   string
		args   []string
		code   int
		want   request  // what the daemon is asked (method "": nothing)
		stdout []string // substrings
		stderr string
	}{
		{"get", []string{"get", "lamp-1"}, 0, request{method: "GET", path: "/shadow/lamp-1"},
			[]string{"classic shadow of lamp-1, version 7, at 2026-05-28T", "desired:\n  level.max = 3\n  power = \"on\"\n", "reported:\n  power = \"off\"\n", "delta:\n  power = \"on\"\n"}, ""},
		{"get named as JSON", []string{"get", "lamp-1", "--name", "config", "-o", "json"}, 0, request{method: "GET", path: "/shadow/lamp-1", query: "name=config"},
			[]string{"{\n  \"state\": {\n", "\"version\": 7"}, ""},
		{"update", []string{"update", "lamp-1", `{"state":{"desired":{"power":"on"}}}`}, 0,
			request{method: "POST", path: "/shadow/lamp-1", body: `{"state":{"desired":{"power":"on"}}}`}, []string{"classic shadow of lamp-1 updated, version 7"}, ""},
		{"delete", []string{"delete", "lamp-1"}, 0, request{method: "DELETE", path: "/shadow/lamp-1"},
			[]string{"classic shadow of lamp-1 deleted, version 7", "the version is kept"}, ""},
		{"list", []string{"list", "lamp-1"}, 0, request{method: "GET", path: "/shadows/lamp-1"}, []string{"config\nfirmware\n"}, ""},
		{"refused", []string{"get", "missing"}, 1, request{method: "GET", path: "/shadow/missing"}, nil,
			"shadow get missing: refused: 404 No shadow exists with name: 'missing'"},
		{"document on get", []string{"get", "lamp-1", "{}"}, 2, request{}, nil, "shadow get takes no document"},
		{"update without a document", []string{"update", "lamp-1"}, 2, request{}, nil, "give the update document as an argument or with --file"},
		{"list with --name", []string{"list", "lamp-1", "--name", "x"}, 2, request{}, nil, "--name does not apply"},
		{"unknown operation", []string{"patch", "lamp-1"}, 2, request{}, nil, `shadow "patch": want get, update, delete or list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append(append([]string{"shadow"}, tt.args...), "--socket", socket)...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr with %q", code, errOut, tt.code, tt.stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			select {
			case r := <-got:
				if r != tt.want {
					t.Errorf("the daemon was asked %+v; want %+v", r, tt.want)
				}
			default:
				if tt.want.method != "" {
					t.Errorf("the daemon was not asked; want %+v", tt.want)
				}
			}
		})
	}
}

// No daemon at the socket: the command line's admin error (exit 3 in the binary).
func TestShadowNoDaemon(t *testing.T) {
	dir, err := os.MkdirTemp("", "shadowcmd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "admin.sock")
	code, _, errOut := run(t, "shadow", "get", "lamp-1", "--socket", socket)
	if code != 1 || !strings.Contains(errOut, "asking "+socket) || !strings.Contains(errOut, "no daemon at "+socket) {
		t.Errorf("exit %d, stderr %q; want clitest's admin error naming %s and that no daemon runs", code, errOut, socket)
	}
}
