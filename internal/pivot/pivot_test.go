package pivot_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"github.com/rawkode/rawkode-cloud/internal/golden"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pivot"
)

const schematic = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

func goldenOptions() pivot.Options {
	return pivot.Options{SchematicID: schematic, TalosVersion: "v1.12.4", InstallDisk: "/dev/nvme0n1"}
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()

	got, err := pivot.Render(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}

	golden.Compare(t, filepath.Join("testdata", "user-data.golden"), got)
}

func TestRenderRejectsBadOptions(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		mutate func(*pivot.Options)
		want   string
	}{
		{"short schematic", func(o *pivot.Options) { o.SchematicID = "abc" }, "schematic ID"},
		{"banana version", func(o *pivot.Options) { o.TalosVersion = "banana" }, "talos version"},
		{"version without v", func(o *pivot.Options) { o.TalosVersion = "1.12.4" }, "talos version"},
		{"version before .raw.zst images", func(o *pivot.Options) { o.TalosVersion = "v1.7.6" }, ".raw.xz"},
		{"relative disk", func(o *pivot.Options) { o.InstallDisk = "sda" }, "install disk"},
		{"disk escaping /dev", func(o *pivot.Options) { o.InstallDisk = "/dev/../etc/passwd" }, "install disk"},
		{"disk with shell", func(o *pivot.Options) { o.InstallDisk = "/dev/sda$(reboot)" }, "install disk"},
		{"factory not http", func(o *pivot.Options) { o.ImageFactoryURL = "ftp://factory" }, "image factory URL"},
		{"factory with quote", func(o *pivot.Options) { o.ImageFactoryURL = `https://f"actory` }, "image factory URL"},
		{"factory with query", func(o *pivot.Options) { o.ImageFactoryURL = "https://factory/?a=b" }, "image factory URL"},
		{"negative attempts", func(o *pivot.Options) { o.DownloadAttempts = -1 }, "download attempts"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			opts := goldenOptions()
			tt.mutate(&opts)

			_, err := pivot.Render(opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render() error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestImageURL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		factory, want string
	}{
		{"", "https://factory.talos.dev/image/" + schematic + "/v1.12.4/metal-amd64.raw.zst"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/image/" + schematic + "/v1.12.4/metal-amd64.raw.zst"},
	}

	for _, tt := range tests {
		opts := goldenOptions()
		opts.ImageFactoryURL = tt.factory

		if got := opts.ImageURL(); got != tt.want {
			t.Errorf("ImageURL() = %q, want %q", got, tt.want)
		}
	}
}

func TestCloudInitSchemaAcceptsUserData(t *testing.T) {
	t.Parallel()

	bin := requireTool(t, "cloud-init")

	for _, disk := range []string{"/dev/nvme0n1", ""} {
		opts := goldenOptions()
		opts.InstallDisk = disk

		data, err := pivot.Render(opts)
		if err != nil {
			t.Fatal(err)
		}

		file := filepath.Join(t.TempDir(), "user-data")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}

		out, err := exec.Command(bin, "schema", "-c", file).CombinedOutput()
		if err != nil {
			t.Fatalf("cloud-init schema rejected user data (disk %q): %v\n%s", disk, err, out)
		}
	}
}

func TestShellcheckAcceptsScript(t *testing.T) {
	t.Parallel()

	bin := requireTool(t, "shellcheck")

	for _, disk := range []string{"/dev/nvme0n1", ""} {
		opts := goldenOptions()
		opts.InstallDisk = disk

		cmd := exec.Command(bin, "--shell=bash", "-")
		cmd.Stdin = strings.NewReader(pivot.Script(opts))

		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("shellcheck rejected the script (disk %q): %v\n%s", disk, err, out)
		}
	}
}

// imageServer serves a zstd-compressed image at the Image Factory path,
// failing the first failFirst requests (or all, when failFirst < 0).
type imageServer struct {
	url       string
	requests  atomic.Int32
	lastPath  atomic.Value
	failFirst int32
}

func newImageServer(t *testing.T, compressed []byte, failFirst int32) *imageServer {
	t.Helper()

	s := &imageServer{failFirst: failFirst}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		s.lastPath.Store(r.URL.Path)

		if s.failFirst < 0 || n <= s.failFirst {
			http.Error(w, "factory is busy", http.StatusServiceUnavailable)
			return
		}

		_, _ = w.Write(compressed)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL

	return s
}

type run struct {
	out       string
	err       error
	diskBytes []byte
	rebooted  bool
}

// runScript runs the rendered script against diskFile with the test seams
// set, and a reboot command that only leaves a marker file.
func runScript(t *testing.T, opts pivot.Options, diskFile string, extraEnv ...string) run {
	t.Helper()

	dir := t.TempDir()
	marker := filepath.Join(dir, "rebooted")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cmd := exec.CommandContext(ctx, "bash", "-c", pivot.Script(opts))
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"PIVOT_DISK=" + diskFile,
		"PIVOT_REBOOT_CMD=touch " + marker,
		"PIVOT_SKIP_MDADM=1",
		"PIVOT_SKIP_SWAPOFF=1", // never the test machine's own swap
		"PIVOT_RETRY_DELAY=0",
		"PIVOT_WORKDIR=" + filepath.Join(dir, "work"),
		"PIVOT_CONSOLE=" + filepath.Join(dir, "console"),
	}, extraEnv...)

	out, err := cmd.CombinedOutput()

	var disk []byte
	if diskFile != "" {
		disk, _ = os.ReadFile(diskFile)
	}

	_, statErr := os.Stat(marker)

	return run{out: string(out), err: err, diskBytes: disk, rebooted: statErr == nil}
}

