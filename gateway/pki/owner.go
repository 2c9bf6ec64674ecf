package pki

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// Owner is the daemon's user and group. `edgegw pki` runs as root, but `edgegw run` (and the
// unit's ExecReload `edgegw check`) run as the daemon's user, which must read the broker's
// files and nothing more. With Options.Owner set, Init and ImportCA make:
//
//	DIR           0750 caller:GID   the daemon's group may enter and read the public files
//	server.key    0600 UID:GID      owned by the daemon: hw refuses key files readable by others
//	server.crt, ca.crt, crl.pem     0644 caller (public)
//	ca.key        0600 caller       only `edgegw pki` (root) signs
//	ca.json, issued.json, .lock     caller (0644/0600 inside the 0750 directory)
type Owner struct{ UID, GID int }

// DirMode is the PKI directory's mode when Options.Owner is set (0700 otherwise).
const DirMode os.FileMode = 0o750

// DaemonOwner looks up the daemon's user (name, e.g. "edgegw") and returns it as an Owner with
// its primary group, when this process runs as root and the user exists. Otherwise it returns
// nil: without root nothing can be handed over, and without the user (no package installed, a
// developer's machine) every file stays with the caller. lookup is user.Lookup unless replaced.
func DaemonOwner(name string, lookup func(string) (*user.User, error)) (*Owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if lookup == nil {
		lookup = user.Lookup
	}
	u, err := lookup(name)
	if err != nil {
		if errors.As(err, new(user.UnknownUserError)) {
			return nil, nil
		}
		return nil, fmt.Errorf("looking up the daemon's user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid %q is not a number", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %q: gid %q is not a number", name, u.Gid)
	}
	return &Owner{UID: uid, GID: gid}, nil
}

// shareDir gives DIR to the daemon's group (DirMode) when o.Owner is set.
func (o *Options) shareDir() error {
	if o.Owner == nil {
		return nil
	}
	if err := os.Chown(o.Dir, -1, o.Owner.GID); err != nil {
		return fmt.Errorf("giving the PKI directory to group %d: %w", o.Owner.GID, err)
	}
	if err := os.Chmod(o.Dir, DirMode); err != nil {
		return fmt.Errorf("giving the PKI directory to group %d: %w", o.Owner.GID, err)
	}
	return nil
}
