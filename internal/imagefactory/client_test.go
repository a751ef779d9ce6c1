package imagefactory_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	ifemu "github.com/rawkode/rawkode-cloud/internal/imagefactory/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
)

func start(t *testing.T, opts ifemu.Options) (*ifemu.Emulator, *imagefactory.Client) {
	t.Helper()
	e := ifemu.New(opts)
	t.Cleanup(e.Close)
	c, err := imagefactory.New(imagefactory.Options{URL: e.URL(), Retry: retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 4}})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCreateSchematicAndDownload(t *testing.T) {
	t.Parallel()
	e, c := start(t, ifemu.Options{})
	s := imagefactory.ProxmoxVMSchematic()
	if err := c.Check(ctx(t), "v1.12.4", s); err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateSchematic(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.ID()
	if id != want {
		t.Fatalf("ID %s, want the content hash %s", id, want)
	}
	// Content-addressed: creating it again is the same schematic.
	if again, err := c.CreateSchematic(ctx(t), s); err != nil || again != id {
		t.Fatalf("second create: %s, %v", again, err)
	}
	if got := e.Schematics(); len(got) != 1 {
		t.Fatalf("factory holds %v, want one schematic", got)
	}
	back, err := c.GetSchematic(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if backID, _ := back.ID(); backID != id {
		t.Errorf("schematic read back hashes to %s", backID)
	}

	size, err := c.CheckImage(ctx(t), id, "v1.12.4", "nocloud-amd64.qcow2")
	if err != nil || size == 0 {
		t.Fatalf("HEAD image: size %d, %v", size, err)
	}
	resp, err := http.Get(c.ImageURL(id, "v1.12.4", "nocloud-amd64.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	info, err := ifemu.DecodeImage(body)
	if err != nil {
		t.Fatal(err)
	}
	if info.Platform != "nocloud" || info.DiskFormat != "qcow2" || info.Arch != "amd64" || strings.Join(info.Extensions, ",") != "siderolabs/iscsi-tools,siderolabs/qemu-guest-agent" {
		t.Errorf("image says %+v", info)
	}
	if int64(len(body)) != size {
		t.Errorf("HEAD said %d bytes, GET served %d", size, len(body))
	}
}

func TestCheckRefusesWhatTheFactoryCannotBuild(t *testing.T) {
	t.Parallel()
	_, c := start(t, ifemu.Options{})
	err := c.Check(ctx(t), "v1.99.0", imagefactory.ProxmoxVMSchematic())
	if err == nil || !strings.Contains(err.Error(), "does not build Talos v1.99.0") {
		t.Errorf("unknown version: %v", err)
	}
	bad := imagefactory.Schematic{Customization: imagefactory.Customization{SystemExtensions: imagefactory.SystemExtensions{
		OfficialExtensions: []string{"siderolabs/qemu-guest-agent", "siderolabs/iscsi-tool"}}}}
	err = c.Check(ctx(t), "v1.12.4", bad)
	if err == nil || !strings.Contains(err.Error(), "no official extension siderolabs/iscsi-tool for Talos v1.12.4") {
		t.Errorf("misspelled extension: %v", err)
	}
	// The factory itself takes the schematic and refuses only the image,
	// which is why Check exists.
	id, err := c.CreateSchematic(ctx(t), bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CheckImage(ctx(t), id, "v1.12.4", "nocloud-amd64.qcow2")
	var apiErr *imagefactory.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Errorf("image with a missing extension: %v", err)
	}
}

func TestFactoryErrorsAreItsOwn(t *testing.T) {
	t.Parallel()
	e, c := start(t, ifemu.Options{})
	if _, err := c.GetSchematic(ctx(t), strings.Repeat("0", 64)); !errors.Is(err, imagefactory.ErrNotFound) {
		t.Errorf("unknown schematic: %v", err)
	}
	resp, err := http.Post(e.URL()+"/schematics", "application/yaml", strings.NewReader("customization:\n  extraKernelArg: [x]\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "extraKernelArg") {
		t.Errorf("unknown field: %d %s", resp.StatusCode, msg)
	}
	id, _ := c.CreateSchematic(ctx(t), imagefactory.MetalISOSchematic())
	for asset, want := range map[string]string{
		"metal-amd64.raw.zst": "",
		"metal-amd64.iso":     "",
		"metal-amd64.vmdk":    `invalid profile path: "metal-amd64.vmdk"`,
		"metal-riscv.raw.xz":  `invalid architecture: "riscv"`,
		"plan9-amd64.raw":     `invalid platform: "plan9"`,
	} {
		_, err := c.CheckImage(ctx(t), id, "v1.12.4", asset)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", asset, err, want)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	s := imagefactory.ProxmoxVMSchematic()
	t.Run("unavailable once is retried", func(t *testing.T) {
		t.Parallel()
		e, c := start(t, ifemu.Options{})
		e.Faults().Set(ifemu.PointSchematics, emulator.Fault{Kind: emulator.Unavailable, Times: 1})
		if _, err := c.CreateSchematic(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if n := e.Counters().Get("create-schematic"); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("rate limit is retried", func(t *testing.T) {
		t.Parallel()
		e, c := start(t, ifemu.Options{})
		e.Faults().Set(ifemu.PointVersions, emulator.Fault{Kind: emulator.RateLimit, Times: 1})
		if _, err := c.Versions(ctx(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("error is permanent", func(t *testing.T) {
		t.Parallel()
		e, c := start(t, ifemu.Options{})
		e.Faults().Set(ifemu.PointSchematics, emulator.Fault{Kind: emulator.Error})
		if _, err := c.CreateSchematic(ctx(t), s); err == nil {
			t.Fatal("no error")
		}
		if n := e.Counters().Get("create-schematic"); n != 1 {
			t.Errorf("%d requests, want 1: a refusal is not worth retrying", n)
		}
	})
	t.Run("hang ends at the caller's deadline", func(t *testing.T) {
		t.Parallel()
		e, c := start(t, ifemu.Options{})
		e.Faults().Set(ifemu.PointImage, emulator.Fault{Kind: emulator.Never})
		id, _ := c.CreateSchematic(ctx(t), s)
		cctx, cancel := context.WithTimeout(ctx(t), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(cctx, http.MethodGet, c.ImageURL(id, "v1.12.4", "nocloud-amd64.qcow2"), nil)
		if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("download under a never-finishing build: %v", err)
		}
	})
}

// A HEAD on an asset nobody asked for yet waits out its build, as the real
// factory's handler builds before it answers either method.
func TestHeadWaitsForTheFirstBuild(t *testing.T) {
	t.Parallel()
	_, c := start(t, ifemu.Options{Build: time.Hour})
	s := imagefactory.ProxmoxVMSchematic()
	id, err := c.CreateSchematic(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.CheckImage(short, id, "v1.12.4", "nocloud-amd64.raw.xz"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HEAD during an hour-long build: %v, want the caller's deadline", err)
	}
}
