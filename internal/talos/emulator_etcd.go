package talos

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"io"
	"net"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// FaultEtcdSnapshot is EtcdSnapshot. error/unavailable/ratelimit: the
// matching code, nothing streamed; hang: no answer.
const FaultEtcdSnapshot = "talos.etcd-snapshot"

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

// hostnameLocked is the config's hostname, else the name Talos derives
// from the address.
func (n *Node) hostnameLocked() string {
	if n.hostname != "" {
		return n.hostname
	}
	b := []byte("talos-" + n.opts.PublicIP.String())
	for i, c := range b {
		if c == '.' || c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

// The emulated etcd keyspace is a small JSON document; a snapshot is that
// document followed by its SHA-256, as `etcdctl snapshot save` appends a
// hash to the bbolt file, which recovery checks unless told to skip it.

func freshEtcd(ip string) []byte {
	b, _ := json.Marshal(map[string]string{"cluster_id": randomHex(8), "bootstrapped_on": ip})
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// seedEtcdLocked fills etcd at the bootstrap: from the uploaded snapshot
// when asked to recover, else fresh.
func (n *Node) seedEtcdLocked(recover bool) error {
	if !recover {
		n.etcdData = freshEtcd(n.opts.PublicIP.String())
		return nil
	}
	if n.recoverSnapshot == nil {
		return status.Error(codes.FailedPrecondition, "etcd recovery requested, but no snapshot was uploaded (EtcdRecover)")
	}
	n.etcdData = n.recoverSnapshot
	n.recoverSnapshot = nil
	return nil
}

// EtcdData is the emulated etcd keyspace (nil before the bootstrap), so
// tests can tell a restored cluster from a fresh one.
func (n *Node) EtcdData() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]byte(nil), n.etcdData...)
}

// EtcdSnapshot streams a snapshot of the running etcd, as Talos does from
// the local member.
func (s *machineServer) EtcdSnapshot(_ *machine.EtcdSnapshotRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	s.n.counters.Inc("EtcdSnapshot")
	if err := s.configuredOnly(); err != nil {
		return err
	}
	if _, err := s.fault(stream.Context(), FaultEtcdSnapshot, emulator.Error, emulator.Unavailable, emulator.RateLimit, emulator.Hang); err != nil {
		return err
	}
	s.n.mu.Lock()
	data := append([]byte(nil), s.n.etcdData...)
	running := s.n.bootstrapped
	s.n.mu.Unlock()
	if !running {
		return status.Error(codes.FailedPrecondition, "etcd is not running: the cluster was not bootstrapped")
	}
	sum := sha256.Sum256(data)
	snap := append(data, sum[:]...)
	for len(snap) > 0 {
		n := min(len(snap), 32*1024)
		if err := stream.Send(&common.Data{Bytes: snap[:n]}); err != nil {
			return err
		}
		snap = snap[n:]
	}
	return nil
}

// EtcdRecover takes a snapshot for the next Bootstrap(recover_etcd). Talos
// accepts it only while etcd waits for the bootstrap: a running etcd is
// never overwritten.
func (s *machineServer) EtcdRecover(stream grpc.ClientStreamingServer[common.Data, machine.EtcdRecoverResponse]) error {
	s.n.counters.Inc("EtcdRecover")
	if err := s.configuredOnly(); err != nil {
		return err
	}
	s.n.mu.Lock()
	waiting := s.n.etcdReady && !s.n.bootstrapped
	s.n.mu.Unlock()
	if !waiting {
		return status.Error(codes.FailedPrecondition, "etcd is not waiting for bootstrap: recovery is only possible before the cluster is bootstrapped")
	}
	var buf []byte
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		buf = append(buf, msg.GetBytes()...)
		if len(buf) > 64<<20 {
			return status.Error(codes.ResourceExhausted, "snapshot too large for the emulator")
		}
	}
	if len(buf) < sha256.Size {
		return status.Error(codes.InvalidArgument, "snapshot is too short to carry its hash")
	}
	data, sum := buf[:len(buf)-sha256.Size], buf[len(buf)-sha256.Size:]
	if want := sha256.Sum256(data); !bytes.Equal(want[:], sum) {
		return status.Error(codes.InvalidArgument, "snapshot hash mismatch: the file is damaged")
	}
	s.n.mu.Lock()
	s.n.recoverSnapshot = data
	s.n.mu.Unlock()
	return stream.SendAndClose(&machine.EtcdRecoverResponse{Messages: []*machine.EtcdRecover{{}}})
}
