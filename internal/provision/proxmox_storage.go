package provision

import (
	"context"
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/democraticcsi"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	chartpkg "github.com/rawkode/rawkode-cloud/third_party/democratic-csi"
)

// The proxmox topology's storage: democratic-csi's zfs-generic-iscsi driver
// manages zvols and iSCSI LUNs on the host over SSH, from inside the
// cluster. The CLI makes a key pair for that alone, per cluster, in phase
// 1: the public half goes into the host's user data for root, usable only
// from the internal network (democraticcsi.AuthorizedKey); the private half
// goes into the driver's config Secret, an inline manifest of the control
// planes' configs, and is kept in the secret store with the cluster's other
// credentials. The CLI itself never uses SSH.

// SecretStorageSSHKey keeps the storage driver's private key.
const SecretStorageSSHKey = "DEMOCRATIC_CSI_SSH_KEY"

// ManifestStorage is the inline manifest carrying the storage driver.
const ManifestStorage = "democratic-csi"

func init() { fileNames[SecretStorageSSHKey] = "democratic-csi-ssh-key" }

// NewStorageKey makes the cluster's storage SSH key pair.
func NewStorageKey(cluster string) (democraticcsi.KeyPair, error) {
	return democraticcsi.GenerateKeyPair("democratic-csi@" + cluster)
}

// storageHostKey is the host's authorized_keys line for the key.
func storageHostKey(k democraticcsi.KeyPair) (string, error) {
	return democraticcsi.AuthorizedKey(k.PublicKey, ProxmoxNetwork)
}

// storageInput is what the driver needs to know about the host, from the
// same options the host's user data is rendered from.
func storageInput(cfg *config.Config, privateKey []byte) democraticcsi.Input {
	h := hostOptions(cfg).WithDefaults()
	in := democraticcsi.Input{
		Host: ProxmoxLayout().Host, PrivateKey: privateKey, Pool: h.ZFSPool,
		// targetcli's own naming for a target of this host.
		IQNBase: "iqn.2003-01.org.linux-iscsi." + cfg.Get(config.ClusterName),
	}
	if len(h.ZFSDatasets) >= 2 {
		in.Volumes, in.Snapshots = h.ZFSDatasets[0], h.ZFSDatasets[1]
	}
	return in
}

// StorageManifest renders the storage driver (democratic-csi's chart, the
// default StorageClass zfs-iscsi) as the inline manifest the control planes
// apply. It holds the private key.
func StorageManifest(ctx context.Context, cfg *config.Config, privateKey []byte) (machineconfig.Manifest, error) {
	out, err := democraticcsi.Render(ctx, storageInput(cfg, privateKey), cfg.Get(config.KubernetesVersion))
	if err != nil {
		return machineconfig.Manifest{}, err
	}
	return machineconfig.Manifest{Name: ManifestStorage, Contents: out}, nil
}

// withStorageKey adds the storage key's authorized_keys line to the host's
// user data options.
func withStorageKey(opts proxmoxhost.Options, k democraticcsi.KeyPair) (proxmoxhost.Options, error) {
	line, err := storageHostKey(k)
	if err != nil {
		return opts, err
	}
	opts.RootAuthorizedKeys = append(opts.RootAuthorizedKeys, line)
	return opts, nil
}

// addStorage puts the storage driver into the platform layer, which every
// control plane's config carries.
func (p *Provisioner) addStorage(ctx context.Context, fields map[string]any) error {
	m, err := StorageManifest(ctx, p.cfg, p.host.storageKey.PrivateKey)
	if err != nil {
		return fmt.Errorf("render the storage driver: %w", err)
	}
	p.platform.Manifests = append(p.platform.Manifests, m)
	fields["storage"] = fmt.Sprintf("democratic-csi %s zfs-generic-iscsi on %s, default StorageClass %s",
		chartpkg.ChartVersion, ProxmoxLayout().Host, democraticcsi.StorageClass)
	return nil
}
