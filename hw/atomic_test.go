package hw

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileAtomic: the file is replaced whole with the mode asked for,
// no temporary file is left, and the exclusive form never replaces.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	for _, tc := range []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"create", "first\n", 0o600},
		{"replace with another mode", "second\n", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteFileAtomic(path, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("got %q, %v; want %q", got, err, tc.data)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tc.mode {
				t.Errorf("got mode %v; want %v", fi.Mode().Perm(), tc.mode)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("got %d entries in the directory; want 1 (no temporary file left)", len(ents))
			}
		})
	}
	if err := writeFileExclusive(path, []byte("third\n")); !errors.Is(err, ErrExists) {
		t.Errorf("exclusive write over an existing file: got %v; want ErrExists", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "second\n" {
		t.Errorf("after the refused exclusive write: got %q; want the file unchanged", got)
	}
}
