// Package golden compares rendered artifacts with files under testdata and
// rewrites them with `go test -update`. Imported by tests only.
package golden

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Updating reports whether the test run was asked to rewrite golden files.
func Updating() bool { return *update }

// Compare fails t when got differs from the file at path, showing a line
// diff; with -update it writes got there instead.
func Compare(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n"))
		t.Errorf("%s differs from the golden file (run go test -update to accept):\n%s", path, diff)
	}
}
