package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminSocketDir: `edgegw run` by hand creates the admin socket's directory when it may,
// and otherwise says to use systemd or create it.
func TestAdminSocketDir(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		name    string
		socket  string
		wantErr string // "" = no error and the directory exists afterwards
	}{
		{name: "no admin socket", socket: ""},
		{name: "directory exists", socket: filepath.Join(tmp, "admin.sock")},
		{name: "directory creatable", socket: filepath.Join(tmp, "run", "edgegw", "admin.sock")},
		// /proc refuses mkdir even to root: stands for /run as the daemon's user.
		{name: "directory not creatable", socket: "/proc/edgegw-test/admin.sock",
			wantErr: "start the daemon with systemd (systemctl start edgegw: the unit's RuntimeDirectory= creates it), or create it first: sudo install -d -o edgegw -g edgegw -m 0750 /proc/edgegw-test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAdminSocketDir(tc.socket, true)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("checkAdminSocketDir(%q): got %v; want nil", tc.socket, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("checkAdminSocketDir(%q): got %v; want an error containing %q", tc.socket, err, tc.wantErr)
			}
			if tc.wantErr == "" && tc.socket != "" {
				if fi, err := os.Stat(filepath.Dir(tc.socket)); err != nil || !fi.IsDir() {
					t.Errorf("checkAdminSocketDir(%q): directory afterwards: %v; want it to exist", tc.socket, err)
				}
			}
		})
	}
}
