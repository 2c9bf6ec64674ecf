package audit

import (
	"encoding/json"
	"fmt"
	"os"
)

// fileMode is the audit file's mode: the daemon writes it, its group (the
// edgegw group) reads it. In a directory with a default ACL (the package
// gives adm one on /var/log/edgegw) the group bits are the ACL's mask, so
// the named groups it lists (adm) read it too, and nobody else.
const fileMode = 0o640

// openFile opens path for appending (created if absent) and sets its mode
// to 0640 whatever the umask (systemd's default UMask=0022 would do, a
// stricter one would leave the group out).
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return nil, fmt.Errorf("setting mode of audit log %s: %w", path, err)
	}
	return f, nil
}

// Reopen closes the audit file and opens its path again: after logrotate
// has moved it away (SIGHUP, `systemctl reload edgegw`), lines go to a new
// file. On error the old file stays in use. Without a file it does nothing.
func (a *Log) Reopen() error {
	if a == nil || a.path == "" {
		return nil
	}
	f, err := openFile(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil { // closed
		return f.Close()
	}
	old := a.f
	a.f, a.enc = f, json.NewEncoder(f)
	if err := old.Close(); err != nil {
		return fmt.Errorf("closing the previous audit log: %w", err)
	}
	return nil
}
