package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig feeds arbitrary bytes to the config parser: it must never
// panic, and it must return exactly one of a config or an error.
func FuzzLoadConfig(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", "/etc/edgegw", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("got config %v and error %v; want exactly one", c != nil, err)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("got an empty error message")
		}
	})
}
