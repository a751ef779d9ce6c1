package talos

import (
	"context"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
)

// NodeInfo is what a configured node says about itself, for status.
type NodeInfo struct {
	Version  string
	Services []ServiceInfo
	// EtcdMembers are the member names etcd lists; EtcdErr says why the
	// list could not be read (etcd down, not bootstrapped).
	EtcdMembers []string
	EtcdErr     error
}

// ServiceInfo is one service's state and health.
type ServiceInfo struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Healthy bool   `json:"healthy"`
}

// Inspect reads a configured node's version, services and etcd members
// over mTLS: one attempt each, no retries (status reports, it does not wait).
func (c *Client) Inspect(ctx context.Context, ip string, talosconfig []byte) (NodeInfo, error) {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return NodeInfo{}, err
	}
	actx, cancel := c.attempt(ctx)
	defer cancel()
	cl, err := c.secureClient(actx, ip, m)
	if err != nil {
		return NodeInfo{}, err
	}
	defer cl.Close()
	var info NodeInfo
	ver, err := cl.Version(actx)
	if err != nil {
		return info, grpcErr(fmt.Sprintf("Version on %s", ip), err)
	}
	if msgs := ver.GetMessages(); len(msgs) > 0 {
		info.Version = msgs[0].GetVersion().GetTag()
	}
	svcs, err := cl.ServiceList(actx)
	if err != nil {
		return info, grpcErr(fmt.Sprintf("list services on %s", ip), err)
	}
	for _, msg := range svcs.GetMessages() {
		for _, s := range msg.GetServices() {
			info.Services = append(info.Services, ServiceInfo{ID: s.GetId(), State: s.GetState(),
				Healthy: s.GetHealth() != nil && !s.GetHealth().GetUnknown() && s.GetHealth().GetHealthy()})
		}
	}
	members, err := cl.EtcdMemberList(actx, &machine.EtcdMemberListRequest{})
	if err != nil {
		info.EtcdErr = grpcErr(fmt.Sprintf("list etcd members on %s", ip), err)
		return info, nil
	}
	for _, msg := range members.GetMessages() {
		for _, mem := range msg.GetMembers() {
			info.EtcdMembers = append(info.EtcdMembers, mem.GetHostname())
		}
	}
	return info, nil
}
