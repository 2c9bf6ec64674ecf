package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// checkAdminSocketDir makes sure the directory of admin.socket exists before the gateway
// starts, creating it (0750) when this user may. Under systemd the unit's RuntimeDirectory=
// creates /run/edgegw and removes it at stop; run by hand as the daemon's user, the directory
// is usually missing and /run is root's, so the daemon would fail deep in its start with a bare
// "permission denied". This says what to do instead. "" (no admin socket) needs nothing.
func checkAdminSocketDir(socket string) error {
	if socket == "" {
		return nil
	}
	dir := filepath.Dir(socket)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("admin.socket %q: the directory %s does not exist and cannot be created by this user (%v); "+
			"start the daemon with systemd (systemctl start edgegw: the unit's RuntimeDirectory= creates it), "+
			"or create it first: sudo install -d -o %s -g %s -m 0750 %s",
			socket, dir, err, daemonUser, daemonUser, dir)
	}
	return nil
}
