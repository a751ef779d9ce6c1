package pivot_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// The md RAID handling of the pivot script (stop_raid) runs real mdadm
// against loop devices laid out like Scaleway's two-disk RAID1 install: a GPT
// with two partitions on each disk, partition N of both disks being the two
// members of one array. The install disk is the first one; the second disk
// belongs to nobody the pivot may touch.
//
// The md driver is not needed for most of it: mdadm reads (--examine) and
// clears (--zero-superblock) member superblocks on any block device, so the
// members are written byte-exactly here and the assertions read them back
// with mdadm. Where the kernel has md support, real arrays are assembled over
// the loop devices as well and the script has to stop or leave them.

// Layout of the version-1 superblock (struct mdp_superblock_1 in the Linux
// kernel's include/uapi/linux/raid/md_p.h; the checksum is calc_sb_1_csum in
// mdadm's super1.c). All fields are little-endian. Metadata 1.2, mdadm's
// default, puts it 4 KiB from the start of the member (super_offset 8
// sectors).
const (
	mdMagic             = 0xa92b4efc
	mdSuper12Offset     = 4096
	mdDataOffsetSectors = 2048
	sbSize              = 256 // fixed part; dev_roles[max_dev] follows

	offMagic        = 0   // __le32 magic
	offMajorVersion = 4   // __le32 major_version (1)
	offSetUUID      = 16  // __u8 set_uuid[16]
	offSetName      = 32  // char set_name[32]
	offCtime        = 64  // __le64 ctime
	offLevel        = 72  // __le32 level
	offSize         = 80  // __le64 size (sectors used per member)
	offRaidDisks    = 92  // __le32 raid_disks
	offDataOffset   = 128 // __le64 data_offset (sectors)
	offDataSize     = 136 // __le64 data_size (sectors)
	offSuperOffset  = 144 // __le64 super_offset (sectors)
	offDevNumber    = 160 // __le32 dev_number
	offDeviceUUID   = 168 // __u8 device_uuid[16]
	offUtime        = 192 // __le64 utime
	offEvents       = 200 // __le64 events
	offResyncOffset = 208 // __le64 resync_offset
	offSbCsum       = 216 // __le32 sb_csum
	offMaxDev       = 220 // __le32 max_dev
	offDevRoles     = 256 // __le16 dev_roles[max_dev]
)

type mdArray struct {
	name string
	uuid [16]byte
}

// mdMember returns the metadata-1.2 superblock of member devNumber (of two)
// of a clean RAID1 array, for a member of memberSectors 512-byte sectors.
func mdMember(a mdArray, devNumber int, memberSectors uint64) []byte {
	const maxDev = 2
	sb := make([]byte, sbSize+2*maxDev)
	le := binary.LittleEndian
	le.PutUint32(sb[offMagic:], mdMagic)
	le.PutUint32(sb[offMajorVersion:], 1)
	copy(sb[offSetUUID:offSetUUID+16], a.uuid[:])
	copy(sb[offSetName:offSetName+32], a.name)
	le.PutUint64(sb[offCtime:], 1_700_000_000)
	le.PutUint32(sb[offLevel:], 1)
	dataSize := memberSectors - mdDataOffsetSectors
	le.PutUint64(sb[offSize:], dataSize)
	le.PutUint32(sb[offRaidDisks:], 2)
	le.PutUint64(sb[offDataOffset:], mdDataOffsetSectors)
	le.PutUint64(sb[offDataSize:], dataSize)
	le.PutUint64(sb[offSuperOffset:], mdSuper12Offset/512)
	le.PutUint32(sb[offDevNumber:], uint32(devNumber))
	_, _ = rand.Read(sb[offDeviceUUID : offDeviceUUID+16])
	le.PutUint64(sb[offUtime:], 1_700_000_000)
	le.PutUint64(sb[offEvents:], 1)
	le.PutUint64(sb[offResyncOffset:], ^uint64(0)) // in sync
	le.PutUint32(sb[offMaxDev:], maxDev)
	for role := 0; role < maxDev; role++ {
		le.PutUint16(sb[offDevRoles+2*role:], uint16(role))
	}
	// calc_sb_1_csum: the 32-bit little-endian words up to dev_roles[max_dev]
	// summed into 64 bits (sb_csum itself counted as 0), folded once.
	var sum uint64
	for i := 0; i+4 <= len(sb); i += 4 {
		sum += uint64(le.Uint32(sb[i:]))
	}
	le.PutUint32(sb[offSbCsum:], uint32(sum&0xffffffff+sum>>32))
	return sb
}

