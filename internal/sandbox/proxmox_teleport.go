package sandbox

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

// Phase 7 of the proxmox topology in the sandbox: the host's Teleport SSH
// service and the Teleport VM's app service register only as what the CLI
// configured implies they would. The host's agent runs the teleport.yaml
// its user data brought: it joins the auth server named there, which
// answers only once this host's Teleport VM has booted, with the token
// named there, which Teleport accepts only once the CLI has created it
// (role Node, unexpired); refused, systemd restarts it and it tries again.
// The Teleport VM serves the apps of the teleport.yaml on its own cidata
// ISO, through its proxy's reverse tunnel. Both leave with their machines.

// Estimates, before the speed applies: systemd's restart of a failed
// teleport unit, and the app service's first heartbeat after the VM's
// Teleport started.
const (
	hostAgentRetry = 5 * time.Second
	appStart       = 10 * time.Second
)

// startHostAgentLocked starts the host's agent (s.mu held).
func (s *Sandbox) startHostAgentLocked(hostIP string, cfg []byte) {
	a, err := teleportvm.ParseHostAgent(cfg)
	if err != nil {
		return // teleport would not start with it either
	}
	if s.hostAgents == nil {
		s.hostAgents = map[string]string{}
	}
	s.hostAgents[hostIP] = a.NodeName
	var try func()
	try = func() {
		// Held across the check and the join, so that a host deleted in
		// between cannot leave its node registered behind it.
		s.agentMu.Lock()
		defer s.agentMu.Unlock()
		s.mu.Lock()
		_, hostUp := s.hosts[hostIP]
		_, authUp := s.teleportVMs[hostIP]
		s.mu.Unlock()
		if !hostUp {
			return
		}
		// Only the Teleport VM on this host's internal network answers
		// at the address the config names.
		if authUp && a.AuthServer == teleportvm.AuthAddr(provision.ProxmoxLayout().Teleport) {
			if err := s.Teleport.JoinNode(a.Token, a.NodeName, a.Labels); err == nil {
				s.tl.add("teleport: host SSH node joined", hostIP, time.Now())
				return
			}
		}
		s.after(s.Scaled(hostAgentRetry)+time.Millisecond, try)
	}
	// Called from bootHost under s.mu: the first try comes later.
	if !s.closed {
		s.timers = append(s.timers, time.AfterFunc(s.Scaled(hostAgentRetry), try))
	}
}

// serveApps registers the apps the Teleport VM's teleport.yaml serves.
func (s *Sandbox) serveApps(hostIP string, g pveemu.Guest) {
	cfg, ok := teleportYAMLOf(g.CIData)
	if !ok {
		return
	}
	apps, tunnel, err := teleportvm.ServedApps(cfg)
	if err != nil || len(apps) == 0 {
		return
	}
	var try func()
	try = func() {
		s.agentMu.Lock()
		defer s.agentMu.Unlock()
		s.mu.Lock()
		vmid, up := s.teleportVMs[hostIP]
		s.mu.Unlock()
		if !up || vmid != g.VMID {
			return // the VM stopped
		}
		for _, a := range apps {
			if err := s.Teleport.ServeApp(a.Name, a.URI, a.PublicAddr, tunnel); err != nil {
				s.after(s.Scaled(appStart)+time.Millisecond, try)
				return
			}
			s.mu.Lock()
			if s.vmApps == nil {
				s.vmApps = map[string][]string{}
			}
			s.vmApps[hostIP] = append(s.vmApps[hostIP], a.Name)
			s.mu.Unlock()
		}
		s.tl.add("teleport: apps served", hostIP, time.Now())
	}
	s.after(s.Scaled(appStart), try)
}

// teleportYAMLOf finds /etc/teleport.yaml in the write_files of the
// user-data on a VM's cidata ISO.
func teleportYAMLOf(iso []byte) ([]byte, bool) {
	label, files, err := cidata.Read(iso)
	if err != nil || !strings.EqualFold(label, cidata.LabelCloudInit) {
		return nil, false
	}
	ud, ok := cidata.Lookup(files, "user-data")
	if !ok {
		return nil, false
	}
	var doc struct {
		WriteFiles []struct {
			Path    string `yaml:"path"`
			Content string `yaml:"content"`
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(ud, &doc); err != nil {
		return nil, false
	}
	for _, f := range doc.WriteFiles {
		if f.Path == "/etc/teleport.yaml" {
			return []byte(f.Content), true
		}
	}
	return nil, false
}

// dropTeleportVM: the Teleport VM stopped, and with its Teleport what
// registered there: its apps and the host's node.
func (s *Sandbox) dropTeleportVM(hostIP string) {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	s.mu.Lock()
	apps := s.vmApps[hostIP]
	delete(s.vmApps, hostIP)
	node := s.hostAgents[hostIP]
	s.mu.Unlock()
	for _, a := range apps {
		s.Teleport.RemoveApp(a)
	}
	if node != "" {
		s.Teleport.RemoveNode(node)
	}
}

// dropHostTeleport: the host is gone, and its node with it.
func (s *Sandbox) dropHostTeleport(hostIP string) {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	s.mu.Lock()
	node := s.hostAgents[hostIP]
	delete(s.hostAgents, hostIP)
	apps := s.vmApps[hostIP]
	delete(s.vmApps, hostIP)
	delete(s.teleportVMs, hostIP)
	s.mu.Unlock()
	if node != "" {
		s.Teleport.RemoveNode(node)
	}
	for _, a := range apps {
		s.Teleport.RemoveApp(a)
	}
}
