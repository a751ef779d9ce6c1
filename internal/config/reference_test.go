package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/config"
)

var update = flag.Bool("update", false, "rewrite the README's configuration reference from the schema")

const (
	beginMarker = "<!-- BEGIN CONFIG REFERENCE -->"
	endMarker   = "<!-- END CONFIG REFERENCE -->"
)

// readmePath is the README at the module root, two levels up from here.
var readmePath = filepath.Join("..", "..", "README.md")

// section is what sits between the markers: the generated reference, set off
// by blank lines so Markdown renders the tables.
func section() string { return "\n\n" + config.Reference() + "\n" }

// TestREADMEReferenceIsCurrent fails when the README's configuration
// reference no longer matches the schema. Fix it with
//
//	go test ./internal/config -run TestREADMEReferenceIsCurrent -update
func TestREADMEReferenceIsCurrent(t *testing.T) {
	// Not parallel: with -update it writes README.md.
	data, err := os.ReadFile(readmePath)
	if err != nil && !(*update && os.IsNotExist(err)) {
		t.Fatalf("read README: %v", err)
	}
	readme := string(data)
	begin := strings.Index(readme, beginMarker)
	end := strings.Index(readme, endMarker)
	if begin < 0 || end < begin {
		if !*update {
			t.Fatalf("README.md has no %s … %s section; run this test with -update to add it", beginMarker, endMarker)
		}
		// Add the section at the end; move it where it belongs by hand.
		if readme != "" && !strings.HasSuffix(readme, "\n") {
			readme += "\n"
		}
		readme += "\n" + beginMarker + endMarker + "\n"
		begin = strings.Index(readme, beginMarker)
		end = strings.Index(readme, endMarker)
	}
	current := readme[begin+len(beginMarker) : end]
	want := section()
	if current == want {
		return
	}
	if *update {
		updated := readme[:begin+len(beginMarker)] + want + readme[end:]
		if err := os.WriteFile(readmePath, []byte(updated), 0o644); err != nil {
			t.Fatalf("write README: %v", err)
		}
		t.Logf("rewrote the configuration reference in %s", readmePath)
		return
	}
	line, got, exp := firstDiff(current, want)
	t.Errorf("the configuration reference in README.md is stale; run\n"+
		"  go test ./internal/config -run TestREADMEReferenceIsCurrent -update\n"+
		"first difference at line %d:\n  README: %q\n  schema: %q", line, got, exp)
}

// firstDiff returns the 1-based line where a and b first differ, and the two lines.
func firstDiff(a, b string) (int, string, string) {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return i + 1, x, y
		}
	}
	return 0, "", ""
}

func TestReferenceCoversEverySetting(t *testing.T) {
	t.Parallel()
	ref := config.Reference()
	for _, s := range config.Schema {
		row := "| `--" + s.Name + "`"
		if !strings.Contains(ref, row) || !strings.Contains(ref, "`"+s.Env()+"`") {
			t.Errorf("reference misses %s or %s", s.Name, s.Env())
		}
		if s.Secret && !strings.Contains(ref, row+" 🔒") {
			t.Errorf("reference does not mark %s as secret", s.Name)
		}
		if s.Infisical != "" && !strings.Contains(ref, "`"+s.Infisical+"`") {
			t.Errorf("reference misses Infisical name %s", s.Infisical)
		}
	}
	for _, g := range config.Groups {
		if !strings.Contains(ref, g.Name+" ("+strings.Join(g.Settings, ", ")+")") {
			t.Errorf("reference misses group %s", g.Name)
		}
	}
}
