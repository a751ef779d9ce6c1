package talos

import (
	"context"
	"hash/fnv"
	"net"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EtcdMemberList answers as a single control-plane node does: one member,
// itself, once etcd runs (bootstrapped); before that the etcd client in
// apid cannot connect, which Talos reports as Unavailable.
func (s *machineServer) EtcdMemberList(ctx context.Context, _ *machine.EtcdMemberListRequest) (*machine.EtcdMemberListResponse, error) {
	s.n.counters.Inc("EtcdMemberList")
	if err := s.configuredOnly(); err != nil {
		return nil, err
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if !s.n.bootstrapped {
		return nil, status.Error(codes.Unavailable, "etcd is not running: the cluster was not bootstrapped")
	}
	return &machine.EtcdMemberListResponse{Messages: []*machine.EtcdMembers{{Members: []*machine.EtcdMember{s.n.etcdMemberLocked()}}}}, nil
}

func (n *Node) etcdMemberLocked() *machine.EtcdMember {
	ip := n.opts.PublicIP.String()
	h := fnv.New64a()
	h.Write([]byte(ip))
	return &machine.EtcdMember{
		Id:         h.Sum64(),
		Hostname:   n.hostnameLocked(),
		PeerUrls:   []string{"https://" + net.JoinHostPort(ip, "2380")},
		ClientUrls: []string{"https://" + net.JoinHostPort(ip, "2379")},
	}
}

// hostnameLocked is the name Talos derives from the address when the
// config sets none.
func (n *Node) hostnameLocked() string {
	b := []byte("talos-" + n.opts.PublicIP.String())
	for i, c := range b {
		if c == '.' || c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}
