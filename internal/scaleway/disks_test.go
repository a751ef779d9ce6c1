package scaleway

import (
	"strings"
	"testing"
)

func TestDiskOnOffer(t *testing.T) {
	t.Parallel()
	// EM-I215E-NVME in the recorded traffic: two NVMe disks.
	twoNVMe := []Disk{{Type: "NVMe", Capacity: 1920383410176}, {Type: "NVMe", Capacity: 1920383410176}}
	mixed := []Disk{{Type: "NVMe", Capacity: 1e12}, {Type: "HDD", Capacity: 8e12}, {Type: "HDD", Capacity: 8e12}}
	for _, tc := range []struct {
		disks     []Disk
		device    string
		ok, known bool
	}{
		{twoNVMe, "/dev/nvme0n1", true, true},
		{twoNVMe, "/dev/nvme1n1", true, true},
		{twoNVMe, "/dev/nvme2n1", false, true},
		{twoNVMe, "/dev/sda", false, true},
		{twoNVMe, "/dev/vda", false, true},
		{mixed, "/dev/sdb", true, true},
		{mixed, "/dev/sdc", false, true},
		{mixed, "/dev/nvme0n1", true, true},
		{twoNVMe, "/dev/disk/by-id/nvme-SAMSUNG", false, false},
		{twoNVMe, "/dev/nvme0n1p1", false, false},
	} {
		ok, known := DiskOnOffer(tc.disks, tc.device)
		if ok != tc.ok || known != tc.known {
			t.Errorf("DiskOnOffer(%v, %s) = %v, %v; want %v, %v", tc.disks, tc.device, ok, known, tc.ok, tc.known)
		}
	}
	if got := DescribeDisks(mixed); !strings.Contains(got, "/dev/nvme0n1 (NVMe, 1.00 TB), /dev/sda (HDD, 8.00 TB), /dev/sdb (HDD, 8.00 TB)") {
		t.Errorf("DescribeDisks = %s", got)
	}
}

// The emulator's offer carries the recorded disks.
func TestOfferDisksFromTheCatalogue(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, EmulatorOptions{})
	name, disks, err := ev.client.OfferDisks(testCtx(t, 5e9), CloudInitOfferID)
	if err != nil {
		t.Fatal(err)
	}
	if name != "EM-I215E-NVME" || len(disks) != 2 || disks[0].Type != "NVMe" {
		t.Fatalf("OfferDisks = %s, %+v", name, disks)
	}
}