func newArray(t *testing.T, name string) mdArray {
	t.Helper()
	a := mdArray{name: name}
	if _, err := rand.Read(a.uuid[:]); err != nil {
		t.Fatal(err)
	}
	return a
}

// Each test disk: 32 MiB, GPT, partition 1 and 2 of 8 MiB each.
var partStarts = [2]uint64{2048, 18432}

const partSectors = 16384

// raidDisk builds a disk image whose partition i carries a member superblock
// of arrays[i] (none when arrays[i] is nil), attaches it to a loop device
// with its partitions, and returns the device, its partitions and the file.
func raidDisk(t *testing.T, devNumber int, arrays ...*mdArray) (dev string, parts [2]string, file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("label: gpt\nstart=%d, size=%d\nstart=%d, size=%d\n", partStarts[0], partSectors, partStarts[1], partSectors)
	cmd := exec.Command("sfdisk", "-q", file)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("partition test disk: %v\n%s", err, out)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range arrays {
		if a == nil {
			continue
		}
		if _, err := f.WriteAt(mdMember(*a, devNumber, partSectors), int64(partStarts[i]*512+mdSuper12Offset)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command("losetup", "--find", "--show", "--partscan", file).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device for the RAID test: losetup: %v: %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("detach %s: %v: %s", dev, err, out)
		}
	})
	for i := range parts {
		parts[i] = fmt.Sprintf("%sp%d", dev, i+1)
	}
	// The kernel scans the partitions while attaching the device; a kernel
	// that cannot read a GPT leaves that to user space, and partx adds them.
	if !blockDevices(parts[:]...) {
		if out, err := exec.Command("partx", "--add", dev).CombinedOutput(); err != nil {
			t.Fatalf("partx --add %s: %v: %s", dev, err, out)
		}
		testwait.For(t, 10*time.Second, fmt.Sprintf("partitions of %s to appear as %v", dev, parts), func() bool { return blockDevices(parts[:]...) })
	}
	return dev, parts, file
}

func blockDevices(paths ...string) bool {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&os.ModeDevice == 0 {
			return false
		}
	}
	return true
}

// examine returns what mdadm --examine says about dev and whether it found
// a superblock.
func examine(t *testing.T, dev string) (string, bool) {
	t.Helper()
	out, err := exec.Command("mdadm", "--examine", dev).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("mdadm --examine %s: %v", dev, err)
	}
	return string(out), err == nil
}

func uuidText(u [16]byte) string {
	// mdadm prints the array UUID as four 32-bit groups: 0011223344:... .
	return fmt.Sprintf("%x:%x:%x:%x", u[0:4], u[4:8], u[8:12], u[12:16])
}

// runStopRAID sources the rendered script without its last line (the call of
// main) and runs stop_raid against the install disk.
func runStopRAID(t *testing.T, disk string) (string, error) {
	t.Helper()
	script := pivot.Script(goldenOptions())
	const call = "\nmain \"$@\"\n"
	if !strings.HasSuffix(script, call) {
		t.Fatalf("the script no longer ends with %q; the test cannot source its functions", call)
	}
	script = strings.TrimSuffix(script, call) + "\nstop_raid\n"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"PIVOT_DISK=" + disk,
		"PIVOT_CONSOLE=" + filepath.Join(t.TempDir(), "console"),
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func requireRAIDTools(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mdadm"); err != nil {
		t.Skip("mdadm is not installed (CI installs it: apt-get install -y mdadm); the md RAID handling of the pivot script is not tested")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: the md RAID test needs loop devices (CI runs as root)")
	}
	for _, tool := range []string{"losetup", "sfdisk", "lsblk", "partx"} {
		requireTool(t, tool)
	}
}

