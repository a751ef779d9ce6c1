package gitops

import (
	"context"
	"testing"
)

// BenchmarkNewSchemas measures loading the embedded CRDs (paid once per
// `platform check`).
func BenchmarkNewSchemas(b *testing.B) {
	for b.Loop() {
		if _, err := NewSchemas(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckScaffold measures checking the scaffold's tree with the
// schemas already loaded: builds, validation, references.
func BenchmarkCheckScaffold(b *testing.B) {
	files, err := Render(testParams(StoreOnePassword))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if _, err := Write(dir, files, WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	s, err := NewSchemas()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := Check(context.Background(), dir, s, CheckOptions{})
		if err != nil || len(res.Problems) > 0 {
			b.Fatal(err, res.Problems)
		}
	}
}
