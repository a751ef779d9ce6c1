package scaleway

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// The wire types below are the emulator's own rendering of the Elastic Metal
// and IAM JSON bodies. They are written from the recorded real traffic
// (shared/fixtures/scaleway/elastic-metal-recorded.json), not copied from the
// SDK, so that a test comparing both catches drift on either side.

type wireIP struct {
	Address              string `json:"address"`
	ID                   string `json:"id"`
	Reverse              string `json:"reverse"`
	ReverseStatus        string `json:"reverse_status"`
	ReverseStatusMessage string `json:"reverse_status_message"`
	Version              string `json:"version"`
}

type wirePartition struct {
	Label                string `json:"label"`
	Number               int    `json:"number"`
	Size                 uint64 `json:"size"`
	UseAllAvailableSpace bool   `json:"use_all_available_space"`
}

type wireDiskLayout struct {
	Device     string          `json:"device"`
	Partitions []wirePartition `json:"partitions"`
}

type wireFilesystem struct {
	Device     string `json:"device"`
	Format     string `json:"format"`
	Mountpoint string `json:"mountpoint"`
}

type wireRaid struct {
	Devices []string `json:"devices"`
	Level   string   `json:"level"`
	Name    string   `json:"name"`
}

type wireZFS struct {
	Pools []any `json:"pools"`
}

type wireSchema struct {
	Disks       []wireDiskLayout `json:"disks"`
	Filesystems []wireFilesystem `json:"filesystems"`
	Raids       []wireRaid       `json:"raids"`
	ZFS         wireZFS          `json:"zfs"`
}

type wireInstall struct {
	Hostname           string      `json:"hostname"`
	OSID               string      `json:"os_id"`
	PartitioningSchema *wireSchema `json:"partitioning_schema"`
	ServiceURL         string      `json:"service_url"`
	ServiceUser        string      `json:"service_user"`
	SSHKeyIDs          []string    `json:"ssh_key_ids"`
	Status             string      `json:"status"`
	User               string      `json:"user"`
}

type wireServer struct {
	BootType       string       `json:"boot_type"`
	CreatedAt      time.Time    `json:"created_at"`
	Description    string       `json:"description"`
	Domain         string       `json:"domain"`
	ID             string       `json:"id"`
	Install        *wireInstall `json:"install"`
	IPs            []wireIP     `json:"ips"`
	Name           string       `json:"name"`
	OfferID        string       `json:"offer_id"`
	OfferName      string       `json:"offer_name"`
	Options        []any        `json:"options"`
	OrganizationID string       `json:"organization_id"`
	PingStatus     string       `json:"ping_status"`
	ProjectID      string       `json:"project_id"`
	Protected      bool         `json:"protected"`
	RescueServer   any          `json:"rescue_server"`
	Status         string       `json:"status"`
	Tags           []string     `json:"tags"`
	UpdatedAt      time.Time    `json:"updated_at"`
	UserData       []byte       `json:"user_data"` // base64, null when none
	Zone           string       `json:"zone"`
}

type wireListServers struct {
	Servers    []wireServer `json:"servers"`
	TotalCount int          `json:"total_count"`
}

// wireCreateServer is the request body of POST .../servers.
type wireCreateServer struct {
	OfferID        string   `json:"offer_id"`
	ProjectID      *string  `json:"project_id"`
	OrganizationID *string  `json:"organization_id"`
	Name           string   `json:"name"`
	Description    string   `json:"description"`
	Tags           []string `json:"tags"`
	Install        *struct {
		OSID      string   `json:"os_id"`
		Hostname  string   `json:"hostname"`
		SSHKeyIDs []string `json:"ssh_key_ids"`
	} `json:"install"`
	OptionIDs []string `json:"option_ids"`
	Protected bool     `json:"protected"`
	UserData  *[]byte  `json:"user_data"`
}

type wireOSField struct {
	DefaultValue *string `json:"default_value"`
	Editable     bool    `json:"editable"`
	Required     bool    `json:"required"`
}

type wireOS struct {
	Allowed                     bool        `json:"allowed"`
	CloudInitSupported          bool        `json:"cloud_init_supported"`
	CloudInitVersion            *string     `json:"cloud_init_version"`
	CustomPartitioningSupported bool        `json:"custom_partitioning_supported"`
	Enabled                     bool        `json:"enabled"`
	ID                          string      `json:"id"`
	LicenseRequired             bool        `json:"license_required"`
	LogoURL                     string      `json:"logo_url"`
	Name                        string      `json:"name"`
	Password                    wireOSField `json:"password"`
	ServicePassword             wireOSField `json:"service_password"`
	ServiceUser                 wireOSField `json:"service_user"`
	SSH                         wireOSField `json:"ssh"`
	User                        wireOSField `json:"user"`
	Version                     string      `json:"version"`
	Zone                        string      `json:"zone"`
}