func TestScriptWritesImage(t *testing.T) {
	t.Parallel()

	requireTool(t, "bash")
	requireTool(t, "curl")
	requireTool(t, "wipefs")
	zstd := requireTool(t, "zstd")

	image := make([]byte, 3<<20+12345) // not a multiple of dd's block size
	if _, err := rand.Read(image); err != nil {
		t.Fatal(err)
	}

	compressed := compress(t, zstd, image)

	tests := []struct {
		name       string
		body       []byte
		failFirst  int32
		attempts   int
		wantOK     bool
		wantReqs   int32
		wantOutput string
	}{
		{name: "first try", body: compressed, wantOK: true, wantReqs: 1},
		{name: "fails twice then succeeds", body: compressed, failFirst: 2, wantOK: true, wantReqs: 3},
		{name: "always fails", body: compressed, failFirst: -1, attempts: 3, wantReqs: 3, wantOutput: "after 3 attempts"},
		{name: "corrupt image", body: compressed[:len(compressed)/2], attempts: 2, wantReqs: 2, wantOutput: "could not download a valid image"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			srv := newImageServer(t, tt.body, tt.failFirst)

			// The "disk" starts larger than the image and full of old data.
			diskFile := filepath.Join(t.TempDir(), "disk.img")
			old := bytes.Repeat([]byte("ubuntu!"), len(image)/7+4096)
			if err := os.WriteFile(diskFile, old, 0o600); err != nil {
				t.Fatal(err)
			}

			opts := goldenOptions()
			opts.ImageFactoryURL = srv.url
			opts.DownloadAttempts = tt.attempts

			got := runScript(t, opts, diskFile)

			if got := srv.requests.Load(); got != tt.wantReqs {
				t.Errorf("image requests = %d, want %d", got, tt.wantReqs)
			}

			wantPath := "/image/" + schematic + "/v1.12.4/metal-amd64.raw.zst"
			if p, _ := srv.lastPath.Load().(string); p != wantPath {
				t.Errorf("requested %q, want %q", p, wantPath)
			}

			if !tt.wantOK {
				if got.err == nil {
					t.Fatalf("script succeeded, want failure\n%s", got.out)
				}

				if !strings.Contains(got.out, tt.wantOutput) {
					t.Errorf("output does not mention %q:\n%s", tt.wantOutput, got.out)
				}

				if got.rebooted {
					t.Error("script rebooted after a failure")
				}

				if !bytes.Equal(got.diskBytes, old) {
					t.Error("disk was modified although the download failed")
				}

				return
			}

			if got.err != nil {
				t.Fatalf("script failed: %v\n%s", got.err, got.out)
			}

			if !bytes.Equal(got.diskBytes, image) {
				t.Fatalf("disk holds %d bytes, want exactly the %d image bytes", len(got.diskBytes), len(image))
			}

			if !got.rebooted {
				t.Error("script did not run the reboot command")
			}
		})
	}
}

func TestScriptRefusesBadDisk(t *testing.T) {
	t.Parallel()

	requireTool(t, "bash")
	requireTool(t, "curl")
	requireTool(t, "zstd")

	// A fake lsblk on PATH makes the automatic disk choice observable: the
	// picked disk does not exist here, so the script must stop right after
	// naming it, before any download.
	fakeBin := t.TempDir()
	lsblk := `#!/bin/sh
cat <<'OUT'
/dev/sda      disk 0 0 480103981056
/dev/zram0    disk 0 0 1073741824
/dev/sr0      rom  1 0 1073741824
/dev/nvme1n1  disk 0 0 960197124096
/dev/sdb      disk 1 0 16008609792
/dev/nvme0n1  disk 0 0 960197124096
/dev/loop0    loop 0 1 67108864
OUT
`
	if err := os.WriteFile(filepath.Join(fakeBin, "lsblk"), []byte(lsblk), 0o700); err != nil {
		t.Fatal(err)
	}

	srv := newImageServer(t, []byte("unused"), 0)
	path := fakeBin + string(os.PathListSeparator) + os.Getenv("PATH")

	tests := []struct {
		name     string
		disk     string // rendered install disk
		seamDisk string // PIVOT_DISK
		want     []string
	}{
		{
			name: "automatic choice is the first NVMe disk",
			want: []string{"picked /dev/nvme0n1", "/dev/nvme0n1 is not a block device"},
		},
		{
			name: "configured disk missing",
			disk: "/dev/nvme9n1",
			want: []string{"/dev/nvme9n1 is not a block device"},
		},
		{
			name:     "test disk file missing",
			seamDisk: filepath.Join(t.TempDir(), "absent.img"),
			want:     []string{"absent.img is not a block device"},
		},
	}

	// Cleanups run after the parallel subtests have finished.
	t.Cleanup(func() {
		if n := srv.requests.Load(); n != 0 {
			t.Errorf("image was requested %d times before the disk was validated", n)
		}
	})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			opts := goldenOptions()
			opts.InstallDisk = tt.disk
			opts.ImageFactoryURL = srv.url

			got := runScript(t, opts, tt.seamDisk, "PATH="+path)
			if got.err == nil {
				t.Fatalf("script succeeded, want failure\n%s", got.out)
			}

			for _, want := range tt.want {
				if !strings.Contains(got.out, want) {
					t.Errorf("output does not mention %q:\n%s", want, got.out)
				}
			}

			if got.rebooted {
				t.Error("script rebooted")
			}
		})
	}
}

func compress(t *testing.T, zstd string, data []byte) []byte {
	t.Helper()

	cmd := exec.Command(zstd, "-q", "-c", "-3")
	cmd.Stdin = bytes.NewReader(data)

	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}

	return out
}

func requireTool(t *testing.T, name string) string {
	t.Helper()

	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it: apt-get install -y cloud-init shellcheck zstd)", name)
	}

	return path
}
