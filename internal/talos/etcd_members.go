package talos

import (
	"context"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
)

// EtcdMembers lists the hostnames of the etcd members as the control plane
// at ip sees them (talosctl etcd members). Transient failures are retried
// until ctx ends.
func (c *Client) EtcdMembers(ctx context.Context, ip string, talosconfig []byte) ([]string, error) {
	var out []string
	err := c.secureCall(ctx, ip, talosconfig, func(actx context.Context, cl *client.Client) error {
		resp, err := cl.EtcdMemberList(actx, &machine.EtcdMemberListRequest{})
		if err != nil {
			return grpcErr(fmt.Sprintf("list etcd members on %s", ip), err)
		}
		out = out[:0]
		for _, msg := range resp.GetMessages() {
			for _, mem := range msg.GetMembers() {
				out = append(out, mem.GetHostname())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
