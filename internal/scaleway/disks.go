package scaleway

import (
	"context"
	"fmt"
	"strings"

	baremetal "github.com/scaleway/scaleway-sdk-go/api/baremetal/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"
)

// Disk is one disk an Elastic Metal offer comes with (the offer's disks:
// type "NVMe", "SSD" or "HDD", capacity in bytes).
type Disk struct {
	Type     string
	Capacity uint64
}

// OfferDisks returns the disks of an offer, as the catalogue lists them.
func (c *Client) OfferDisks(ctx context.Context, offerID string) (name string, disks []Disk, err error) {
	var offer *baremetal.Offer
	err = c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		var err error
		offer, err = c.bm.GetOffer(&baremetal.GetOfferRequest{Zone: c.zone, OfferID: offerID}, scw.WithContext(ctx))
		return classify(err, ra)
	})
	if err != nil {
		return "", nil, fmt.Errorf("get offer %s: %w", offerID, err)
	}
	for _, d := range offer.Disks {
		if d != nil {
			disks = append(disks, Disk{Type: d.Type, Capacity: uint64(d.Capacity)})
		}
	}
	return offer.Name, disks, nil
}

// DiskDevices names the block devices Linux gives an offer's disks: NVMe
// disks enumerate as /dev/nvme0n1, /dev/nvme1n1, …; SATA and SAS disks
// (SSD, HDD) as /dev/sda, /dev/sdb, …
func DiskDevices(disks []Disk) []string {
	var out []string
	nvme, sd := 0, 0
	for _, d := range disks {
		if strings.EqualFold(d.Type, "nvme") {
			out = append(out, fmt.Sprintf("/dev/nvme%dn1", nvme))
			nvme++
			continue
		}
		out = append(out, "/dev/sd"+string(rune('a'+sd)))
		sd++
	}
	return out
}

// DiskOnOffer reports whether device can be one of the offer's disks.
// known is false for names the offer cannot confirm or refute (by-id and
// by-path links, partitions): only /dev/nvmeXn1, /dev/sdX and virtio's
// /dev/vdX are judged.
func DiskOnOffer(disks []Disk, device string) (ok, known bool) {
	isNVMe := strings.HasPrefix(device, "/dev/nvme") && strings.HasSuffix(device, "n1") && !strings.Contains(device[len("/dev/nvme"):], "p")
	isSD := strings.HasPrefix(device, "/dev/sd") && len(device) == len("/dev/sda")
	isVD := strings.HasPrefix(device, "/dev/vd") && len(device) == len("/dev/vda")
	if !isNVMe && !isSD && !isVD {
		return false, false
	}
	for _, d := range DiskDevices(disks) {
		if d == device {
			return true, true
		}
	}
	return false, true
}

// DescribeDisks says what disks an offer has, for messages.
func DescribeDisks(disks []Disk) string {
	devs := DiskDevices(disks)
	parts := make([]string, len(disks))
	for i, d := range disks {
		parts[i] = fmt.Sprintf("%s (%s, %.2f TB)", devs[i], d.Type, float64(d.Capacity)/1e12)
	}
	if len(parts) == 0 {
		return "no disks listed"
	}
	return strings.Join(parts, ", ")
}
