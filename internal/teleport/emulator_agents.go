package teleport

import (
	"sort"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/types"
	apiutils "github.com/gravitational/teleport/api/utils"
)

// SSH nodes and app servers, for the Proxmox topology's phase 7: the host
// reachable as an SSH node and the Proxmox UI as an app are verified before
// lockdown like the kube agent.

// RegisterNode adds an SSH node, as a host's teleport agent heartbeating would.
func (e *Emulator) RegisterNode(hostname string) error {
	n, err := types.NewServer(hostname, types.KindNode, types.ServerSpecV2{Hostname: hostname, Addr: hostname + ":3022"})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nodes[hostname] = n.(*types.ServerV2)
	return nil
}

// RegisterApp adds an app server serving one app.
func (e *Emulator) RegisterApp(name, uri, publicAddr string) error {
	app, err := types.NewAppV3(types.Metadata{Name: name}, types.AppSpecV3{URI: uri, PublicAddr: publicAddr, InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	srv, err := types.NewAppServerV3FromApp(app, "teleport", "emulated-host-id")
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.apps[name] = srv
	return nil
}

// listAgents pages through nodes or app servers by name, like kube servers.
func (e *Emulator) listAgents(req *proto.ListResourcesRequest) *proto.ListResourcesResponse {
	limit := int(req.Limit)
	if limit <= 0 {
		limit = 1000
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	if req.ResourceType == types.KindNode {
		for n := range e.nodes {
			names = append(names, n)
		}
	} else {
		for n := range e.apps {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	resp := &proto.ListResourcesResponse{}
	for _, n := range names {
		if n < req.StartKey {
			continue
		}
		if len(resp.Resources) == limit {
			resp.NextKey = n
			break
		}
		if req.ResourceType == types.KindNode {
			resp.Resources = append(resp.Resources, &proto.PaginatedResource{Resource: &proto.PaginatedResource_Node{Node: apiutils.CloneProtoMsg(e.nodes[n])}})
		} else {
			resp.Resources = append(resp.Resources, &proto.PaginatedResource{Resource: &proto.PaginatedResource_AppServer{AppServer: apiutils.CloneProtoMsg(e.apps[n])}})
		}
		resp.TotalCount++
	}
	return resp
}
