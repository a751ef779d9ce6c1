package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ImageInfo is what an emulated image says about itself: the emulated
// Proxmox and Talos read it back to know which extensions and kernel
// arguments the booted system has, as the real ones would find them in the
// image.
type ImageInfo struct {
	Schematic   string   `json:"schematic"`
	Version     string   `json:"version"`
	Platform    string   `json:"platform"`
	Arch        string   `json:"arch"`
	Kind        string   `json:"kind"`        // "disk", "iso", "kernel", "initramfs"
	DiskFormat  string   `json:"disk_format"` // raw, qcow2, vhd, ova (disk images)
	Compression string   `json:"compression"` // "", gz, xz, zst, tar.gz
	Extensions  []string `json:"extensions,omitempty"`
	KernelArgs  []string `json:"kernel_args,omitempty"`
}

// imageMagic starts every emulated image, so that nothing mistakes it for a
// real disk.
const imageMagic = "RAWKODE-CLOUD-EMULATED-TALOS-IMAGE\n"

// EncodeImage is the body the emulator serves for an asset.
func EncodeImage(info ImageInfo) []byte {
	data, _ := json.Marshal(info)
	return append([]byte(imageMagic), append(data, '\n')...)
}

// DecodeImage reads back a body EncodeImage produced.
func DecodeImage(body []byte) (ImageInfo, error) {
	rest, ok := bytes.CutPrefix(body, []byte(imageMagic))
	if !ok {
		return ImageInfo{}, fmt.Errorf("not an emulated Talos image")
	}
	var info ImageInfo
	if err := json.Unmarshal(rest, &info); err != nil {
		return ImageInfo{}, fmt.Errorf("emulated Talos image: %w", err)
	}
	return info, nil
}

// platforms the factory builds images for (Talos's platform list).
var platforms = map[string]bool{
	"metal": true, "nocloud": true, "openstack": true, "aws": true, "gcp": true, "azure": true,
	"digital-ocean": true, "vmware": true, "hcloud": true, "scaleway": true, "upcloud": true,
	"exoscale": true, "akamai": true, "oracle": true, "cloudstack": true, "opennebula": true,
	"vultr": true, "equinixMetal": true,
}

// parseAsset follows the factory's ParseFromPath (internal/profile) for the
// assets this CLI can ask for: <platform>-<arch>.iso, kernel-<arch>,
// initramfs-<arch>.xz and disk images <platform>-<arch>.<raw|qcow2|vhd|ova>
// with an optional .gz/.xz/.zst/.tar.gz, with the factory's error texts.
func parseAsset(asset string) (ImageInfo, error) {
	var info ImageInfo
	if rest, ok := strings.CutPrefix(asset, "kernel-"); ok {
		info.Kind, info.Platform = "kernel", "metal"
		return info, parseArch(rest, &info)
	}
	if rest, ok := strings.CutPrefix(asset, "initramfs-"); ok {
		if rest, ok = strings.CutSuffix(rest, ".xz"); ok {
			info.Kind, info.Platform = "initramfs", "metal"
			return info, parseArch(rest, &info)
		}
	}
	if rest, ok := strings.CutSuffix(asset, ".iso"); ok {
		info.Kind = "iso"
		return info, parsePlatformArch(rest, &info)
	}
	info.Kind = "disk"
	p := asset
	for _, c := range []string{".tar.gz", ".gz", ".xz", ".zst"} {
		if rest, ok := strings.CutSuffix(p, c); ok {
			p, info.Compression = rest, strings.TrimPrefix(c, ".")
			break
		}
	}
	for _, f := range []string{"raw", "qcow2", "vhd", "ova"} {
		if rest, ok := strings.CutSuffix(p, "."+f); ok {
			p, info.DiskFormat = rest, f
			break
		}
	}
	if info.DiskFormat == "" {
		return info, fmt.Errorf("error parsing profile from path: invalid profile path: %q", p)
	}
	return info, parsePlatformArch(p, &info)
}

func parsePlatformArch(s string, info *ImageInfo) error {
	platform, rest, ok := strings.Cut(s, "-")
	if !ok {
		return fmt.Errorf("error parsing profile from path: invalid platform-arch: %q", s)
	}
	if platform == "digital" && strings.HasPrefix(rest, "ocean-") {
		platform, rest = "digital-ocean", strings.TrimPrefix(rest, "ocean-")
	}
	if !platforms[platform] {
		return fmt.Errorf("error parsing profile from path: invalid platform: %q", platform)
	}
	info.Platform = platform
	return parseArch(rest, info)
}

func parseArch(s string, info *ImageInfo) error {
	switch s {
	case "amd64", "arm64":
		info.Arch = s
	default:
		return fmt.Errorf("error parsing profile from path: invalid architecture: %q", s)
	}
	return nil
}
