package infisical

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// CheckWrite proves write access and leaves the project as it found it:
// no probe secret, and no folder it had to create.
func TestCheckWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		seed []SeedSecret
	}{
		{"folder missing", nil},
		{"parent exists", []SeedSecret{{Project: testProject, Environment: testEnv, Path: "/rawkode-cloud/other", Name: "KEEP", Value: "v"}}},
		{"folder exists", []SeedSecret{{Project: testProject, Environment: testEnv, Path: "/rawkode-cloud/lab", Name: "KEEP", Value: "v"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEmulator(t, EmulatorOptions{Secrets: tc.seed})
			c := connect(t, testConfig(e))
			ctx := ctxTimeout(t, 10*time.Second)
			before := e.Secrets()
			foldersBefore, err := c.Folders(ctx, "/rawkode-cloud")
			if err != nil {
				t.Fatal(err)
			}
			if left, err := c.CheckWrite(ctx, "/rawkode-cloud/lab", ProbeName()); err != nil || left {
				t.Fatalf("CheckWrite: %v", err)
			}
			if after := e.Secrets(); len(after) != len(before) {
				t.Fatalf("secrets after the check = %+v, want %+v", after, before)
			}
			for _, s := range e.Secrets() {
				if strings.HasPrefix(s.Name, ProbePrefix) {
					t.Fatalf("probe left: %+v", s)
				}
			}
			root, err := c.Folders(ctx, "/")
			if err != nil {
				t.Fatal(err)
			}
			foldersAfter, err := c.Folders(ctx, "/rawkode-cloud")
			if err != nil {
				t.Fatal(err)
			}
			if tc.seed == nil && len(root) != 0 {
				t.Fatalf("folders left at /: %v", root)
			}
			if strings.Join(foldersAfter, ",") != strings.Join(foldersBefore, ",") {
				t.Fatalf("folders under /rawkode-cloud: %v, before %v", foldersAfter, foldersBefore)
			}
			// One probe deleted; a folder created for it is deleted too.
			n := e.Counters()
			if n.Get("delete-secret") != 1 || n.Get("delete-folder") != n.Get("create-folder") {
				t.Fatalf("requests: %v", n.Snapshot())
			}
		})
	}
}

// An identity that may read but not write is told apart from an outage,
// named, and nothing is created.
func TestCheckWriteDenied(t *testing.T) {
	t.Parallel()
	faults := emulator.NewFaults()
	faults.Set(FaultPermissions, emulator.Fault{Kind: emulator.Deny})
	e := newEmulator(t, EmulatorOptions{Faults: faults})
	c := connect(t, testConfig(e))
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.List(ctx); err != nil {
		t.Fatalf("List (reading stays allowed): %v", err)
	}
	left, err := c.CheckWrite(ctx, "/rawkode-cloud/lab", ProbeName())
	if left {
		t.Error("a refused create may have left the probe, says CheckWrite")
	}
	if !errors.Is(err, ErrNoWrite) {
		t.Fatalf("CheckWrite = %v, want ErrNoWrite", err)
	}
	for _, want := range []string{testClientID, "may not create secrets", "/rawkode-cloud/lab", "403"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if s := e.Secrets(); len(s) != 0 {
		t.Fatalf("secrets after a refused check: %+v", s)
	}
	if e.Counters().Get("create-secret") != 1 {
		t.Fatalf("requests: %v (one refused create is enough)", e.Counters().Snapshot())
	}
}
