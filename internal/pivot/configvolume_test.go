package pivot_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
)

func configVolume(t *testing.T) []byte {
	t.Helper()
	iso, err := cidata.Build(cidata.LabelMetalISO, time.Time{}, cidata.File{Name: "config.yaml", Data: []byte("version: v1alpha1\nmachine:\n  type: controlplane\n")})
	if err != nil {
		t.Fatal(err)
	}
	return iso
}

func TestConfigPartitionNames(t *testing.T) {
	t.Parallel()
	for disk, want := range map[string]string{"/dev/nvme0n1": "nvme0n1p9", "/dev/sda": "sda9", "/dev/mmcblk0": "mmcblk0p9", "/dev/vdb": "vdb9"} {
		if got := pivot.ConfigPartition(disk); got != want {
			t.Errorf("ConfigPartition(%s) = %s, want %s", disk, got, want)
		}
	}
}

func TestConfigVolumeNeedsInstallDisk(t *testing.T) {
	t.Parallel()
	opts := goldenOptions()
	opts.InstallDisk = ""
	opts.ConfigVolume = configVolume(t)
	if _, err := pivot.Render(opts); err == nil || !strings.Contains(err.Error(), "explicit install disk") {
		t.Fatalf("Render without install disk = %v, want a refusal", err)
	}
}

func TestInspectRoundTrip(t *testing.T) {
	t.Parallel()
	opts := goldenOptions()
	opts.ConfigVolume = configVolume(t)
	ud, err := pivot.Render(opts)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pivot.Inspect(ud)
	if err != nil {
		t.Fatal(err)
	}
	if d.ImageURL != opts.ImageURL() || !bytes.Equal(d.ConfigVolume, opts.ConfigVolume) {
		t.Fatalf("Inspect = %q / %d bytes, want %q / %d bytes", d.ImageURL, len(d.ConfigVolume), opts.ImageURL(), len(opts.ConfigVolume))
	}
	plain, _ := pivot.Render(goldenOptions())
	if d, err := pivot.Inspect(plain); err != nil || d.ConfigVolume != nil {
		t.Fatalf("Inspect(maintenance user data) = %v, %v; want no config volume", d.ConfigVolume != nil, err)
	}
}

func TestConfigVolumeUserDataPassesTools(t *testing.T) {
	t.Parallel()
	opts := goldenOptions()
	opts.ConfigVolume = configVolume(t)
	if bin, err := exec.LookPath("shellcheck"); err == nil {
		cmd := exec.Command(bin, "--shell=bash", "-")
		cmd.Stdin = strings.NewReader(pivot.Script(opts))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck rejected the script with a config volume: %v\n%s", err, out)
		}
	}
	if bin, err := exec.LookPath("cloud-init"); err == nil {
		data, err := pivot.Render(opts)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "user-data")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "schema", "-c", file).CombinedOutput(); err != nil {
			t.Errorf("cloud-init schema rejected user data with a config volume: %v\n%s", err, out)
		}
	}
}

// TestScriptWritesConfigVolume runs the pivot against a file-backed disk
// whose "Talos image" is a real GPT disk image, and reads the result back
// the way Talos's volume discovery would: a partition named metal-iso at
// the fixed number, holding an ISO labelled metal-iso with config.yaml.
func TestScriptWritesConfigVolume(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	requireTool(t, "wipefs")
	sfdisk := requireTool(t, "sfdisk")
	zstd := requireTool(t, "zstd")

	// A 16 MiB image with a GPT and one partition in its first half, as
	// Talos's metal image leaves most of a disk unpartitioned.
	raw := filepath.Join(t.TempDir(), "talos.raw")
	if err := os.WriteFile(raw, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "-q", raw)
	cmd.Stdin = strings.NewReader("label: gpt\nstart=2048, size=4096, name=EFI\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make test image: %v\n%s", err, out)
	}
	image, _ := os.ReadFile(raw)
	srv := newImageServer(t, compress(t, zstd, image), 0)

	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, bytes.Repeat([]byte("ubuntu!"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := goldenOptions()
	opts.ImageFactoryURL = srv.url
	opts.ConfigVolume = configVolume(t)
	vol := filepath.Join(t.TempDir(), "metal-iso.img")
	if err := os.WriteFile(vol, opts.ConfigVolume, 0o600); err != nil {
		t.Fatal(err)
	}
	got := runScript(t, opts, disk, "PIVOT_CONFIG_VOLUME="+vol)
	if got.err != nil {
		t.Fatalf("script failed: %v\n%s", got.err, got.out)
	}
	if _, err := os.Stat(vol); !os.IsNotExist(err) {
		t.Error("the config volume file was left behind on tmpfs")
	}

	out, err := exec.Command(sfdisk, "-J", disk).Output()
	if err != nil {
		t.Fatalf("read partition table: %v", err)
	}
	var table struct {
		PartitionTable struct {
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &table); err != nil {
		t.Fatal(err)
	}
	var start int64 = -1
	for _, p := range table.PartitionTable.Partitions {
		if strings.HasSuffix(p.Node, "9") && p.Name == "metal-iso" {
			start = p.Start
		}
	}
	if start < 0 {
		t.Fatalf("no partition 9 named metal-iso:\n%s", out)
	}
	label, files, err := cidata.Read(got.diskBytes[start*512:])
	if err != nil {
		t.Fatalf("partition 9 holds no ISO: %v", err)
	}
	cfg, ok := cidata.Lookup(files, "config.yaml")
	if label != cidata.LabelMetalISO || !ok || !bytes.Contains(cfg, []byte("controlplane")) {
		t.Fatalf("partition 9: label %q, config.yaml present %v", label, ok)
	}
	if !bytes.Equal(got.diskBytes[2048*512:start*512], image[2048*512:start*512]) {
		t.Error("the image's own partitions were changed")
	}
}
