// Package imagefactory is the client for the Talos Image Factory: it creates
// schematics (which extensions and kernel arguments an image carries) through
// `POST /schematics` and says where the factory serves the images built from
// them. The Proxmox topology downloads its Talos VMs' `nocloud` disk from
// there (with qemu-guest-agent and iscsi-tools); metal's config-at-install
// delivery puts `talos.config=metal-iso` on the kernel command line the same way.
//
// The factory publishes its own Go client (image-factory's pkg/client), but
// its schematic package pulls in the whole Talos main module (v0.9.x imports
// talos/pkg/imager/profile) and newer releases require Talos machinery 1.13+,
// where this CLI pins 1.12.4. The wire is small (YAML in, JSON out), so this
// package speaks it with net/http and keeps the schematic's canonical form
// exact: the ID is the SHA-256 of that form, and the tests pin the IDs that
// upstream's own tests pin.
package imagefactory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"go.yaml.in/yaml/v4"
)

// Official extension names, as the factory lists them for a Talos version.
const (
	ExtensionQEMUGuestAgent = "siderolabs/qemu-guest-agent"
	ExtensionISCSITools     = "siderolabs/iscsi-tools"
)

// Schematic is the requested image customization. Field order and YAML tags
// follow upstream's pkg/schematic exactly, because the factory derives the
// schematic ID from this serialization: every field is omitted when empty, so
// a schematic that only sets extensions and kernel arguments hashes the same
// here as there.
type Schematic struct {
	// Owner is an Enterprise-edition field; the public factory refuses it.
	Owner         string        `yaml:"owner,omitempty"`
	Overlay       Overlay       `yaml:"overlay,omitempty"`
	Customization Customization `yaml:"customization"`
}

// Overlay selects a board overlay (single-board computers); unused here.
type Overlay struct {
	Image   string         `yaml:"image"`
	Name    string         `yaml:"name"`
	Options map[string]any `yaml:"options,omitempty"`
}

// Customization is what the image carries beyond stock Talos.
type Customization struct {
	// EmbeddedMachineConfiguration would bake a machine config into the
	// image, which the factory then serves to anyone holding the ID: never
	// used for secrets here.
	EmbeddedMachineConfiguration string `yaml:"embeddedMachineConfiguration,omitempty"`
	// ExtraKernelArgs are appended to the kernel command line, e.g.
	// talos.config=metal-iso.
	ExtraKernelArgs []string `yaml:"extraKernelArgs,omitempty"`
	// Meta holds initial META values (network configuration only; never the
	// machine config).
	Meta []MetaValue `yaml:"meta,omitempty"`
	// SystemExtensions are the official extensions baked into the image.
	SystemExtensions SystemExtensions `yaml:"systemExtensions,omitempty"`
	// Bootloader is upstream's imageropts.BootloaderKind in its text form.
	Bootloader string                  `yaml:"bootloader,omitempty"`
	SecureBoot SecureBootCustomization `yaml:"secureboot,omitempty"`
	DiskImage  DiskImageCustomization  `yaml:"diskImage,omitempty"`
}

// MetaValue is one initial META key.
type MetaValue struct {
	Key   uint8  `yaml:"key"`
	Value string `yaml:"value"`
}

// SystemExtensions lists official extensions; the factory picks the version
// that matches the Talos version of each download.
type SystemExtensions struct {
	OfficialExtensions []string `yaml:"officialExtensions,omitempty"`
}

// SecureBootCustomization holds the SecureBoot enrolment options; unused here.
type SecureBootCustomization struct {
	EnrollKeys                   string `yaml:"enrollKeys,omitempty"`
	IncludeWellKnownCertificates bool   `yaml:"includeWellKnownCertificates,omitempty"`
}

// DiskImageCustomization holds disk image options; unused here.
type DiskImageCustomization struct {
	SectorSize uint `yaml:"sectorSize,omitempty"`
}

// Marshal returns the canonical text form the factory hashes.
func (s Schematic) Marshal() ([]byte, error) {
	return yaml.Marshal(s)
}

// ID is the content address of s: the hex SHA-256 of its canonical form. The
// factory answers `POST /schematics` with the same value, so an ID can be
// known (and rendered by `plan`) without a request.
func (s Schematic) ID() (string, error) {
	data, err := s.Marshal()
	if err != nil {
		return "", fmt.Errorf("marshal schematic: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// ParseSchematic reads a schematic the way the factory does: unknown fields
// are an error, so a misspelled key fails instead of silently changing nothing.
func ParseSchematic(data []byte) (Schematic, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Schematic
	if err := dec.Decode(&s); err != nil {
		return Schematic{}, err
	}
	return s, nil
}

// ProxmoxVMSchematic is the image of the Proxmox topology's Talos VMs: the
// guest agent lets Proxmox see the VM's addresses and shut it down cleanly,
// and iscsi-tools is what democratic-csi's zfs-generic-iscsi volumes need on
// every node. Extensions are sorted so the ID does not depend on the order
// they were listed in.
func ProxmoxVMSchematic() Schematic {
	return Schematic{Customization: Customization{SystemExtensions: SystemExtensions{
		OfficialExtensions: []string{ExtensionISCSITools, ExtensionQEMUGuestAgent},
	}}}
}

// MetalISOSchematic makes Talos on the metal platform read its machine config
// from a volume labelled metal-iso at first boot, instead of waiting in
// maintenance mode for anyone to apply one. The argument is not secret.
func MetalISOSchematic() Schematic {
	return Schematic{Customization: Customization{ExtraKernelArgs: []string{"talos.config=metal-iso"}}}
}
