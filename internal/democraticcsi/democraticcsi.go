// Package democraticcsi prepares the Proxmox topology's storage: the
// democratic-csi 0.15.1 chart's `zfs-generic-iscsi` driver against the host
// (its ZFS datasets and targetcli iSCSI target), with `zfs-iscsi` as the
// cluster's default StorageClass.
//
// The driver manages zvols and iSCSI LUNs over SSH from inside the cluster
// (its sshConnection). The CLI generates a key pair for that alone: the
// public half goes on the host restricted to the internal network
// (AuthorizedKey), the private half into the driver's config Secret and the
// secret store. The CLI itself never uses SSH.
//
// Talos specifics from democratic-csi's README: iscsiadm is the iscsi-tools
// extension's, reached with nsenter in the host's PID namespace, and the
// namespace must admit privileged pods.
package democraticcsi

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Names and versions.
const (
	Namespace    = "democratic-csi"
	ReleaseName  = "zfs-iscsi"
	StorageClass = "zfs-iscsi"
	DriverName   = "org.democratic-csi.iscsi"
	// DriverImageTag pins the driver; the chart defaults to :latest.
	DriverImageTag = "v1.9.4"
)

// KeyPair is the SSH identity democratic-csi uses on the host.
type KeyPair struct {
	// PrivateKey is the OpenSSH private key (PEM). Secret.
	PrivateKey []byte
	// PublicKey is the authorized_keys form, without options.
	PublicKey string
}

// GenerateKeyPair makes a fresh ed25519 key pair; comment names it on the
// host (e.g. "democratic-csi@<cluster>").
func GenerateKeyPair(comment string) (KeyPair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate democratic-csi SSH key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode democratic-csi SSH key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode democratic-csi SSH public key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	if comment != "" {
		line += " " + comment
	}
	return KeyPair{PrivateKey: pem.EncodeToMemory(block), PublicKey: line}, nil
}

// AuthorizedKey is the host's authorized_keys line for the driver: only
// from the internal network, and no forwarding or terminal of any kind —
// the driver runs zfs and targetcli commands, nothing else.
func AuthorizedKey(publicKey string, from netip.Prefix) (string, error) {
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(publicKey)); err != nil {
		return "", fmt.Errorf("democratic-csi public key: %w", err)
	}
	if !from.IsValid() {
		return "", fmt.Errorf("democratic-csi key: no source network to restrict it to")
	}
	return fmt.Sprintf(`from="%s",no-agent-forwarding,no-port-forwarding,no-X11-forwarding,no-pty,no-user-rc %s`, from.Masked(), publicKey), nil
}

// Input is what the driver needs to know about the host.
type Input struct {
	// Host is the host's address on the internal bridge (10.10.0.1).
	Host netip.Addr
	// PrivateKey is KeyPair.PrivateKey.
	PrivateKey []byte
	// Pool is the ZFS pool holding the datasets (the host's user data
	// names it), e.g. "rpool".
	Pool string
	// Volumes and Snapshots are the dataset paths under Pool, siblings, as
	// the host's user data creates them ("k8s-csi", "k8s-csi-snaps").
	Volumes, Snapshots string
	// IQNBase is the target's IQN base name on the host.
	IQNBase string
}

func (in Input) validate() error {
	switch {
	case !in.Host.IsValid():
		return fmt.Errorf("democratic-csi: the host's internal address is missing")
	case len(in.PrivateKey) == 0:
		return fmt.Errorf("democratic-csi: the SSH private key is missing")
	case in.Pool == "" || in.Volumes == "" || in.Snapshots == "":
		return fmt.Errorf("democratic-csi: the ZFS pool and dataset names are required")
	case strings.HasPrefix(in.Snapshots+"/", in.Volumes+"/") || strings.HasPrefix(in.Volumes+"/", in.Snapshots+"/"):
		// The driver's own rule: siblings, never nested.
		return fmt.Errorf("democratic-csi: datasets %s and %s must not be nested", in.Volumes, in.Snapshots)
	case !strings.HasPrefix(in.IQNBase, "iqn."):
		return fmt.Errorf("democratic-csi: IQN base %q does not start with iqn.", in.IQNBase)
	}
	return nil
}

// DriverConfig is the driver's zfs-generic-iscsi configuration (the chart's
// driver.config, stored in a Secret). It holds the private key.
func DriverConfig(in Input) map[string]any {
	return map[string]any{
		"driver": "zfs-generic-iscsi",
		"sshConnection": map[string]any{
			"host": in.Host.String(), "port": 22, "username": "root", "privateKey": string(in.PrivateKey),
		},
		"zfs": map[string]any{
			"datasetParentName":                  in.Pool + "/" + in.Volumes,
			"detachedSnapshotsDatasetParentName": in.Pool + "/" + in.Snapshots,
			"zvolCompression":                    "",
			"zvolDedup":                          "",
			"zvolEnableReservation":              false,
			"zvolBlocksize":                      "",
		},
		"iscsi": map[string]any{
			"shareStrategy": "targetCli",
			"shareStrategyTargetCli": map[string]any{
				"basename": in.IQNBase,
				"tpg": map[string]any{"attributes": map[string]any{
					// No CHAP: the portal is reachable on the internal
					// bridge only, from the nodes the host firewall admits.
					"authentication": 0, "generate_node_acls": 1, "cache_dynamic_acls": 1, "demo_mode_write_protect": 0,
				}},
			},
			"targetPortal": in.Host.String() + ":3260",
			"interface":    "",
			"namePrefix":   "csi-",
			"nameSuffix":   "",
		},
	}
}

// Values are the chart values: the driver, the default StorageClass, and
// the Talos settings.
func Values(in Input) (map[string]any, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	return map[string]any{
		"csiDriver": map[string]any{"name": DriverName},
		"storageClasses": []any{map[string]any{
			"name": StorageClass, "defaultClass": true, "reclaimPolicy": "Delete",
			"volumeBindingMode": "Immediate", "allowVolumeExpansion": true,
			"parameters":   map[string]any{"fsType": "ext4"},
			"mountOptions": []any{},
			"secrets": map[string]any{
				"provisioner-secret": nil, "controller-publish-secret": nil, "node-stage-secret": nil,
				"node-publish-secret": nil, "controller-expand-secret": nil,
			},
		}},
		"volumeSnapshotClasses": []any{},
		"driver":                map[string]any{"config": DriverConfig(in)},
		"controller": map[string]any{
			"driver": map[string]any{"image": map[string]any{"tag": DriverImageTag}},
		},
		"node": map[string]any{
			"hostPID": true,
			"driver": map[string]any{
				"image": map[string]any{"tag": DriverImageTag},
				"extraEnv": []any{
					map[string]any{"name": "ISCSIADM_HOST_STRATEGY", "value": "nsenter"},
					map[string]any{"name": "ISCSIADM_HOST_PATH", "value": "/usr/local/sbin/iscsiadm"},
				},
				"iscsiDirHostPath":     "/usr/local/etc/iscsi",
				"iscsiDirHostPathType": "",
			},
		},
	}, nil
}

// NamespaceManifest admits the driver's privileged node pods, which Talos's
// default Pod Security admission (baseline) would refuse.
func NamespaceManifest() string {
	return `apiVersion: v1
kind: Namespace
metadata:
  name: ` + Namespace + `
  labels:
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/audit: privileged
    pod-security.kubernetes.io/warn: privileged
`
}
