package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkAdminSocketDir makes sure the directory of admin.socket exists before the gateway
// starts, creating it (0750) when this user may and create is set (`edgegw run`); `edgegw
// check` passes create false and gets the same verdict and message without creating
// anything. Under systemd the unit's RuntimeDirectory= creates /run/edgegw and removes it at
// stop; run by hand as the daemon's user, the directory is usually missing and /run is root's,
// so the daemon would fail deep in its start with a bare "permission denied". This says what
// to do instead. "" (no admin socket) needs nothing.
func checkAdminSocketDir(socket string, create bool) error {
	if socket == "" {
		return nil
	}
	dir := filepath.Dir(socket)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	var err error
	if create {
		err = os.MkdirAll(dir, 0o750)
	} else {
		err = mayCreateDir(dir)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the same words from mkdir and from access(2)
		}
		return fmt.Errorf("admin.socket %q: the directory %s does not exist and cannot be created by this user (%v); "+
			"start the daemon with systemd (systemctl start edgegw: the unit's RuntimeDirectory= creates it), "+
			"or create it first: sudo install -d -o %s -g %s -m 0750 %s",
			socket, dir, err, daemonUser, daemonUser, dir)
	}
	return nil
}

// mayCreateDir reports whether MkdirAll(dir) would succeed for this user, by
// access(2) on the nearest existing ancestor, creating nothing.
func mayCreateDir(dir string) error {
	p := dir
	for {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
			}
			if err := syscall.Access(p, 2|1 /* W_OK|X_OK */); err != nil {
				return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
			}
			return nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
		}
		p = parent
	}
}