type wireMoney struct {
	CurrencyCode string `json:"currency_code"`
	Nanos        int32  `json:"nanos"`
	Units        int64  `json:"units"`
}

type wireCPU struct {
	Benchmark   string `json:"benchmark"`
	CoreCount   int    `json:"core_count"`
	Frequency   int    `json:"frequency"`
	Name        string `json:"name"`
	ThreadCount int    `json:"thread_count"`
}

type wireDisk struct {
	Capacity uint64 `json:"capacity"`
	Type     string `json:"type"`
}

type wireMemory struct {
	Capacity  uint64 `json:"capacity"`
	Frequency int    `json:"frequency"`
	IsECC     bool   `json:"is_ecc"`
	Type      string `json:"type"`
}

type wireOffer struct {
	Bandwidth          uint64       `json:"bandwidth"`
	CommercialRange    string       `json:"commercial_range"`
	CPUs               []wireCPU    `json:"cpus"`
	Disks              []wireDisk   `json:"disks"`
	Enable             bool         `json:"enable"`
	Fee                wireMoney    `json:"fee"`
	GPUs               []any        `json:"gpus"`
	ID                 string       `json:"id"`
	IncompatibleOSIDs  []string     `json:"incompatible_os_ids"`
	MaxBandwidth       uint64       `json:"max_bandwidth"`
	Memories           []wireMemory `json:"memories"`
	MonthlyOfferID     *string      `json:"monthly_offer_id"`
	Name               string       `json:"name"`
	OperationPath      string       `json:"operation_path"`
	Options            []any        `json:"options"`
	PersistentMemories []any        `json:"persistent_memories"`
	PricePerHour       *wireMoney   `json:"price_per_hour"`
	PricePerMonth      *wireMoney   `json:"price_per_month"`
	PrivateBandwidth   uint64       `json:"private_bandwidth"`
	QuotaName          string       `json:"quota_name"`
	RaidControllers    []any        `json:"raid_controllers"`
	SharedBandwidth    bool         `json:"shared_bandwidth"`
	Stock              string       `json:"stock"`
	SubscriptionPeriod string       `json:"subscription_period"`
	Tags               []string     `json:"tags"`
	Zone               string       `json:"zone"`
}

