package cidata_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it: apt-get install -y xorriso genisoimage)", name)
	}
	return bin
}

func files() []cidata.File {
	big := bytes.Repeat([]byte("0123456789abcdef"), 700) // crosses sector boundaries
	return []cidata.File{
		{Name: "user-data", Data: append([]byte("version: v1alpha1\nmachine:\n  type: controlplane\n"), big...)},
		{Name: "meta-data", Data: []byte("instance-id: sandbox-cp-1\nlocal-hostname: sandbox-cp-1\n")},
		{Name: "network-config", Data: []byte("version: 2\n")},
		{Name: "empty", Data: nil},
	}
}

func write(t *testing.T, img []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// xorriso (libisofs) extracts the image with Rock Ridge, the way a Linux
// mount sees it: exact names, exact bytes.
func TestXorrisoReadsNamesAndContents(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "xorriso")
	for _, label := range []string{cidata.LabelCloudInit, cidata.LabelMetalISO} {
		img, err := cidata.Build(label, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), files()...)
		if err != nil {
			t.Fatal(err)
		}
		iso := write(t, img)
		out := filepath.Join(t.TempDir(), "x")
		res, err := exec.Command(bin, "-abort_on", "WARNING", "-indev", iso, "-osirrox", "on", "-extract", "/", out).CombinedOutput()
		if err != nil {
			t.Fatalf("xorriso: %v\n%s", err, res)
		}
		if !strings.Contains(string(res), "Volume id    : '"+label+"'") {
			t.Errorf("xorriso does not report volume id %q:\n%s", label, res)
		}
		entries, _ := os.ReadDir(out)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if got := strings.Join(names, " "); got != "empty meta-data network-config user-data" {
			t.Errorf("names %q", got)
		}
		for _, f := range files() {
			got, err := os.ReadFile(filepath.Join(out, f.Name))
			if err != nil || !bytes.Equal(got, f.Data) {
				t.Errorf("%s: %d bytes back (%v), want %d", f.Name, len(got), err, len(f.Data))
			}
		}
	}
}

// isoinfo (genisoimage's reader) checks the descriptors and finds the Rock
// Ridge signature; blkid is how udev, cloud-init and Talos find the volume
// by its label.
func TestIsoinfoAndBlkidSeeTheLabel(t *testing.T) {
	t.Parallel()
	isoinfo := requireTool(t, "isoinfo")
	img, err := cidata.Build(cidata.LabelCloudInit, time.Time{}, files()...)
	if err != nil {
		t.Fatal(err)
	}
	iso := write(t, img)
	out, err := exec.Command(isoinfo, "-d", "-i", iso).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo: %v\n%s", err, out)
	}
	for _, want := range []string{"Volume id: cidata", "Rock Ridge signatures version 1 found", fmt.Sprintf("Volume size is: %d", len(img)/2048)} {
		if !strings.Contains(string(out), want) {
			t.Errorf("isoinfo -d lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(isoinfo, "-R", "-l", "-i", iso).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " user-data") || !strings.Contains(string(out), " network-config") {
		t.Errorf("isoinfo -R -l: %v\n%s", err, out)
	}
	if blkid, err := exec.LookPath("blkid"); err == nil {
		out, err := exec.Command(blkid, "-p", "-o", "export", iso).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "LABEL=cidata\n") || !strings.Contains(string(out), "TYPE=iso9660\n") {
			t.Errorf("blkid: %v\n%s", err, out)
		}
	}
}

func TestBuildIsDeterministicAndRefusesBadInput(t *testing.T) {
	t.Parallel()
	a, _ := cidata.Build(cidata.LabelCloudInit, time.Time{}, files()...)
	rev := files()
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b, _ := cidata.Build(cidata.LabelCloudInit, time.Time{}, rev...)
	if !bytes.Equal(a, b) {
		t.Error("the same files in another order give another image")
	}
	for name, fs := range map[string][]cidata.File{
		"collision": {{Name: "user-data"}, {Name: "user_data"}},
		"slash":     {{Name: "a/b"}},
		"dotfile":   {{Name: ".hidden"}},
	} {
		if _, err := cidata.Build(cidata.LabelCloudInit, time.Time{}, fs...); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := cidata.Build("bad label!", time.Time{}); err == nil {
		t.Error("bad label accepted")
	}
}
