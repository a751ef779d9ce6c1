package talos

import (
	"context"
	"slices"
	"sync"

	"github.com/siderolabs/talos/pkg/machinery/api/storage"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// How a node gets its config, and who else might give it one.
//
// A real node booted with talos.config=metal-iso reads config.yaml from the
// volume labelled metal-iso before it would ever serve the maintenance API
// (machined's config acquire controller: STATE, embedded, early, platform,
// inline, and only then maintenance). NodeOptions.InstallConfig is that
// volume's config: the node comes up configured, mTLS from its first
// answer. Without it the node waits in maintenance mode, where anyone who
// reaches :50000 first can apply a config: the Hijack fault kind on
// FaultMaintenance plays that someone.

// Hijack (talos.maintenance=hijack) is an attacker who applies a config of
// their own the moment a node enters maintenance mode.
const Hijack = emulator.Hijack

// attackerConfig is a valid control-plane config of a cluster that is not
// ours: generated once (a secrets bundle costs seconds of CPU) and never
// changed afterwards.
var attackerConfig = sync.OnceValues(func() ([]byte, error) {
	// Talos 1.6's contract still makes an ECDSA service-account key: an
	// RSA one costs seconds of CPU, and an attacker must be fast.
	contract := talosconfig.TalosVersion1_6
	bundle, err := secrets.NewBundle(secrets.NewClock(), contract)
	if err != nil {
		return nil, err
	}
	in, err := generate.NewInput("not-yours", "https://198.51.100.66:6443", constants.DefaultKubernetesVersion,
		generate.WithSecretsBundle(bundle), generate.WithInstallDisk("/dev/sda"), generate.WithVersionContract(contract))
	if err != nil {
		return nil, err
	}
	cfg, err := in.Config(machine.TypeControlPlane)
	if err != nil {
		return nil, err
	}
	return cfg.Bytes()
})

// PrepareHijacker generates the attacker's config in the background, so
// that the hijack (talos.maintenance=hijack) really is instant: the keys
// take seconds of CPU, and a slow attacker would lose the race it exists to
// win. Call it when the fault is set.
func PrepareHijacker() { go func() { _, _ = attackerConfig() }() }

// hijackLocked is the attacker's apply, right after maintenance mode began.
// It returns what to do once n.mu is released.
func (n *Node) hijackLocked() func() {
	raw, err := attackerConfig()
	if err != nil {
		return nil
	}
	cfg, _, err := ValidateConfig(raw)
	if err != nil {
		return nil
	}
	n.hijacked = true
	return n.beginRebootLocked(cfg, raw)
}

// Hijacked reports whether a foreign config was applied to the node.
func (n *Node) Hijacked() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hijacked
}

// bootLocked ends the boot: configured from the install's config volume
// when there is one, else maintenance mode (where a hijacker may wait).
func (n *Node) bootLocked() func() {
	if raw := n.opts.InstallConfig; raw != nil {
		cfg, _, err := ValidateConfig(raw)
		if err != nil {
			// Talos cannot use the platform's config: it never becomes a
			// node anyone can talk to, which the CLI sees as a timeout.
			return nil
		}
		n.configVolume = n.opts.ConfigPartition
		n.applied = append(n.applied, append([]byte(nil), raw...))
		n.eventLocked(EventConfigVolume)
		return n.enterConfiguredLocked(cfg, raw)
	}
	n.enterMaintenanceLocked()
	if n.faults.Peek(FaultMaintenance, Hijack) {
		n.faults.Check(FaultMaintenance)
		return n.hijackLocked()
	}
	return nil
}

// EventConfigVolume: the node read its config from the install's volume.
const EventConfigVolume = "config-volume"

// ConfigVolume is the device of the config volume the node booted from, ""
// once it was wiped (or when there never was one).
func (n *Node) ConfigVolume() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.configVolume
}

// storageServer serves the Storage API of a configured node: only
// BlockDeviceWipe, which is how the config volume is removed.
type storageServer struct {
	storage.UnimplementedStorageServiceServer
	n *Node
	g *apiGen
}

func (s *storageServer) Disks(context.Context, *emptypb.Empty) (*storage.DisksResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Disks is not emulated")
}

// BlockDeviceWipe wipes (and with DropPartition removes) a block device.
// As on a real node, a device Talos uses (the install disk, its system
// partitions) is refused, and an unknown one is NotFound.
func (s *storageServer) BlockDeviceWipe(ctx context.Context, req *storage.BlockDeviceWipeRequest) (*storage.BlockDeviceWipeResponse, error) {
	s.n.counters.Inc("BlockDeviceWipe")
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.n.api != s.g {
		return nil, status.Error(codes.Unavailable, "node is rebooting")
	}
	if s.n.mode != ModeConfigured {
		return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
	}
	for _, d := range req.GetDevices() {
		dev := d.GetDevice()
		switch {
		case dev != "" && dev == s.n.configVolume:
		case slices.Contains(s.n.wiped, dev):
			return nil, status.Errorf(codes.NotFound, "blockdevice %q not found", dev)
		case dev == s.n.opts.ConfigPartition || dev == "":
			return nil, status.Errorf(codes.NotFound, "blockdevice %q not found", dev)
		default:
			return nil, status.Errorf(codes.FailedPrecondition, "blockdevice %q is in use by volume %q", dev, "EPHEMERAL")
		}
	}
	for _, d := range req.GetDevices() {
		s.n.wiped = append(s.n.wiped, d.GetDevice())
		if d.GetDropPartition() {
			s.n.configVolume = ""
		}
	}
	return &storage.BlockDeviceWipeResponse{}, nil
}
