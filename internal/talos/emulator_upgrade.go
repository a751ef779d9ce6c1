package talos

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// FaultUpgrade is the Upgrade call and the upgrade it starts.
// error/unavailable/ratelimit: the matching code, nothing starts; hang: no
// answer; never: the request is acknowledged but the upgrade sequence fails
// on the node (as an installer image that cannot be pulled does): it never
// reboots and keeps its old version.
const FaultUpgrade = "talos.upgrade"

// ConfigPath is where Talos keeps the machine config in effect; apid's Read
// serves it to an os:admin client (talosctl read /system/state/config.yaml).
const ConfigPath = "/system/state/config.yaml"

// installerTag is the version part of an installer image reference.
var installerTag = regexp.MustCompile(`:(v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$`)

// InstallerVersion is the Talos version an installer image installs: its
// tag (each Talos release publishes an installer of the same version).
func InstallerVersion(image string) (string, bool) {
	m := installerTag.FindStringSubmatch(image)
	if m == nil || strings.Contains(image, "@") {
		return "", false
	}
	return m[1], true
}

// Upgrade is machined's Upgrade: it checks that the upgrade keeps etcd
// healthy, acknowledges, and then runs the upgrade sequence in the
// background — services stop, the installer writes the new version to the
// other A/B slot, the node reboots into it and starts its services again,
// etcd rejoining with its data (Talos keeps the EPHEMERAL partition on
// upgrade). Until the node goes down it still answers with its old version:
// an acknowledged upgrade is not a finished one.
//
// On a control plane, unless forced, every etcd member must be healthy
// first, as upstream's etcd.ValidateForUpgrade demands
// (internal/pkg/etcd/etcd.go in siderolabs/talos): upgrading a node while
// another member is down would cost quorum.
func (s *machineServer) Upgrade(ctx context.Context, req *machine.UpgradeRequest) (*machine.UpgradeResponse, error) {
	s.n.counters.Inc("Upgrade")
	if err := s.configuredOnly(); err != nil {
		return nil, err
	}
	kind, err := s.fault(ctx, FaultUpgrade, emulator.Error, emulator.Unavailable, emulator.RateLimit, emulator.Hang, emulator.Never)
	if err != nil {
		return nil, err
	}
	version, ok := InstallerVersion(req.GetImage())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "invalid installer image reference %q: want <registry>/<repository>:<Talos version>", req.GetImage())
	}
	if req.GetStage() {
		return nil, status.Error(codes.Unimplemented, "staged upgrades are not emulated")
	}
	s.n.mu.Lock()
	if s.n.api != s.g {
		s.n.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "node is rebooting")
	}
	if s.n.upgrading {
		s.n.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "an upgrade is already in progress")
	}
	worker, cluster := s.n.worker, s.n.etcd
	s.n.mu.Unlock()
	if !worker && !req.GetForce() {
		if sick := s.n.unhealthyMembers(cluster); sick != "" {
			return nil, status.Errorf(codes.FailedPrecondition, "etcd member %s is not healthy; all members must be healthy to perform an upgrade", sick)
		}
	}
	ack := &machine.UpgradeResponse{Messages: []*machine.Upgrade{{Ack: "Upgrade request received", ActorId: randomHex(8)}}}
	if kind == emulator.Never {
		return ack, nil // the sequence fails on the node; nothing changes
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.n.api != s.g {
		return nil, status.Error(codes.Unavailable, "node is rebooting")
	}
	s.n.upgrading = true
	raw := append([]byte(nil), s.n.cfgBytes...)
	// Pulling the installer and stopping the services takes a while; the
	// old OS answers meanwhile.
	s.n.scheduleLocked(max(s.n.opts.RebootDelay/4, time.Millisecond), "", func() func() {
		cfg, err := configloader.NewFromBytes(raw)
		if err != nil {
			s.n.upgrading = false
			return nil
		}
		s.n.upgrading = false
		s.n.version = version
		return s.n.beginRebootLocked(cfg, raw)
	})
	return ack, nil
}

// unhealthyMembers names a member of this node's etcd cluster whose etcd is
// not healthy ("" when all are). It runs without n.mu.
func (n *Node) unhealthyMembers(c *etcdCluster) string {
	n.mu.Lock()
	selfOK, self := n.etcdHealthy(), n.hostnameLocked()
	n.mu.Unlock()
	if c == nil || !selfOK {
		return self
	}
	healthy := map[string]bool{self: true}
	for _, p := range n.peers() {
		p.mu.Lock()
		if p.etcd == c && p.etcdHealthy() {
			healthy[p.hostnameLocked()] = true
		}
		p.mu.Unlock()
	}
	for _, m := range c.list() {
		if !healthy[m.GetHostname()] {
			return m.GetHostname()
		}
	}
	return ""
}

// Read streams a file from the node. Only the machine config is emulated;
// any other path answers as a missing file does.
func (s *machineServer) Read(req *machine.ReadRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	s.n.counters.Inc("Read")
	if err := s.configuredOnly(); err != nil {
		return err
	}
	if req.GetPath() != ConfigPath {
		return status.Errorf(codes.NotFound, "open %s: no such file or directory", req.GetPath())
	}
	s.n.mu.Lock()
	raw := append([]byte(nil), s.n.cfgBytes...)
	s.n.mu.Unlock()
	for rest := raw; len(rest) > 0; {
		chunk := rest[:min(kubeconfigChunk, len(rest))]
		rest = rest[len(chunk):]
		if err := stream.Send(&common.Data{Bytes: chunk}); err != nil {
			return err
		}
	}
	return nil
}

// Version reports the Talos version the node runs now.
func (n *Node) Version() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.version
}

// restartKubeletIfChangedLocked restarts the kubelet when a re-applied
// config changes its image, as Talos does without a reboot (the kubelet
// service is restarted with the new image; that is how a Kubernetes
// upgrade reaches a node).
func (n *Node) restartKubeletIfChangedLocked(oldRaw, newRaw []byte) {
	oldImg, newImg := kubeletImage(oldRaw), kubeletImage(newRaw)
	if oldImg == newImg || n.services[ServiceKubelet] == nil {
		return
	}
	n.setServiceLocked(ServiceKubelet, machine.ServiceStateEvent_PREPARING, fmt.Sprintf("Restarting with %s", newImg), &health{})
	n.scheduleLocked(n.serviceDelay(ServiceKubelet), FaultServices, func() func() {
		n.setServiceLocked(ServiceKubelet, machine.ServiceStateEvent_RUNNING, "Health check successful", &health{known: true, healthy: true})
		n.eventLocked(EventHealthyPrefix + ServiceKubelet)
		return nil
	})
}

func kubeletImage(raw []byte) string {
	cfg, err := configloader.NewFromBytes(raw)
	if err != nil || cfg.Machine() == nil {
		return ""
	}
	return cfg.Machine().Kubelet().Image()
}
