package talos

import (
	"context"
	"crypto"
	"crypto/x509"
	"hash/fnv"
	"net/netip"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Ports node-to-node traffic uses in the emulated cluster; each connection
// passes the receiving node's firewall with the sending node's address as
// its source, as it would between servers on the internet.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	trustdPort     = 50001
)

// etcdCluster is the membership the control planes share once the first one
// was bootstrapped: a joining control plane adds itself (talos's etcd
// service does a MemberAdd through an existing member's client port, then
// the members talk over the peer port).
type etcdCluster struct {
	mu      sync.Mutex
	members []*machine.EtcdMember
}

func (c *etcdCluster) add(hostname string, ip netip.Addr) {
	// The same identity the single-member answer gives.
	h := fnv.New64a()
	h.Write([]byte(ip.String()))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = append(c.members, &machine.EtcdMember{
		Id: h.Sum64(), Hostname: hostname,
		PeerUrls:   []string{"https://" + netip.AddrPortFrom(ip, etcdPeerPort).String()},
		ClientUrls: []string{"https://" + netip.AddrPortFrom(ip, etcdClientPort).String()},
	})
}

func (c *etcdCluster) list() []*machine.EtcdMember {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*machine.EtcdMember(nil), c.members...)
}

// cluster is the etcd membership this node is part of (nil: none yet).
func (n *Node) cluster() *etcdCluster {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.etcdHealthy() {
		return nil
	}
	return n.etcd
}

// etcdHealthy reports whether this node's etcd serves; n.mu is held.
func (n *Node) etcdHealthy() bool {
	s := n.services[ServiceEtcd]
	return n.etcd != nil && s != nil && s.healthy
}

// peers are the other emulated nodes (the sandbox knows them).
func (n *Node) peers() []*Node {
	if n.opts.Peers == nil {
		return nil
	}
	var out []*Node
	for _, p := range n.opts.Peers() {
		if p != n {
			out = append(out, p)
		}
	}
	return out
}

// reaches reports whether a new TCP connection from this node to port on
// peer gets through the peer's firewall (and the peer serves: configured).
func (n *Node) reaches(peer *Node, port int) bool {
	peer.mu.Lock()
	defer peer.mu.Unlock()
	return peer.mode == ModeConfigured && peer.fw.Allowed(port, n.opts.PublicIP)
}

// joinEtcd looks for a healthy member this control plane can join: its
// client and peer ports must admit us, and our peer port must admit it.
// It runs without n.mu (it locks the peers).
func (n *Node) joinEtcd() *etcdCluster {
	for _, p := range n.peers() {
		c := p.cluster()
		if c == nil {
			continue
		}
		if n.reaches(p, etcdClientPort) && n.reaches(p, etcdPeerPort) && p.reaches(n, etcdPeerPort) {
			return c
		}
	}
	return nil
}

// joinedControlPlane reports whether a worker's kubelet can register: it
// needs trustd (for its certificate) and the API server of a control plane.
func (n *Node) joinedControlPlane() bool {
	for _, p := range n.peers() {
		p.mu.Lock()
		cp := !p.worker && p.etcdHealthy()
		p.mu.Unlock()
		if cp && n.reaches(p, trustdPort) && n.reaches(p, KubeAPIPort) {
			return true
		}
	}
	return false
}

// keepTryingLocked calls try every d (without n.mu) until it succeeds, then
// runs apply with n.mu held; a new boot stage or Close ends the attempts.
func (n *Node) keepTryingLocked(d time.Duration, point string, try func() bool, apply func()) {
	gen := n.gen
	n.scheduleLocked(d, point, func() func() {
		return func() {
			ok := try()
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.gen != gen || isClosed(n.done) {
				return
			}
			if ok {
				apply()
				return
			}
			n.keepTryingLocked(d, point, try, apply)
		}
	})
}

// EtcdMemberList lists the members of the etcd cluster this control plane
// belongs to.
func (s *machineServer) EtcdMemberList(context.Context, *machine.EtcdMemberListRequest) (*machine.EtcdMemberListResponse, error) {
	s.n.counters.Inc("EtcdMemberList")
	if err := s.configuredOnly(); err != nil {
		return nil, err
	}
	s.n.mu.Lock()
	c, worker, bootstrapped := s.n.etcd, s.n.worker, s.n.bootstrapped
	var self *machine.EtcdMember
	if bootstrapped {
		self = s.n.etcdMemberLocked()
	}
	s.n.mu.Unlock()
	switch {
	case worker:
		return nil, status.Error(codes.FailedPrecondition, "etcd is not running on a worker")
	case c != nil:
		return &machine.EtcdMemberListResponse{Messages: []*machine.EtcdMembers{{Members: c.list()}}}, nil
	case bootstrapped: // from a recovered snapshot: a member of its own
		return &machine.EtcdMemberListResponse{Messages: []*machine.EtcdMembers{{Members: []*machine.EtcdMember{self}}}}, nil
	}
	// Before etcd runs the etcd client in apid cannot connect, which Talos
	// reports as Unavailable.
	return nil, status.Error(codes.Unavailable, "etcd is not running: the cluster was not bootstrapped and this node did not join one")
}

// configHostname is the hostname a config gives the node ("" for none).
func configHostname(cfg config.Provider) string {
	for _, doc := range cfg.Documents() {
		if h, ok := doc.(*network.HostnameConfigV1Alpha1); ok && h.ConfigHostname != "" {
			return h.ConfigHostname
		}
	}
	return ""
}

// fromTrustd asks a control plane's trustd, through its firewall, for the
// key of the OS CA ca (standing in for the certificate it would sign).
func (n *Node) fromTrustd(ca *x509.Certificate) crypto.Signer {
	for _, p := range n.peers() {
		p.mu.Lock()
		ok := !p.worker && p.mode == ModeConfigured && p.caKey != nil && p.caCert.Equal(ca) && p.fw.Allowed(trustdPort, n.opts.PublicIP)
		key := p.caKey
		p.mu.Unlock()
		if ok {
			return key
		}
	}
	return nil
}

// EtcdMembers lists the hostnames of the etcd members this node sees.
func (n *Node) EtcdMembers() []string {
	n.mu.Lock()
	c := n.etcd
	n.mu.Unlock()
	if c == nil {
		return nil
	}
	var out []string
	for _, m := range c.list() {
		out = append(out, m.GetHostname())
	}
	return out
}
