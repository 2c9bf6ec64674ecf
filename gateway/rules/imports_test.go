package rules

import (
	goparser "go/parser"
	gotoken "go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rooms is the import path prefix of this package's own rooms (timefmt...).
const rooms = "github.com/edgegw/edgegw/gateway/rules/"

// jsonq is the JSON string quoting the language shares with the shadows: a
// leaf of the standard library only, so the rooms stay pure through it.
const jsonq = "github.com/edgegw/edgegw/gateway/internal/jsonq"

// The package is pure: its non-test files, and those of its rooms below it
// (sql, timefmt...), import the standard library, those rooms and jsonq only (no
// other package of ours, no mochi, badger, prometheus or paho). Which room
// may import which is cmd/edgegw's import-rule test's.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*/*.go", "*/*/*.go", "*/*/*/*.go"} {
		sub, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, sub...)
	}
	fset := gotoken.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := goparser.ParseFile(fset, f, src, goparser.ImportsOnly)
		if err != nil {
			t.Fatalf("parsing %s: %v", f, err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, rooms) || path == jsonq {
				continue
			}
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %q; want the standard library only", f, path)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no Go files found to check")
	}
}
