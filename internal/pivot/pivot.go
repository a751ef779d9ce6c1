// Package pivot renders the cloud-init user data that turns the Ubuntu which
// Scaleway installs on an Elastic Metal server into Talos Linux.
//
// Scaleway only delivers a server with an operating system installed, so the
// server is ordered with Ubuntu and this user data: cloud-init writes a shell
// script to tmpfs and runs it once. The script downloads the Image Factory's
// raw metal image into memory, verifies it, releases the install disk from
// any md RAID array, wipes its signatures, writes the image over it with
// `zstd -dc | dd` and reboots into Talos maintenance mode.
//
// Install disk: when Options.InstallDisk is empty the script picks, on the
// server, the first whole disk (lsblk TYPE "disk") that is neither removable
// nor read-only and not RAM-backed, in byte order of its device path — so
// /dev/nvme0n1 before /dev/nvme1n1 before /dev/sda.
package pivot

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultImageFactoryURL is Sidero Labs' public Image Factory.
const DefaultImageFactoryURL = "https://factory.talos.dev"

// DefaultDownloadAttempts bounds how often the script tries to download the
// image before giving up (and leaving Ubuntu untouched).
const DefaultDownloadAttempts = 5

// ScriptPath is where cloud-init writes the pivot script on the server. It is
// on tmpfs because the script overwrites the disk Ubuntu runs from.
const ScriptPath = "/run/rawkode-cloud/talos-pivot.sh"

//go:embed script.sh
var scriptTemplate string

// Options says which Talos image to install and where.
type Options struct {
	// SchematicID is the Image Factory schematic (64 hex characters).
	SchematicID string
	// TalosVersion is the Talos release, e.g. "v1.12.4".
	TalosVersion string
	// ImageFactoryURL defaults to DefaultImageFactoryURL.
	ImageFactoryURL string
	// InstallDisk is the whole disk to write, e.g. "/dev/nvme0n1"; empty
	// lets the script pick one (see the package documentation).
	InstallDisk string
	// DownloadAttempts defaults to DefaultDownloadAttempts.
	DownloadAttempts int
	// ConfigVolume, when set, is an ISO 9660 image labelled metal-iso
	// holding config.yaml: the script writes it to partition
	// ConfigPartitionNumber of the install disk, where Talos booted with
	// talos.config=metal-iso reads it (see ConfigPartition). It holds the
	// machine config, so the user data carrying it is a secret.
	ConfigVolume []byte
}

// ConfigVolumePath is where cloud-init writes the config volume (tmpfs).
const ConfigVolumePath = "/run/rawkode-cloud/metal-iso.img"

// ConfigPartitionNumber is the GPT partition the config volume goes to:
// well clear of the partitions of Talos's image and of those Talos creates.
const ConfigPartitionNumber = 9

// ConfigPartition is the device name (without /dev/) of the config
// partition on disk, as the Talos API names block devices: "nvme0n1p9" for
// /dev/nvme0n1, "sda9" for /dev/sda.
func ConfigPartition(disk string) string {
	base := disk[strings.LastIndex(disk, "/")+1:]
	if base != "" && base[len(base)-1] >= '0' && base[len(base)-1] <= '9' {
		return base + "p" + strconv.Itoa(ConfigPartitionNumber)
	}
	return base + strconv.Itoa(ConfigPartitionNumber)
}

