package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckFile reports whether New could open path for appending, without
// creating anything: the directory must exist (the package creates
// /var/log/edgegw; the daemon does not create log directories) and the file,
// or the directory when the file is absent, must be writable by this user.
// "" (no audit file) is fine.
func CheckFile(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("audit.file %s: directory %s does not exist: create it as the package does (install -d -o edgegw -g edgegw -m 0750 %s) or set audit.file to \"\" to write audit lines to the log only", path, dir, dir)
	case err != nil:
		return fmt.Errorf("audit.file %s: %w", path, err)
	case !st.IsDir():
		return fmt.Errorf("audit.file %s: %s is not a directory", path, dir)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
			return fmt.Errorf("audit.file %s: cannot create it: directory %s is not writable by uid %d: %w", path, dir, os.Getuid(), err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("audit.file %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("audit.file %s: not a regular file", path)
	}
	if err := syscall.Access(path, 2 /* W_OK */); err != nil {
		return fmt.Errorf("audit.file %s: not writable by uid %d: %w", path, os.Getuid(), err)
	}
	return nil
}
