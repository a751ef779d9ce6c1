package crds

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
)

// TestFilesAreUnmodified checks every embedded file against the checksum its
// ORIGIN note recorded when it was copied, and that no file is unaccounted
// for, so a local edit to third-party data cannot go unnoticed.
func TestFilesAreUnmodified(t *testing.T) {
	t.Parallel()
	listed := map[string]string{}
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		for _, need := range []string{"LICENSE", "ORIGIN"} {
			if _, err := os.Stat(path.Join(d.Name(), need)); err != nil {
				t.Errorf("%s has no %s", d.Name(), need)
			}
		}
		f, err := os.Open(path.Join(d.Name(), "ORIGIN"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 2 && len(fields[0]) == 64 && strings.HasSuffix(fields[1], ".yaml") {
				listed[path.Join(d.Name(), fields[1])] = fields[0]
			}
		}
		f.Close()
	}
	err = fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := FS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		want, ok := listed[p]
		switch {
		case !ok:
			t.Errorf("%s is not listed in its ORIGIN", p)
		case hex.EncodeToString(sum[:]) != want:
			t.Errorf("%s differs from the upstream copy recorded in its ORIGIN", p)
		}
		delete(listed, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range listed {
		t.Errorf("ORIGIN lists %s, which is missing", p)
	}
}