// TestStopRAIDClearsOnlyTheInstallDisk: no array is assembled (as after a
// failed assembly, or on a kernel without md), both disks carry members of
// the two arrays. stop_raid must clear the install disk's member superblocks
// and leave every byte of the other disk alone.
func TestStopRAIDClearsOnlyTheInstallDisk(t *testing.T) {
	t.Parallel()
	requireRAIDTools(t)

	boot, root := newArray(t, "rescue:0"), newArray(t, "rescue:1")
	install, installParts, installFile := raidDisk(t, 0, &boot, &root)
	_, otherParts, otherFile := raidDisk(t, 1, &boot, &root)

	for _, p := range append(installParts[:], otherParts[:]...) {
		if out, ok := examine(t, p); !ok {
			t.Fatalf("mdadm does not read the test superblock on %s: %s", p, out)
		}
	}
	if out, _ := examine(t, installParts[0]); !strings.Contains(out, uuidText(boot.uuid)) || !strings.Contains(out, " - correct") {
		t.Fatalf("mdadm reads the test superblock differently than written:\n%s", out)
	}
	installBefore, _ := os.ReadFile(installFile)
	otherBefore, _ := os.ReadFile(otherFile)

	out, err := runStopRAID(t, install)
	if err != nil {
		t.Fatalf("stop_raid failed: %v\n%s", err, out)
	}
	for _, p := range installParts {
		if got, ok := examine(t, p); ok {
			t.Errorf("%s still has an md superblock after stop_raid:\n%s", p, got)
		}
		if !strings.Contains(out, "cleared the md superblock on "+p) {
			t.Errorf("output does not say %s was cleared:\n%s", p, out)
		}
	}
	for i, p := range otherParts {
		got, ok := examine(t, p)
		want := []mdArray{boot, root}[i]
		if !ok || !strings.Contains(got, uuidText(want.uuid)) {
			t.Errorf("%s (not the install disk) lost its superblock of %s:\n%s", p, want.name, got)
		}
	}
	otherAfter, _ := os.ReadFile(otherFile)
	if !bytes.Equal(otherBefore, otherAfter) {
		t.Error("stop_raid changed the disk that is not the install disk")
	}

	// Nothing but the two superblocks changed on the install disk: the
	// partition table and data are wipe's and write_image's business.
	installAfter, _ := os.ReadFile(installFile)
	for _, start := range partStarts {
		at := int(start*512 + mdSuper12Offset)
		copy(installBefore[at:at+sbSize+4], installAfter[at:at+sbSize+4])
	}
	if !bytes.Equal(installBefore, installAfter) {
		t.Error("stop_raid changed the install disk beyond the member superblocks")
	}
}

// TestStopRAIDWithAssembledArrays runs the whole path with the md driver:
// mdadm --create assembles one array across both disks and one only on the
// other disk; stop_raid must stop the first and clear its member on the
// install disk, and leave the second running with its members intact.
func TestStopRAIDWithAssembledArrays(t *testing.T) {
	t.Parallel()
	requireRAIDTools(t)
	if _, err := os.Stat("/proc/mdstat"); err != nil {
		t.Skip("this kernel has no md support (/proc/mdstat is missing): the create → stop → zero path over loop devices did not run; " +
			"TestStopRAIDClearsOnlyTheInstallDisk covers the superblocks without assembled arrays")
	}

	install, installParts, _ := raidDisk(t, 0)
	_, otherParts, _ := raidDisk(t, 1)

	mdShared, mdOther := freeMD(t), ""
	create(t, mdShared, installParts[0], otherParts[0])
	mdOther = freeMD(t)
	create(t, mdOther, otherParts[1], "missing")

	out, err := runStopRAID(t, install)
	if err != nil {
		t.Fatalf("stop_raid failed: %v\n%s", err, out)
	}
	if active(t, mdShared) {
		t.Errorf("%s (a member on the install disk) is still running:\n%s", mdShared, out)
	}
	if got, ok := examine(t, installParts[0]); ok {
		t.Errorf("%s still has an md superblock:\n%s", installParts[0], got)
	}
	if _, ok := examine(t, otherParts[0]); !ok {
		t.Errorf("%s (the other disk's member of the stopped array) lost its superblock", otherParts[0])
	}
	if !active(t, mdOther) {
		t.Errorf("stop_raid stopped %s, which has no member on the install disk:\n%s", mdOther, out)
	}
	if !strings.Contains(out, "leaving "+mdOther+" alone") {
		t.Errorf("output does not say %s was left alone:\n%s", mdOther, out)
	}
}

// freeMD names an md device that no array uses yet.
func freeMD(t *testing.T) string {
	t.Helper()
	stat, _ := os.ReadFile("/proc/mdstat")
	for n := 100; n < 127; n++ {
		name := fmt.Sprintf("md%d", n)
		if _, err := os.Stat("/dev/" + name); err == nil || strings.Contains(string(stat), name+" ") {
			continue
		}
		return "/dev/" + name
	}
	t.Fatal("no free md device between md100 and md126")
	return ""
}

func create(t *testing.T, md string, members ...string) {
	t.Helper()
	args := append([]string{"--create", md, "--run", "--metadata=1.2", "--level=1", "--raid-devices=2", "--assume-clean"}, members...)
	if out, err := exec.Command("mdadm", args...).CombinedOutput(); err != nil {
		t.Fatalf("mdadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// Registered after the loop devices' cleanups, so it runs before them.
	t.Cleanup(func() { _ = exec.Command("mdadm", "--stop", md).Run() })
}

func active(t *testing.T, md string) bool {
	t.Helper()
	stat, err := os.ReadFile("/proc/mdstat")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(stat), filepath.Base(md)+" : active")
}
