package cidata

import (
	"bytes"
	"testing"
	"time"
)

func TestReadRoundTrip(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 3*sector+17) // spans sectors
	in := []File{{Name: "config.yaml", Data: []byte("version: v1alpha1\n")}, {Name: "user-data", Data: big}, {Name: "meta-data", Data: nil}}
	img, err := Build(LabelMetalISO, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), in...)
	if err != nil {
		t.Fatal(err)
	}
	label, files, err := Read(img)
	if err != nil {
		t.Fatal(err)
	}
	if label != LabelMetalISO {
		t.Errorf("label %q, want %q", label, LabelMetalISO)
	}
	for _, f := range in {
		got, ok := Lookup(files, f.Name)
		if !ok {
			t.Errorf("file %s missing; have %d files", f.Name, len(files))
			continue
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("file %s: %d bytes back, want %d", f.Name, len(got), len(f.Data))
		}
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	t.Parallel()
	for _, img := range [][]byte{nil, make([]byte, 40*sector), []byte("#cloud-config\n")} {
		if _, _, err := Read(img); err == nil {
			t.Errorf("Read accepted %d bytes of non-ISO data", len(img))
		}
	}
}