var (
	schematicRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionRE   = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$`)
	// Disk paths and URLs end up inside double quotes in a shell script:
	// allowing only these characters keeps them inert there.
	diskRE = regexp.MustCompile(`^/dev/[A-Za-z0-9][A-Za-z0-9._:/+-]*$`)
	urlRE  = regexp.MustCompile(`^[A-Za-z0-9:/._~%+-]+$`)
)

// MinimumTalosVersion is the oldest Talos the pivot can install: the Image
// Factory serves metal disk images as .raw.zst from Talos v1.8 on, and as
// .raw.xz before (a different decompressor and URL). Older versions are
// refused before anything is ordered rather than failing on the server.
const MinimumTalosVersion = "v1.8.0"

// CheckTalosVersion says whether the pivot can install talos (vX.Y.Z).
func CheckTalosVersion(talos string) error {
	var major, minor int
	if _, err := fmt.Sscanf(talos, "v%d.%d.", &major, &minor); err != nil {
		return fmt.Errorf("talos version %q is not of the form vX.Y.Z", talos)
	}
	if major < 1 || (major == 1 && minor < 8) {
		return fmt.Errorf("talos version %s: the Image Factory serves its metal image as .raw.xz, the pivot writes .raw.zst images (Talos %s or later)", talos, MinimumTalosVersion)
	}
	return nil
}

// ImageURL is the address of the compressed raw metal image for the options.
func (o Options) ImageURL() string {
	factory := o.ImageFactoryURL
	if factory == "" {
		factory = DefaultImageFactoryURL
	}

	return fmt.Sprintf("%s/image/%s/%s/metal-amd64.raw.zst", strings.TrimRight(factory, "/"), o.SchematicID, o.TalosVersion)
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error

	if !schematicRE.MatchString(o.SchematicID) {
		errs = append(errs, fmt.Errorf("schematic ID %q is not 64 lowercase hex characters", o.SchematicID))
	}

	if !versionRE.MatchString(o.TalosVersion) {
		errs = append(errs, fmt.Errorf("talos version %q is not of the form vX.Y.Z", o.TalosVersion))
	} else if err := CheckTalosVersion(o.TalosVersion); err != nil {
		errs = append(errs, err)
	}

	if o.ImageFactoryURL != "" {
		if err := validateFactoryURL(o.ImageFactoryURL); err != nil {
			errs = append(errs, err)
		}
	}

	if o.InstallDisk != "" && (!diskRE.MatchString(o.InstallDisk) || strings.Contains(o.InstallDisk, "..")) {
		errs = append(errs, fmt.Errorf("install disk %q is not a device path under /dev", o.InstallDisk))
	}

	if len(o.ConfigVolume) > 0 && o.InstallDisk == "" {
		errs = append(errs, errors.New("a config volume needs an explicit install disk: rawkode-cloud wipes its partition once Talos has stored the config"))
	}

	if o.DownloadAttempts < 0 {
		errs = append(errs, fmt.Errorf("download attempts %d is negative", o.DownloadAttempts))
	}

	return errors.Join(errs...)
}

func validateFactoryURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || !urlRE.MatchString(raw) {
		return fmt.Errorf("image factory URL %q is not a plain http(s) URL", raw)
	}

	return nil
}

// Script returns the pivot shell script for the options. It does not
// validate them; Render does.
func Script(opts Options) string {
	attempts := opts.DownloadAttempts
	if attempts == 0 {
		attempts = DefaultDownloadAttempts
	}

	return strings.NewReplacer(
		"@IMAGE_URL@", opts.ImageURL(),
		"@INSTALL_DISK@", opts.InstallDisk,
		"@ATTEMPTS@", strconv.Itoa(attempts),
		"@CONFIG_VOLUME@", configVolumePath(opts),
		"@CONFIG_PARTITION@", strconv.Itoa(ConfigPartitionNumber),
	).Replace(scriptTemplate)
}

func configVolumePath(opts Options) string {
	if len(opts.ConfigVolume) == 0 {
		return ""
	}
	return ConfigVolumePath
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Encoding    string `yaml:"encoding,omitempty"`
	Content     string `yaml:"content"`
}

type cloudConfig struct {
	WriteFiles []writeFile `yaml:"write_files"`
	RunCmd     [][]string  `yaml:"runcmd"`
}

// Render returns the #cloud-config user data for the options.
func Render(opts Options) ([]byte, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("render pivot user data: %w", err)
	}

	doc := cloudConfig{
		WriteFiles: []writeFile{{
			Path:        ScriptPath,
			Owner:       "root:root",
			Permissions: "0700",
			Content:     Script(opts),
		}},
		RunCmd: [][]string{{"/bin/bash", ScriptPath}},
	}
	if len(opts.ConfigVolume) > 0 {
		// Mostly sector padding: gzip keeps the user data small (cloud-init
		// decodes gz+b64 itself, before the script runs).
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(opts.ConfigVolume)
		_ = zw.Close()
		doc.WriteFiles = append(doc.WriteFiles, writeFile{
			Path: ConfigVolumePath, Owner: "root:root", Permissions: "0600",
			Encoding: "gz+b64", Content: base64.StdEncoding.EncodeToString(gz.Bytes()),
		})
	}

	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render pivot user data: %w", err)
	}

	return append([]byte("#cloud-config\n"), body...), nil
}
