package imagefactory_test

import (
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
)

// The expected IDs are the ones upstream pins in its own tests
// (siderolabs/image-factory pkg/schematic/schematic_test.go), so a drift in
// field order, tags or YAML library shows here before it shows as a
// mismatched download.
func TestSchematicIDMatchesUpstream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    imagefactory.Schematic
		want string
	}{
		{"empty", imagefactory.Schematic{}, "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"},
		{"kernel args", imagefactory.Schematic{Customization: imagefactory.Customization{ExtraKernelArgs: []string{"noapic", "nolapic"}}},
			"9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"},
		{"meta", imagefactory.Schematic{Customization: imagefactory.Customization{Meta: []imagefactory.MetaValue{{Key: 0x0a, Value: "foo"}}}},
			"d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f"},
		{"secureboot", imagefactory.Schematic{Customization: imagefactory.Customization{SecureBoot: imagefactory.SecureBootCustomization{IncludeWellKnownCertificates: true}}},
			"fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6"},
		{"4k sectors", imagefactory.Schematic{Customization: imagefactory.Customization{DiskImage: imagefactory.DiskImageCustomization{SectorSize: 4096}}},
			"92833e9ddd9bb9e11b2464fa5525429f01866306d52ebd882ee08d7918f6d1ea"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.s.ID()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ID = %s, want %s", got, tc.want)
			}
		})
	}
}

// Upstream's TestUnmarshalID: differently written inputs that mean the same
// schematic hash the same once parsed.
func TestParseSchematicNormalizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{}`:                                     "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
		`customization: {}`:                      "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
		`customization: {"extraKernelArgs": []}`: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
		`{"customization": {"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}}`: "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
	} {
		s, err := imagefactory.ParseSchematic([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got, _ := s.ID(); got != want {
			t.Errorf("%s: ID = %s, want %s", in, got, want)
		}
	}
	if _, err := imagefactory.ParseSchematic([]byte("customization:\n  extraKernelArg: [talos.config=metal-iso]\n")); err == nil {
		t.Error("a misspelled field was accepted")
	}
}

// The two schematics this CLI asks for, pinned: the IDs appear in rendered
// plans and in image URLs, so a change must be deliberate.
func TestProductSchematics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    imagefactory.Schematic
		yaml string
	}{
		{"proxmox nocloud", imagefactory.ProxmoxVMSchematic(),
			"customization:\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/iscsi-tools\n            - siderolabs/qemu-guest-agent\n"},
		{"metal-iso", imagefactory.MetalISOSchematic(),
			"customization:\n    extraKernelArgs:\n        - talos.config=metal-iso\n"},
	} {
		data, err := tc.s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != tc.yaml {
			t.Errorf("%s: canonical form\n%s\nwant\n%s", tc.name, data, tc.yaml)
		}
	}
}