type wireSSHKey struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	PublicKey      string    `json:"public_key"`
	Fingerprint    string    `json:"fingerprint"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	OrganizationID string    `json:"organization_id"`
	ProjectID      string    `json:"project_id"`
	Disabled       bool      `json:"disabled"`
}

type wireListSSHKeys struct {
	SSHKeys    []wireSSHKey `json:"ssh_keys"`
	TotalCount int          `json:"total_count"`
}

// Error bodies in the shapes the real API (and the SDK's decoder) use.

type wireMessage struct {
	Message string `json:"message"`
}

type wireIAMNotFound struct {
	Message    string `json:"message"`
	Resource   string `json:"resource"`
	ResourceID string `json:"resource_id"`
	Type       string `json:"type"`
}

type wireDeniedAuth struct {
	Message string `json:"message"`
	Method  string `json:"method"`
	Reason  string `json:"reason"`
	Type    string `json:"type"`
}

type wirePermissionsDenied struct {
	Details []wirePermissionDetail `json:"details"`
	Message string                 `json:"message"`
	Type    string                 `json:"type"`
}

type wirePermissionDetail struct {
	Action   string `json:"action"`
	Resource string `json:"resource"`
}

type wireInvalidArguments struct {
	Details []wireArgumentDetail `json:"details"`
	Message string               `json:"message"`
	Type    string               `json:"type"`
}

type wireArgumentDetail struct {
	ArgumentName string `json:"argument_name"`
	HelpMessage  string `json:"help_message"`
	Reason       string `json:"reason"`
}

type wireOutOfStock struct {
	Message  string `json:"message"`
	Resource string `json:"resource"`
	Type     string `json:"type"`
}

func invalidArgument(name, reason, help string) wireInvalidArguments {
	return wireInvalidArguments{
		Details: []wireArgumentDetail{{ArgumentName: name, Reason: reason, HelpMessage: help}},
		Message: "invalid argument(s)",
		Type:    "invalid_arguments",
	}
}

// twoNVMeRAID1 is the default partitioning Scaleway applies to a two-disk
// NVMe offer (as recorded): md RAID1 for /boot and /, which the pivot has
// to stop before writing Talos.
func twoNVMeRAID1() *wireSchema {
	const (
		gib512 = 536870912
		swap   = 4294967296
		root   = 1915003863040
	)
	return &wireSchema{
		Disks: []wireDiskLayout{
			{Device: "/dev/nvme0n1", Partitions: []wirePartition{
				{Label: "uefi", Number: 1, Size: gib512},
				{Label: "swap", Number: 2, Size: swap},
				{Label: "boot", Number: 3, Size: gib512},
				{Label: "root", Number: 4, Size: root},
			}},
			{Device: "/dev/nvme1n1", Partitions: []wirePartition{
				{Label: "swap", Number: 1, Size: swap},
				{Label: "boot", Number: 2, Size: gib512},
				{Label: "root", Number: 3, Size: root},
			}},
		},
		Filesystems: []wireFilesystem{
			{Device: "/dev/nvme0n1p1", Format: "fat32", Mountpoint: "/boot/efi"},
			{Device: "/dev/md0", Format: "ext4", Mountpoint: "/boot"},
			{Device: "/dev/md1", Format: "ext4", Mountpoint: "/"},
		},
		Raids: []wireRaid{
			{Devices: []string{"/dev/nvme0n1p3", "/dev/nvme1n1p2"}, Level: "raid_level_1", Name: "/dev/md0"},
			{Devices: []string{"/dev/nvme0n1p4", "/dev/nvme1n1p3"}, Level: "raid_level_1", Name: "/dev/md1"},
		},
		ZFS: wireZFS{Pools: []any{}},
	}
}

func ptr[T any](v T) *T { return &v }

func osField(def string, required bool) wireOSField {
	f := wireOSField{Required: required}
	if def != "" {
		f.DefaultValue = ptr(def)
	}
	return f
}

func seedOSes(zone string) map[string]wireOS {
	ubuntu := wireOS{
		Allowed: true, CloudInitSupported: true, CloudInitVersion: ptr("22.1"),
		CustomPartitioningSupported: true, Enabled: true, ID: UbuntuOSID,
		LogoURL: "https://baremetal-logos-fr.s3.fr-par.scw.cloud/ubuntu.png", Name: "Ubuntu",
		SSH: osField("", true), User: osField("ubuntu", false),
		Version: "22.04 LTS (Jammy Jellyfish)", Zone: zone,
	}
	legacy := ubuntu
	legacy.ID, legacy.Name, legacy.Version = NoCloudInitOSID, "Debian", "10 (Buster)"
	legacy.CloudInitSupported, legacy.CloudInitVersion = false, nil
	legacy.User = osField("debian", false)
	return map[string]wireOS{ubuntu.ID: ubuntu, legacy.ID: legacy}
}

func seedOffers(zone string) map[string]wireOffer {
	base := wireOffer{
		Bandwidth: 1000000000, CommercialRange: "iridium",
		CPUs:   []wireCPU{{Benchmark: "41609", CoreCount: 16, Frequency: 3000, Name: "AMD EPYC 7313P", ThreadCount: 32}},
		Disks:  []wireDisk{{Capacity: 1920383410176, Type: "NVMe"}, {Capacity: 1920383410176, Type: "NVMe"}},
		Enable: true, Fee: wireMoney{CurrencyCode: "EUR"}, GPUs: []any{},
		ID: CloudInitOfferID, IncompatibleOSIDs: []string{}, MaxBandwidth: 10000000000,
		Memories:       []wireMemory{{Capacity: 256000000000, Frequency: 3200, IsECC: true, Type: "DDR4"}},
		MonthlyOfferID: ptr("44890f67-212b-4610-9170-4c199644525e"), Name: "EM-I215E-NVME",
		Options: []any{}, PersistentMemories: []any{},
		PricePerHour:     &wireMoney{CurrencyCode: "EUR", Nanos: 904000000},
		PrivateBandwidth: 10000000000, QuotaName: "EM_I215E_NVMe", RaidControllers: []any{},
		SharedBandwidth: true, Stock: "available", SubscriptionPeriod: "hourly",
		Tags: []string{"install-system-v2", "cloud-init"}, Zone: zone,
	}
	noCloudInit := base
	noCloudInit.ID, noCloudInit.Name, noCloudInit.QuotaName = NoCloudInitOfferID, "EM-A115X-SSD", "EM_A115X_SSD"
	noCloudInit.MonthlyOfferID = nil
	noCloudInit.Tags = []string{"install-system-v2"}
	outOfStock := base
	outOfStock.ID, outOfStock.Name, outOfStock.QuotaName = OutOfStockOfferID, "EM-L110X-SATA", "EM_L110X_SATA"
	outOfStock.MonthlyOfferID = nil
	outOfStock.Stock = "empty"
	return map[string]wireOffer{base.ID: base, noCloudInit.ID: noCloudInit, outOfStock.ID: outOfStock}
}

// fingerprint renders an OpenSSH public key the way IAM does:
// "256 MD5:aa:bb:... (ssh-ed25519)".
func fingerprint(publicKey string) string {
	fields := strings.Fields(publicKey)
	if len(fields) < 2 {
		return ""
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return ""
	}
	sum := md5.Sum(blob)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	bits := 256
	if fields[0] == "ssh-rsa" {
		bits = 4096
	}
	return fmt.Sprintf("%d MD5:%s (%s)", bits, strings.Join(hexes, ":"), fields[0])
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
