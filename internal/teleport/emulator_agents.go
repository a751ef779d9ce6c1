package teleport

import (
	"fmt"
	"sort"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/types"
	apiutils "github.com/gravitational/teleport/api/utils"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points of SSH nodes and apps.
const (
	// FaultSSHNode fires when an SSH node's agent joins (JoinNode):
	// "never" drops the join silently (the node never shows up), other
	// kinds refuse it, and the agent tries again.
	FaultSSHNode = "teleport.ssh-node"
	// FaultApp fires when an app service starts serving its apps
	// (ServeApp): "never" leaves the app unregistered, other kinds refuse
	// it, and the service tries again.
	FaultApp = "teleport.app"
)

// JoinNode is an SSH node's agent (teleport.yaml: ssh_service, joining
// with a token) joining: like a kube agent's join, the token must exist,
// be unexpired and allow role Node; the node then registers under its
// hostname with its static labels.
func (e *Emulator) JoinNode(token, hostname string, labels map[string]string) error {
	e.count(OpJoin)
	if kind, ok := e.faults.Check(FaultSSHNode); ok {
		if kind == emulator.Never {
			return nil
		}
		return fmt.Errorf("%w: emulated %s fault", ErrJoinRefused, kind)
	}
	if err := e.checkJoinToken(token, types.RoleNode); err != nil {
		return err
	}
	return e.addNode(hostname, labels)
}

// addNode records an SSH node with its static labels.
func (e *Emulator) addNode(hostname string, labels map[string]string) error {
	n, err := types.NewServerWithLabels(hostname, types.KindNode, types.ServerSpecV2{Hostname: hostname, Addr: hostname + ":3022"}, labels)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nodes[hostname] = n.(*types.ServerV2)
	return nil
}

// ServeApp is an app service registering one app. An app service in the
// auth server's own process needs no join token; it serves through the
// proxy's reverse tunnel, so without one (tunnel false) no app server
// appears: what "Unable to serve application requests" reports.
func (e *Emulator) ServeApp(name, uri, publicAddr string, tunnel bool) error {
	if kind, ok := e.faults.Check(FaultApp); ok {
		if kind == emulator.Never {
			return nil
		}
		return fmt.Errorf("app service: emulated %s fault", kind)
	}
	if !tunnel {
		return fmt.Errorf("app service: no reverse tunnel to register %s through", name)
	}
	return e.RegisterApp(name, uri, publicAddr)
}

// RemoveNode and RemoveApp take a node or an app away with the machine
// that served it.
func (e *Emulator) RemoveNode(hostname string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.nodes, hostname)
}

// RemoveApp: see RemoveNode.
func (e *Emulator) RemoveApp(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.apps, name)
}

// NodesAndApps lists the registered SSH nodes and apps, for inventories.
func (e *Emulator) NodesAndApps() (nodes, apps []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for n := range e.nodes {
		nodes = append(nodes, n)
	}
	for a := range e.apps {
		apps = append(apps, a)
	}
	sort.Strings(nodes)
	sort.Strings(apps)
	return nodes, apps
}

// SSH nodes and app servers, for the Proxmox topology's phase 7: the host
// reachable as an SSH node and the Proxmox UI as an app are verified before
// lockdown like the kube agent.

// RegisterNode adds an SSH node, as a host's teleport agent heartbeating would.
func (e *Emulator) RegisterNode(hostname string) error { return e.addNode(hostname, nil) }

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
