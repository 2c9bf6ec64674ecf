package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDaemonUserAccess: root's check of a config whose server key the
// service's user cannot read fails, naming the key, the user and the fix
// (keys stay 0600: chown); once the user owns the key, check passes. Also a
// certificate behind a directory the user cannot search.
func TestCheckDaemonUserAccess(t *testing.T) {
	s := newCheckRunSite(t)
	if err := os.MkdirAll(filepath.Join(s.dir, "log"), 0o750); err != nil {
		t.Fatal(err)
	}
	s.write(t)
	// Everything world-readable (as under /etc/edgegw), but the server key.
	for _, root := range []string{s.dir, s.site.Dir, s.up.Dir} {
		for _, d := range []string{filepath.Dir(root), root} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return os.Chmod(p, 0o755)
			}
			return os.Chmod(p, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	key := strings.TrimPrefix(s.vals["key"], "file:")
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := edgegw(t, "check", "--user", "nobody", "-c", s.conf)
	for _, want := range []string{"listeners[0].tls.key", "the daemon's user nobody", key, "mode 0600", "chown nobody " + key} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("check --user nobody: exit %d, %q; want exit 1 and %q", code, stderr, want)
		}
	}
	if strings.Count(stderr, "cannot read") != 1 {
		t.Errorf("check --user nobody: %q; want exactly one unreadable file", stderr)
	}
	if err := os.Chown(key, 65534, -1); err != nil { // nobody, as the fix says
		t.Fatalf("chown (the test runs as root): %v", err)
	}
	if code, out, stderr := edgegw(t, "check", "--user", "nobody", "-c", s.conf); code != 0 {
		t.Errorf("check with the key readable: exit %d, %s%s; want 0", code, out, stderr)
	}
	if err := os.Chmod(s.site.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = edgegw(t, "check", "--user", "nobody", "-c", s.conf)
	for _, want := range []string{"listeners[0].tls.ca", "listeners[0].tls.cert", "no search permission", "chmod g+x " + s.site.Dir} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("check --user nobody with a 0700 PKI dir: exit %d, %q; want exit 1 and %q", code, stderr, want)
		}
	}
}
