package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/edgegw/edgegw/gateway/config"
)

// serviceAccount is whom `edgegw check` checks file access for besides itself:
// --user, or, when root checks the service's config (cfgPath is the
// default), the service's user if it exists (root can read everything, so
// its own checks say nothing about the daemon). nil means: no other user to
// check for.
func serviceAccount(name, cfgPath string) (*user.User, error) {
	if name == "" {
		if os.Geteuid() != 0 || cfgPath != defaultConfig {
			return nil, nil
		}
		u, err := user.Lookup(daemonUser)
		if err != nil {
			return nil, nil // not installed as a service: nothing to check for
		}
		return u, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--user %s: %w", name, err)
	}
	return u, nil
}

// checkReadableBy reports every file the config names that u cannot read
// (by owner, group and mode bits, parents' search permission included):
// keys, certificates, CRLs, password files, the registry, the policies and
// the queue key. Directories systemd creates and chowns for the service
// (StateDirectory, LogsDirectory, RuntimeDirectory) are not checked here.
func checkReadableBy(cfg *config.Config, u *user.User) error {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil || uid == 0 {
		return nil
	}
	var gids []int
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil {
				gids = append(gids, g)
			}
		}
	}
	type named struct {
		key, path string
		private   bool // a key: must stay 0600, so the user must own it
	}
	var files []named
	file := func(key, p string) {
		if p != "" {
			files = append(files, named{key: key, path: p})
		}
	}
	fileKey := func(key, uri string) {
		if p, ok := strings.CutPrefix(uri, "file:"); ok {
			files = append(files, named{key: key, path: p, private: true})
		}
	}
	for i, l := range cfg.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		file(p+".password_file", l.PasswordFile)
		if t := l.TLS; t != nil {
			file(p+".tls.ca", t.CA)
			file(p+".tls.cert", t.Cert)
			file(p+".tls.crl", t.CRL)
			fileKey(p+".tls.key", t.Key)
		}
	}
	file("devices", cfg.Devices)
	file("policies", cfg.Policies)
	if ents, err := os.ReadDir(cfg.Policies); err == nil {
		for _, e := range ents {
			if !e.IsDir() {
				file("policies", filepath.Join(cfg.Policies, e.Name()))
			}
		}
	}
	if b := cfg.Bridge; b != nil && b.TLS != nil {
		file("bridge.tls.ca", b.TLS.CA)
		file("bridge.tls.cert", b.TLS.Cert)
		fileKey("bridge.tls.key", b.TLS.Key)
		fileKey("store.encryption_key", cfg.Store.EncryptionKey)
	}
	var errs []error
	for _, f := range files {
		err := readableBy(f.path, uid, gids)
		var ae *accessError
		switch {
		case err == nil:
			continue
		case errors.As(err, &ae) && ae.path == f.path && f.private:
			err = fmt.Errorf("%w: keys stay 0600, so give it to the user: chown %s %s", err, u.Username, f.path)
		case errors.As(err, &ae):
			bit := "r" // the file itself
			switch {
			case ae.path != f.path: // a parent directory
				bit = "x"
			case ae.dir: // the policy directory
				bit = "rx"
			}
			err = fmt.Errorf("%w: e.g. chgrp %s %s && chmod g+%s %s", err, u.Username, ae.path, bit, ae.path)
		}
		errs = append(errs, fmt.Errorf("%s: the daemon's user %s (uid %d) cannot read %s: %w", f.key, u.Username, uid, f.path, err))
	}
	return errors.Join(errs...)
}

// readableBy checks the search bit of every parent of path and the read
// bit of path (and search, for a directory) for uid and gids.
func readableBy(path string, uid int, gids []int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	var dirs []string
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == "/" {
			break
		}
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := modeAllows(d, uid, gids, 1); err != nil {
			return err
		}
	}
	return modeAllows(abs, uid, gids, 4)
}

// accessError: path's owner, group and mode deny the permission.
type accessError struct {
	path      string
	uid, gid  uint32
	mode      uint32
	who, what string // "its owner" | "its group" | "others"; "read" | "search"
	dir       bool
}

func (e *accessError) Error() string {
	return fmt.Sprintf("%s is owned by %d:%d with mode %04o, which gives %s no %s permission", e.path, e.uid, e.gid, e.mode, e.who, e.what)
}

// modeAllows checks the permission bit want (4 read, 1 search) of path for
// uid and gids the way the kernel does without ACLs: owner, else group,
// else other.
func modeAllows(path string, uid int, gids []int, want uint32) error {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil // a missing file is reported by the other checks
		}
		return err
	}
	dir := st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	if want == 4 && dir {
		want = 5
	}
	perm := st.Mode & 0o7
	who := "others"
	switch {
	case int(st.Uid) == uid:
		perm, who = (st.Mode>>6)&0o7, "its owner"
	case slices.Contains(gids, int(st.Gid)):
		perm, who = (st.Mode>>3)&0o7, "its group"
	}
	if perm&want == want {
		return nil
	}
	what := "read"
	if want == 1 {
		what = "search"
	}
	return &accessError{path: path, uid: st.Uid, gid: st.Gid, mode: st.Mode & 0o7777, who: who, what: what, dir: dir}
}
