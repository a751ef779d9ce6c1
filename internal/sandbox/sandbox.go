// Package sandbox starts an emulator of every external system in-process on
// loopback and wires them together so that the real provisioning pipeline
// can run against them: the emulated Scaleway boots an emulated Talos node
// when a server's install completes, the node's kube agent joins the
// emulated Teleport with the token it finds in its applied config, and
// deleting the server takes the node and its agent away.
package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	ifemu "github.com/rawkode/rawkode-cloud/internal/imagefactory/emulator"
	"github.com/rawkode/rawkode-cloud/internal/infisical"
	"github.com/rawkode/rawkode-cloud/internal/ipdetect"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	s3emu "github.com/rawkode/rawkode-cloud/internal/s3/emulator"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// DefaultSpeed is how much faster than real time the sandbox runs by
// default: a realistic 20-minute provisioning takes about 12 seconds.
const DefaultSpeed = 100

// OperatorIP is the public address the sandbox's operator appears to have.
var OperatorIP = netip.MustParseAddr("198.51.100.7")

// Sandbox credentials: obviously fake, never valid anywhere real.
const (
	CloudflareToken       = "sandbox-cloudflare-token-0000000000000000"
	InfisicalClientID     = "sandbox-client-id"
	InfisicalClientSecret = "sandbox-client-secret-00000000000000000"
	InfisicalProjectID    = "sandbox-project"
	DefaultClusterName    = "sandbox"
	DefaultDNSZone        = "sandbox.example.com"
	EtcdBackupBucket      = "sandbox-etcd-snapshots"
	GitHubOrg             = "sandbox-org"
	GitHubTeam            = "infra"
	GitHubClientID        = "sandbox-github-client-id"
	GitHubClientSecret    = "sandbox-github-client-secret-0000000000"
)

// Options configure a sandbox.
type Options struct {
	// Speed divides every realistic duration; DefaultSpeed when zero.
	Speed float64
	// Faults to inject, by fault point.
	Faults map[string]emulator.Fault
	// Profile overrides the realistic durations (before Speed applies).
	Profile *Profile
	// PollOnly takes the streams away, as the seed design never used them:
	// Teleport cannot watch and the Talos node has no event stream, so the
	// CLI falls back to polling. For comparisons only.
	PollOnly bool
}

// Profile holds realistic real-world durations of what the sandbox emulates.
type Profile struct {
	AssignIP, Deliver, StartInstall, Install, Delete time.Duration // Scaleway
	Pivot, Reboot, EtcdReady                         time.Duration // Talos node
	// MaintenanceLinger is how long a node's maintenance API keeps
	// answering after the apply (real Talos tears it down asynchronously).
	MaintenanceLinger          time.Duration
	Services                   map[string]time.Duration
	AgentStart, AgentHeartbeat time.Duration // Teleport kube agent
	// Jitter spreads each server's Scaleway delays by up to ±this fraction
	// (see scaleway.EmulatorOptions.Jitter); zero keeps every server on the
	// profile, which is what the report's critical path assumes.
	Jitter float64
	// PVEInstall is a Proxmox host's first boot after Debian's install:
	// the Proxmox kernel, a reboot and the Proxmox VE packages.
	PVEInstall time.Duration
	PVE        pveemu.Delays // Proxmox VE tasks
	// ImageBuild is the Image Factory's first build of an asset (the
	// proxmox topology's Talos nocloud image with two extensions).
	ImageBuild time.Duration
}

// RealisticProfile is what a provisioning on Elastic Metal roughly looks like.
func RealisticProfile() Profile {
	return Profile{
		AssignIP: 20 * time.Second, Deliver: 4 * time.Minute, StartInstall: 30 * time.Second,
		Install: 10 * time.Minute, Delete: time.Minute,
		Pivot: 3 * time.Minute, Reboot: 90 * time.Second, EtcdReady: 15 * time.Second,
		MaintenanceLinger: 3 * time.Second,
		Services: map[string]time.Duration{
			talos.ServiceAPID: 5 * time.Second, talos.ServiceTrustd: 5 * time.Second,
			talos.ServiceKubelet: 30 * time.Second, talos.ServiceEtcd: 20 * time.Second,
		},
		AgentStart: 45 * time.Second, AgentHeartbeat: 5 * time.Second,
		PVEInstall: 8 * time.Minute,
		PVE: pveemu.Delays{NetworkApply: 4 * time.Second, Download: time.Minute, VMCreate: 20 * time.Second,
			VMStart: 5 * time.Second, VMStop: 5 * time.Second},
		// An estimate, not a measurement: the factory publishes no build
		// times; an uncached disk image with extensions is assembled and
		// compressed on the first request, which takes on the order of a
		// minute, and is served from its cache afterwards.
		ImageBuild: time.Minute,
	}
}

// Sandbox is a running set of emulators.
type Sandbox struct {
	speed   float64
	profile Profile
	faults  *emulator.Faults

	Scaleway   *scaleway.Emulator
	Cloudflare *cloudflare.Emulator
	Infisical  *infisical.Emulator
	Teleport   *teleport.Emulator
	IP         *ipdetect.Emulator
	S3         *s3emu.Emulator
	// ImageFactory serves schematics (and the images of the Proxmox VMs).
	ImageFactory *ifemu.Emulator
	identity     []byte
	pollOnly     bool
	tl           timeline

	agentMu sync.Mutex             // orders agent joins against node removal
	agents  map[string]*agentState // the kube agent of the node at an IP

	mu         sync.Mutex
	overridden []string
	// staleSeeded remembers the clusters given a stale registration.
	staleSeeded map[string]bool
	nodes       map[string]*talos.Node // by public IP
	// nodeCounters outlive their nodes, for request counts.
	nodeCounters []*emulator.Counters
	ips          map[string]string           // server ID → public IP
	hosts        map[string]*pveemu.Emulator // Proxmox VE hosts by public IP
	hostForwards map[string]hostForwarding   // their operator-only forwards, from their user data
	// vmNodes are the Talos VMs' nodes by host IP and VM ID (their key in
	// nodes is their internal address).
	vmNodes map[string]map[int]string
	// teleportVMs are the booted Teleport VMs (VM ID) and hostAgents the
	// hosts' Teleport SSH services (node name), by host IP (proxmox.go).
	teleportVMs map[string]int
	hostAgents  map[string]string
	vmApps      map[string][]string // apps the host's Teleport VM registered
	closed      bool
	timers      []*time.Timer
	rewrite     func([]byte) []byte
	// kubes are the clusters' Kubernetes APIs, by cluster name; nodeCluster
	// says which cluster a node (by IP) serves.
	kubes       map[string]*kubeemulator.Server
	nodeCluster map[string]string
}

// RewriteConfigs makes every emulated node see fn(config) instead of the
// config it was sent: how a test breaks a config on purpose (forgets a
// firewall rule) to prove the emulated cluster notices as metal would.
func (s *Sandbox) RewriteConfigs(fn func([]byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rewrite = fn
}

// Start brings every emulator up.
func Start(opts Options) (*Sandbox, error) {
	speed := opts.Speed
	if speed <= 0 {
		speed = DefaultSpeed
	}
	prof := RealisticProfile()
	if opts.Profile != nil {
		prof = *opts.Profile
	}
	s := &Sandbox{speed: speed, profile: prof, faults: emulator.NewFaults(), nodes: map[string]*talos.Node{}, ips: map[string]string{},
		kubes: map[string]*kubeemulator.Server{}, nodeCluster: map[string]string{},
		hosts: map[string]*pveemu.Emulator{}, hostForwards: map[string]hostForwarding{}, vmNodes: map[string]map[int]string{},
		pollOnly: opts.PollOnly}
	for p, f := range opts.Faults {
		s.faults.Set(p, f)
	}
	sc := s.Scaled
	s.Scaleway = scaleway.NewEmulator(scaleway.EmulatorOptions{
		Faults: s.faults,
		Delays: &scaleway.Delays{AssignIP: sc(prof.AssignIP), Deliver: sc(prof.Deliver), StartInstall: sc(prof.StartInstall),
			Install: sc(prof.Install), Delete: sc(prof.Delete)},
		OnInstalled:  s.bootNode,
		OnDeleted:    s.removeNode,
		OnTransition: s.tl.server,
		Jitter:       prof.Jitter,
	})
	s.Cloudflare = cloudflare.NewEmulator(cloudflare.EmulatorOptions{
		Token:  CloudflareToken,
		Zones:  []cloudflare.Zone{{ID: cloudflare.DefaultZoneID, Name: DefaultDNSZone}},
		Faults: s.faults,
	})
	s.Infisical = infisical.NewEmulator(infisical.EmulatorOptions{
		Identities: []infisical.Identity{{ClientID: InfisicalClientID, ClientSecret: InfisicalClientSecret}},
		Projects:   []infisical.Project{{ID: InfisicalProjectID}},
		Faults:     s.faults,
	})
	var err error
	s.Teleport, err = teleport.NewEmulator(teleport.EmulatorOptions{Faults: s.faults, JoinDelay: sc(prof.AgentHeartbeat),
		// teleport.token=expire: the token is gone a minute after it was
		// minted, long before its agent starts.
		EarlyExpiry: sc(time.Minute),
		NoWatch:     opts.PollOnly, ServerTTL: sc(teleport.DefaultServerTTL),
		OnEvent:     func(name, cluster string, at time.Time) { s.tl.add("teleport: "+name, cluster, at) },
		KubeBackend: s.kubeBackend})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("start Teleport emulator: %w", err)
	}
	if s.identity, err = s.Teleport.IdentityFile(); err != nil {
		s.Close()
		return nil, fmt.Errorf("issue sandbox Teleport identity: %w", err)
	}
	s.IP = ipdetect.NewEmulatorWithFaults(OperatorIP.String(), s.faults)
	s.S3 = s3emu.New(s3emu.Options{AccessKey: scaleway.SandboxAccessKey, Buckets: []string{EtcdBackupBucket}, Faults: s.faults})
	if err := s.startImageFactory(); err != nil {
		s.Close()
		return nil, fmt.Errorf("start Image Factory emulator: %w", err)
	}
	return s, nil
}

// Scaled converts a realistic duration to sandbox time.
func (s *Sandbox) Scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

// Speed is the time-scale factor in force.
func (s *Sandbox) Speed() float64 { return s.speed }

// Profile is the realistic profile in force (before Speed applies).
func (s *Sandbox) Profile() Profile { return s.profile }

// Faults is the fault set shared by every emulator.
func (s *Sandbox) Faults() *emulator.Faults { return s.faults }

// Describe says what runs, for the first line of output.
func (s *Sandbox) Describe() string {
	return fmt.Sprintf("sandbox: every service is an in-process emulator on 127.0.0.1; time runs %g× faster than real, and the CLI's waits and intervals are scaled by the same factor", s.speed)
}

// bootNode starts the emulated Talos node on a server whose OS install
// completed: the cloud-init pivot is what happens during BootDelay.
func (s *Sandbox) bootNode(srv scaleway.Server) {
	ip, err := netip.ParseAddr(srv.IPv4)
	if err != nil {
		return
	}
	if ud := s.Scaleway.UserData(srv.ID); ud != nil {
		if hash, ok := proxmoxhost.RootHash(ud); ok {
			// The host forwards what its user data says, nothing else, and
			// runs the Teleport agent it configures (read now: the CLI
			// overwrites the user data once the host is up).
			set, fw, _ := proxmoxhost.OperatorForwardsOf(ud)
			fwd := hostForwarding{ipset: set, forwards: fw}
			agent, _ := proxmoxhost.TeleportAgentConfig(ud)
			s.after(s.Scaled(s.profile.PVEInstall), func() { s.bootHost(srv, hash, fwd, agent) })
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	services := map[string]time.Duration{}
	for k, v := range s.profile.Services {
		services[k] = s.Scaled(v)
	}
	installCfg, partition := s.installConfig(srv)
	node, err := talos.NewNode(talos.NodeOptions{
		PublicIP: ip, OperatorIP: OperatorIP, InstallConfig: installCfg, ConfigPartition: partition,
		BootDelay: s.Scaled(s.profile.Pivot), RebootDelay: s.Scaled(s.profile.Reboot),
		EtcdReadyDelay: s.Scaled(s.profile.EtcdReady), ServiceDelays: services,
		MaintenanceLinger: s.Scaled(s.profile.MaintenanceLinger),
		// A fault limited to one node (@node=NAME) hits the node on the
		// server of that name only.
		Faults: s.faults.ForNode(srv.Name), NoEvents: s.pollOnly,
		OnEvent: func(name string, at time.Time) { s.tl.add("talos: "+name, srv.IPv4, at) },
		// The servers share one network: node-to-node traffic passes
		// each node's emulated firewall.
		Peers:         s.Nodes,
		RewriteConfig: s.rewrite,
		Kube:          func(cluster string) *kubeemulator.Server { return s.kubeFor(cluster, srv.IPv4) },
		FetchManifest: fetchManifest,
		ApplyBackoff:  kubeemulator.TalosBackoff.Scaled(s.speed),
	})
	if err != nil {
		return
	}
	s.nodeCounters = append(s.nodeCounters, node.Counters())
	node.OnConfigured(func(cfg []byte) { s.startAgent(srv.IPv4, node, cfg) })
	s.nodes[srv.IPv4] = node
	s.ips[srv.ID] = srv.IPv4
}

// bootHost starts the emulated Proxmox VE API of a server whose user data
// made it a Proxmox host, in the state the first boot leaves: root's
// password from the user data, local's content types and the ZFS pool.
func (s *Sandbox) bootHost(srv scaleway.Server, rootHash string, fwd hostForwarding, teleportAgent []byte) {
	sc := func(d time.Duration) time.Duration { return s.Scaled(d) }
	d := s.profile.PVE
	e, err := pveemu.New(pveemu.Options{Node: srv.Name, Version: SandboxPVEVersion, RootPasswordHash: rootHash, PublicCIDR: srv.IPv4 + "/24",
		Operator: OperatorIP, Faults: s.faults,
		Delays: pveemu.Delays{NetworkApply: sc(d.NetworkApply), Download: sc(d.Download), VMCreate: sc(d.VMCreate),
			VMStart: sc(d.VMStart), VMStop: sc(d.VMStop)},
		OnPower: func(g pveemu.Guest, on bool) { s.vmPower(srv.IPv4, g, on) }})
	if err != nil {
		return
	}
	opts := proxmoxhost.Options{}.WithDefaults()
	e.SetStorage("local", "dir", opts.LocalContent)
	e.SetStorage(opts.ZFSPool, "zfspool", []string{"images", "rootdir"})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.Scaleway.UserData(srv.ID) == nil {
		e.Close()
		return
	}
	s.tl.add("proxmox: API up", srv.IPv4, time.Now())
	s.hosts[srv.IPv4] = e
	s.hostForwards[srv.IPv4] = fwd
	s.ips[srv.ID] = srv.IPv4
	if teleportAgent != nil {
		s.startHostAgentLocked(srv.IPv4, teleportAgent)
	}
}

// SandboxPVEVersion is the Proxmox VE the sandbox's hosts run: Debian 12's
// (bookworm) line, which has the import content type from 8.4 on.
const SandboxPVEVersion = "8.4.14"

// Host returns the emulated Proxmox VE host at a server IP (nil when none).
func (s *Sandbox) Host(ip string) *pveemu.Emulator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[ip]
}

func (s *Sandbox) proxmoxEndpoint(ip string) (string, *http.Client, bool) {
	h := s.Host(ip)
	if h == nil {
		return "", nil, false
	}
	return h.URL(), h.HTTPClient(), true
}

// agentState is a node's kube agent: the join token its pod was started with.
type agentState struct{ token string }

// startAgent plays the Teleport kube agent the node runs from its inline
// manifests: once the cluster is bootstrapped it joins with the token it was
// given, under the cluster name it was given — nothing else. A config that
// takes effect later with the same token (the lockdown) changes nothing; a
// new token (a renewal, a resumed run) restarts the agent with that one.
func (s *Sandbox) startAgent(ip string, node *talos.Node, cfg []byte) {
	agent, err := machineconfig.TeleportAgentOf(cfg)
	token, cluster := agent.Token, agent.Cluster
	if err != nil || token == "" {
		return
	}
	s.agentMu.Lock()
	if st := s.agents[ip]; st != nil && st.token == token {
		s.agentMu.Unlock()
		return
	}
	st := &agentState{token: token}
	if s.agents == nil {
		s.agents = map[string]*agentState{}
	}
	s.agents[ip] = st
	s.agentMu.Unlock()
	var try func()
	try = func() {
		// Held across the check and the join so that a server deleted in
		// between cannot leave a kube server registered behind it.
		s.agentMu.Lock()
		defer s.agentMu.Unlock()
		if s.Node(ip) != node || s.agents[ip] != st {
			return // the server was deleted, the sandbox closed, or the agent got another token
		}
		s.tl.add(TimelineAgentTry, ip, time.Now())
		if !s.agentPodRuns(cluster) {
			// Its pod needs the API server (etcd) and the pod network.
			s.after(s.Scaled(s.profile.AgentStart)/4+time.Millisecond, try)
			return
		}
		if !s.agentReaches(ip, agent.Proxy) {
			// The proxy it was given leads nowhere (or to another Teleport):
			// it keeps trying, as its restarting pod would, and never joins.
			s.after(s.Scaled(s.profile.AgentHeartbeat)+time.Millisecond, try)
			return
		}
		if err := s.Teleport.JoinWithLabels(token, cluster, agent.Labels); err != nil {
			// A real agent keeps trying to join (its pod restarts), so a
			// transient refusal delays the registration, it does not stop it;
			// an expired token is refused on every try until a new one comes.
			s.after(s.Scaled(s.profile.AgentHeartbeat)+time.Millisecond, try)
		}
	}
	s.after(s.Scaled(s.profile.AgentStart), try)
}

func (s *Sandbox) after(d time.Duration, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.timers = append(s.timers, time.AfterFunc(d, fn))
}

// removeNode takes the node and its agent away with the deleted server.
// A Proxmox host takes its VMs' nodes along.
func (s *Sandbox) removeNode(id string) {
	s.mu.Lock()
	ip := s.ips[id]
	h := s.hosts[ip]
	delete(s.hosts, ip)
	delete(s.hostForwards, ip)
	delete(s.ips, id)
	keys := []string{ip}
	for _, k := range s.vmNodes[ip] {
		keys = append(keys, k)
	}
	delete(s.vmNodes, ip)
	s.mu.Unlock()
	if h != nil {
		h.Close()
		s.dropHostTeleport(ip)
	}
	for _, k := range keys {
		s.dropNode(k)
	}
}

// dropNode takes the node at key (its public or, for a VM, internal
// address) and its agent away.
func (s *Sandbox) dropNode(key string) {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	s.mu.Lock()
	n := s.nodes[key]
	delete(s.nodes, key)
	delete(s.agents, key)
	s.mu.Unlock()
	s.dropKube(n, s.nodeClusterOf(n))
	if n != nil {
		for _, cfg := range n.AppliedConfigs() {
			if _, cluster, err := machineconfig.TeleportJoin(cfg); err == nil {
				s.Teleport.Leave(cluster)
			}
		}
		n.Close()
	}
}

// Node returns the emulated node at a server IP (nil when none).
func (s *Sandbox) Node(ip string) *talos.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[ip]
}

// Nodes returns every running emulated node.
func (s *Sandbox) Nodes() []*talos.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*talos.Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	return out
}

// dial routes "<server-ip>:<port>" to that server's emulated node; any other
// address is refused like an unreachable host, so nothing leaves the machine.
func (s *Sandbox) dial(ctx context.Context, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if n := s.Node(host); n != nil {
		return n.Dialer()(ctx, addr)
	}
	if c, ok, err := s.forwarded(ctx, addr); ok {
		return c, err
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
}

// Factory points every adapter at the emulators.
func (s *Sandbox) Factory() provision.Factory {
	return factoryFor(s.speed, provision.Factory{
		ScalewayAPIURL:    s.Scaleway.URL(),
		CloudflareBaseURL: s.Cloudflare.URL(),
		IPDetectURLs:      []string{s.IP.URL()},
		IPAllowNonPublic:  true,
		TalosDialer:       s.dial,
		ProxmoxEndpoint:   s.proxmoxEndpoint,
		// The proxmox topology's own Teleport VM is this Teleport, reached
		// as a real run reaches it: through its DNS record.
		TeleportAddr: s.resolveTeleport,
	})
}

// Apply overrides every endpoint and credential with the sandbox's, so that
// nothing reaches a real service whatever the file, environment or flags
// say, and scales the CLI's waits by the sandbox speed. Other settings (the
// cluster name, versions) are honoured.
func (s *Sandbox) Apply(cfg *config.Config) {
	set := func(name, v string) {
		if old := cfg.Value(name); old.Raw != "" && old.Raw != v && old.Source != config.FromDefault && old.Source != config.FromSandbox {
			s.mu.Lock()
			s.overridden = append(s.overridden, fmt.Sprintf("%s (%s)", name, old.Source))
			s.mu.Unlock()
		}
		cfg.Set(name, v, config.FromSandbox, "")
	}
	set(config.ScalewayAccessKey, scaleway.SandboxAccessKey)
	set(config.ScalewaySecretKey, scaleway.SandboxSecretKey)
	set(config.ScalewayProjectID, scaleway.SeedProjectID)
	set(config.ScalewayZone, scaleway.DefaultZone)
	set(config.ScalewayOfferID, scaleway.CloudInitOfferID)
	set(config.ScalewayOSID, scaleway.UbuntuOSID)
	if cfg.Get(config.Topology) == config.TopologyProxmox {
		// Its cluster registers with the Teleport VM the run creates: like
		// its users, the sandbox gives no Teleport of its own, so a run
		// proves that nothing asks for one.
		set(config.TeleportProxy, "")
		set(config.TeleportIdentity, "")
	} else {
		set(config.TeleportProxy, s.Teleport.Addr())
		set(config.TeleportIdentity, string(s.identity))
	}
	set(config.TeleportIdentityFile, "")
	set(config.CloudflareAPIToken, CloudflareToken)
	// A domain (the proxmox topology's names, teleport.<domain>, …) lives
	// in a zone of its own: the sandbox's Cloudflare serves one for it, and
	// the cluster's endpoint name moves there too, as it would for a user
	// whose zone is their domain. provision and destroy see the same zone.
	zone := DefaultDNSZone
	set(config.CloudflareZoneID, cloudflare.DefaultZoneID)
	if d := strings.TrimSuffix(strings.ToLower(cfg.Get(config.Domain)), "."); d != "" && d != DefaultDNSZone && !strings.HasSuffix(d, "."+DefaultDNSZone) {
		zone = d
		set(config.CloudflareZoneID, s.Cloudflare.AddZone(cloudflare.Zone{Name: d}).ID)
	}
	if !cfg.IsSet(config.ClusterName) {
		set(config.ClusterName, DefaultClusterName)
	}
	s.seedStale(cfg.Get(config.ClusterName))
	set(config.CloudflareDNSName, cfg.Get(config.ClusterName)+"."+zone)
	set(config.ImageFactoryURL, s.ImageFactory.URL())
	set(config.InfisicalURL, s.Infisical.URL())
	set(config.InfisicalClientID, InfisicalClientID)
	set(config.InfisicalClientSecret, InfisicalClientSecret)
	set(config.InfisicalProjectID, InfisicalProjectID)
	set(config.InfisicalEnvironment, "prod")
	set(config.InfisicalSecretPath, "/")
	set(config.EtcdBackupBucket, EtcdBackupBucket)
	set(config.EtcdBackupEndpoint, s.S3.URL())
	set(config.EtcdBackupRegion, "fr-par")
	// The proxmox topology's GitHub SSO: the OAuth app's credentials are
	// the sandbox's own; the organisation and team are honoured, so their
	// validation can be tried here.
	if !cfg.IsSet(config.GitHubOrg) {
		set(config.GitHubOrg, GitHubOrg)
	}
	if !cfg.IsSet(config.GitHubTeam) {
		set(config.GitHubTeam, GitHubTeam)
	}
	set(config.GitHubClientID, GitHubClientID)
	set(config.GitHubClientSecret, GitHubClientSecret)
	set(config.OperatorIP, "")
	set(config.SecretsOut, "") // credentials go to the emulated Infisical: nothing on disk
	scaleWaits(cfg, s.speed, set)
}

// Replaces lists the settings Apply sets to the sandbox's own values
// whatever the user gave (endpoints, credentials, where credentials go):
// a value given for one of them is never used, so it is listed as ignored
// rather than validated. Waits are scaled, not replaced: they are checked.
func Replaces() []string {
	return []string{
		config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID, config.ScalewayZone,
		config.ScalewayOfferID, config.ScalewayOSID, config.TeleportProxy, config.TeleportIdentity,
		config.TeleportIdentityFile, config.CloudflareAPIToken, config.CloudflareZoneID, config.CloudflareDNSName,
		config.InfisicalURL, config.InfisicalClientID, config.InfisicalClientSecret, config.InfisicalProjectID,
		config.InfisicalEnvironment, config.InfisicalSecretPath, config.OperatorIP, config.SecretsOut,
		config.GitHubClientID, config.GitHubClientSecret,
	}
}

// scaledWait names the settings that are waits and poll intervals: in a
// sandbox they run on its clock.
var scaledWait = map[string]bool{
	config.ServerTimeout: true, config.ServerPollInterval: true, config.TalosMaintenanceTimeout: true,
	config.TalosMaintenanceInterval: true, config.TalosMTLSTimeout: true, config.TalosMTLSInterval: true,
	config.ServicesTimeout: true, config.ServicesInterval: true, config.TeleportAgentTimeout: true,
	config.TeleportAgentPollInterval: true, config.KubernetesTimeout: true, config.KubernetesPoll: true,
	config.ProxmoxHostTimeout: true, config.ProxmoxHostInterval: true,
}

// timeoutSlack is the real time a default deadline gets on top of its
// scaled value in a sandbox.
const timeoutSlack = 5 * time.Second

// minPollInterval is the shortest a scaled poll interval gets: a 1 s
// probe at the 400x the test suites run at, which the suites' parallelism
// is sized for. The default 100x keeps every default interval as scaled.
const minPollInterval = 2500 * time.Microsecond

// scaleWaits divides every wait by speed; set records the new value.
func scaleWaits(cfg *config.Config, speed float64, set func(name, v string)) {
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	for _, name := range config.Names() {
		if !scaledWait[name] {
			continue
		}
		if d := cfg.Duration(name); d > 0 { // a malformed value stays, for validation to name its source
			v := scaled(d)
			if strings.HasSuffix(name, "-timeout") && cfg.Value(name).Source == config.FromDefault {
				// A default deadline gets slack in real time: the
				// emulators' TLS handshakes, key generation and HTTP
				// round trips do not speed up with the clock, and on a
				// busy machine a 45-minute delivery budget scaled to
				// 6.75 s leaves too little to tell a late server from
				// one that never comes. A deadline the user gave is
				// scaled exactly.
				v += timeoutSlack
			}
			if !strings.HasSuffix(name, "-timeout") {
				// A probe every few hundred microseconds only burns CPU
				// that the emulators need (a node that never comes is
				// probed for the whole scaled timeout).
				v = max(v, minPollInterval)
			}
			set(name, v.String())
		}
	}
	// Cleanup keeps a floor: a 429's Retry-After is whole seconds whatever
	// the clock, and cleanup is what keeps the bill at zero.
	if d := cfg.Duration(config.UndoTimeout); d > 0 {
		set(config.UndoTimeout, max(scaled(d), 30*time.Second).String())
	}
}

// seedStale registers, under teleport.kube-server=stale, a foreign agent
// with the cluster's name: what a destroyed cluster's agent leaves for its
// heartbeat TTL, or what another cluster of the same name keeps alive.
func (s *Sandbox) seedStale(cluster string) {
	if !s.faults.Peek(FaultKubeServer, emulator.Stale) {
		return
	}
	s.mu.Lock()
	done := s.staleSeeded[cluster]
	if s.staleSeeded == nil {
		s.staleSeeded = map[string]bool{}
	}
	s.staleSeeded[cluster] = true
	s.mu.Unlock()
	if !done {
		_ = s.Teleport.RegisterForeign(cluster, map[string]string{teleport.LabelRun: "an-earlier-run"})
	}
}

// FaultKubeServer is the fault point of registrations the run did not make.
const FaultKubeServer = teleport.FaultKubeServer

// Overridden lists the user's settings Apply replaced, with their sources,
// so that the user is told rather than surprised (e.g. --secrets-out).
func (s *Sandbox) Overridden() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.overridden...)
}

// Close stops every emulator.
func (s *Sandbox) Close() {
	s.mu.Lock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	nodes := s.nodes
	s.nodes = map[string]*talos.Node{}
	kubes := s.kubes
	s.kubes = map[string]*kubeemulator.Server{}
	// The hosts stay listed: their state outlives their API, for the
	// inventory read after a command closed its sandbox.
	hosts := s.hosts
	s.mu.Unlock()
	for _, h := range hosts {
		h.Close()
	}
	for _, n := range nodes {
		n.Close()
	}
	for _, k := range kubes {
		k.Close()
	}
	if s.S3 != nil {
		s.S3.Close()
	}
	for _, c := range []interface{ Close() }{s.Scaleway, s.Cloudflare, s.Infisical, s.IP} {
		if c != nil && !isNil(c) {
			c.Close()
		}
	}
	if s.Teleport != nil {
		s.Teleport.Close()
	}
	if s.ImageFactory != nil {
		s.ImageFactory.Close()
	}
}

func isNil(c interface{ Close() }) bool {
	switch v := c.(type) {
	case *scaleway.Emulator:
		return v == nil
	case *cloudflare.Emulator:
		return v == nil
	case *infisical.Emulator:
		return v == nil
	case *ipdetect.Emulator:
		return v == nil
	}
	return false
}

// Inventory is what is left in the emulators.
type Inventory struct {
	Servers     []map[string]any `json:"servers"`
	DNSRecords  []map[string]any `json:"dns_records"`
	Tokens      []map[string]any `json:"tokens"`
	KubeServers []map[string]any `json:"kube_servers"`
	Secrets     []map[string]any `json:"secrets"`
	// Kubernetes is what the clusters' API servers hold.
	Kubernetes kubeemulator.Inventory `json:"kubernetes"`
	// Backups are the objects in the emulated object storage (etcd
	// snapshots): data kept on purpose, not something left behind.
	Backups []map[string]any `json:"backups"`
	Proxmox ProxmoxInventory `json:"proxmox"`
}

// ProxmoxInventory is what the emulated Proxmox VE hosts hold.
type ProxmoxInventory struct {
	Hosts         []map[string]any `json:"hosts"`
	Bridges       []map[string]any `json:"bridges"`
	FirewallRules []map[string]any `json:"firewall_rules"`
	APITokens     []map[string]any `json:"api_tokens"`
	VMs           []map[string]any `json:"vms"`
	// TeleportNodes and TeleportApps are what registered with a Teleport
	// VM: the host as an SSH node, the Proxmox UI as an app.
	TeleportNodes []map[string]any `json:"teleport_nodes"`
	TeleportApps  []map[string]any `json:"teleport_apps"`
}

// Empty reports whether nothing is left anywhere.
func (i Inventory) Empty() bool {
	return len(i.Servers)+len(i.DNSRecords)+len(i.Tokens)+len(i.KubeServers)+len(i.Secrets)+len(i.Proxmox.Hosts)+
		len(i.Proxmox.TeleportNodes)+len(i.Proxmox.TeleportApps) == 0
}

// Inventory lists what every emulator holds. A Teleport token's name is the
// secret itself, so only a short prefix is shown.
func (s *Sandbox) Inventory() Inventory {
	inv := Inventory{Servers: []map[string]any{}, DNSRecords: []map[string]any{}, Tokens: []map[string]any{}, KubeServers: []map[string]any{}, Secrets: []map[string]any{},
		Proxmox: s.proxmoxInventory()}
	for _, srv := range s.Scaleway.Servers() {
		inv.Servers = append(inv.Servers, map[string]any{"id": srv.ID, "name": srv.Name, "status": srv.Status,
			"install_status": srv.InstallStatus, "ip": srv.IPv4, "tags": strings.Join(srv.Tags, ",")})
	}
	for _, r := range s.Cloudflare.Records() {
		inv.DNSRecords = append(inv.DNSRecords, map[string]any{"id": r.ID, "name": r.Name, "type": r.Type, "content": r.Content})
	}
	for _, t := range s.Teleport.Tokens() {
		inv.Tokens = append(inv.Tokens, map[string]any{"name": teleport.Redact(t.Name), "roles": strings.Join(t.Roles, ","),
			"expires": t.Expires.UTC().Format(time.RFC3339)})
	}
	for _, k := range s.Teleport.KubeServers() {
		inv.KubeServers = append(inv.KubeServers, map[string]any{"name": k})
	}
	inv.Kubernetes = s.kubeInventory()
	inv.Backups = []map[string]any{}
	for _, o := range s.S3.Objects() {
		inv.Backups = append(inv.Backups, map[string]any{"bucket": o.Bucket, "key": o.Key, "size": o.Size})
	}
	for _, sec := range s.Infisical.Secrets() {
		inv.Secrets = append(inv.Secrets, map[string]any{"project": sec.Project, "environment": sec.Environment, "path": sec.Path, "name": sec.Name})
	}
	return inv
}

// InventoryEvent is the inventory as the final progress event.
func (s *Sandbox) InventoryEvent() pipeline.Event { return InventoryEventOf(s.Inventory()) }

// InventoryEventOf renders an inventory (also a served sandbox's) as an event.
func InventoryEventOf(inv Inventory) pipeline.Event {
	msg := "sandbox inventory: nothing left"
	if !inv.Empty() {
		msg = "sandbox inventory: what the emulators hold now"
	}
	return pipeline.Event{Type: pipeline.EventInventory, Time: time.Now(), Phase: "sandbox", Message: msg, Fields: map[string]any{
		"servers": inv.Servers, "dns_records": inv.DNSRecords, "tokens": inv.Tokens,
		"kube_servers": inv.KubeServers, "secrets": inv.Secrets, "kubernetes": kubernetesFields(inv.Kubernetes),
		"proxmox": map[string]any{"hosts": inv.Proxmox.Hosts, "bridges": inv.Proxmox.Bridges,
			"firewall_rules": inv.Proxmox.FirewallRules, "api_tokens": inv.Proxmox.APITokens, "vms": inv.Proxmox.VMs,
			"teleport_nodes": inv.Proxmox.TeleportNodes, "teleport_apps": inv.Proxmox.TeleportApps},
	}}
}

// kubernetesFields is the cluster's inventory as event fields: the same
// JSON as kubeemulator.Inventory, and a readable block for people.
func kubernetesFields(k kubeemulator.Inventory) map[string]any {
	nodes := make([]map[string]any, 0, len(k.Nodes))
	for _, n := range k.Nodes {
		nodes = append(nodes, map[string]any{"name": n.Name, "ready": n.Ready})
	}
	f := map[string]any{"nodes": nodes, "objects": append([]string{}, k.Objects...)}
	if k.DefaultStorageClass != "" {
		f["default_storage_class"] = k.DefaultStorageClass
	}
	return f
}

// proxmoxInventory lists every emulated host's state.
func (s *Sandbox) proxmoxInventory() ProxmoxInventory {
	inv := ProxmoxInventory{Hosts: []map[string]any{}, Bridges: []map[string]any{}, FirewallRules: []map[string]any{},
		APITokens: []map[string]any{}, VMs: []map[string]any{}, TeleportNodes: []map[string]any{}, TeleportApps: []map[string]any{}}
	nodes, apps := s.Teleport.NodesAndApps()
	for _, n := range nodes {
		inv.TeleportNodes = append(inv.TeleportNodes, map[string]any{"hostname": n})
	}
	for _, a := range apps {
		inv.TeleportApps = append(inv.TeleportApps, map[string]any{"name": a})
	}
	s.mu.Lock()
	ips := make([]string, 0, len(s.hosts))
	for ip := range s.hosts {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	hosts := make([]*pveemu.Emulator, len(ips))
	for i, ip := range ips {
		hosts[i] = s.hosts[ip]
	}
	s.mu.Unlock()
	for i, h := range hosts {
		snap := h.Snapshot()
		inv.Hosts = append(inv.Hosts, map[string]any{"node": snap.Node, "version": snap.Version, "ip": ips[i],
			"firewall": map[bool]string{true: "enabled", false: "disabled"}[snap.FirewallEnabled], "policy_in": snap.PolicyIn})
		for _, b := range snap.Bridges {
			inv.Bridges = append(inv.Bridges, map[string]any{"node": snap.Node, "iface": b.Iface, "cidr": b.CIDR})
		}
		for _, r := range snap.Rules {
			rule := map[string]any{"scope": r.Scope, "action": r.Action, "source": r.Source, "dport": r.Dport, "comment": r.Comment}
			if r.Iface != "" {
				rule["iface"] = r.Iface
			}
			inv.FirewallRules = append(inv.FirewallRules, rule)
		}
		for _, t := range snap.Tokens {
			inv.APITokens = append(inv.APITokens, map[string]any{"id": t})
		}
		inv.VMs = append(inv.VMs, proxmoxVMs(snap)...)
	}
	return inv
}

// FaultPoint is one place --sandbox-fault can hit.
type FaultPoint struct {
	Point, What string
	// Special lists the special kinds (emulator.SpecialKinds) this point
	// accepts besides the general ones, with what each does here.
	Special map[emulator.Kind]string
	// OnlySpecial points accept no general kind: they exist for one
	// behaviour of the real system.
	OnlySpecial bool
}

// Accepts reports whether the point takes kind k.
func (p FaultPoint) Accepts(k emulator.Kind) bool {
	if _, ok := p.Special[k]; ok {
		return true
	}
	return !p.OnlySpecial && slices.Contains(emulator.Kinds, k)
}

// FaultPoints lists every point --sandbox-fault accepts, with what it hits.
var FaultPoints = []FaultPoint{
	{Point: "scaleway.list-ssh-keys", What: "IAM list of the project's SSH keys"},
	{Point: "scaleway.get-catalogue", What: "offer and OS look-ups before ordering"},
	{Point: "scaleway.create-server", What: "the CreateServer call",
		Special: map[emulator.Kind]string{emulator.Lost: "the server is ordered, but the answer never comes back: the request stays silent until the CLI gives up"}},
	{Point: "scaleway.get-server", What: "looking up one server (destroy --server-id, the wait until a deleted server is gone)"},
	{Point: "scaleway.install", What: "the OS install (error: install fails; never: stays installing)"},
	{Point: "scaleway.delete-server", What: "DeleteServer during undo or destroy"},
	{Point: "scaleway.update-server", What: "setting or overwriting a server's user data (talos-config-delivery install)"},
	{Point: "scaleway.install-server", What: "installing a server ordered without an OS (talos-config-delivery install)"},
	{Point: "scaleway.list-servers", What: "listing the cluster's servers by tag (phase 0's no-second-cluster check, phase 2's status polls — one list for every server, destroy)"},
	{Point: "cloudflare.list-records", What: "DNS record look-ups"},
	{Point: "cloudflare.upsert-record", What: "creating or updating the A record",
		Special: map[emulator.Kind]string{emulator.Lost: "the record is created or updated, but the answer never comes back: the request stays silent until the CLI gives up"}},
	{Point: "cloudflare.delete-record", What: "deleting or restoring the record"},
	{Point: "cloudflare.permissions", What: "what the API token may do in the zone", OnlySpecial: true,
		Special: map[emulator.Kind]string{emulator.Deny: "the token is read-only: no #dns_records:edit, writes answer 403"}},
	{Point: "infisical.login", What: "Universal Auth login"},
	{Point: "infisical.list-secrets", What: "reading settings"},
	{Point: "infisical.write-secrets", What: "storing the cluster's credentials"},
	{Point: "infisical.delete-secrets", What: "removing stored credentials on undo"},
	{Point: "infisical.permissions", What: "what the machine identity may do in the project", OnlySpecial: true,
		Special: map[emulator.Kind]string{emulator.Deny: "the identity may read settings but not create, edit or delete secrets or folders: writes answer 403 PermissionDenied"}},
	{Point: "ipdetect", What: "public-IP detection"},
	{Point: "teleport.connect", What: "connecting to Teleport (Ping)"},
	{Point: "teleport.create-token", What: "minting the join token"},
	{Point: "teleport.delete-token", What: "deleting the join token"},
	{Point: "teleport.list-kube", What: "listing/watching kube servers"},
	{Point: "teleport.agent", What: "the kube agent joining (never: it never registers)"},
	{Point: "teleport.permissions", What: "the roles of the Teleport identity", OnlySpecial: true,
		Special: map[emulator.Kind]string{emulator.Deny: "the identity may read but not create or delete join tokens, and has no Kubernetes access"}},
	{Point: "teleport.token", What: "the kube agent's join token", OnlySpecial: true,
		Special: map[emulator.Kind]string{emulator.Expire: "the run's first join token (@N: the first N) expires a minute after it is minted, before its agent starts, as after a delivery slower than its TTL; the agent is refused until it gets a new one"}},
	{Point: teleport.FaultKubeProxy, What: "Teleport's Kubernetes access, the day-two commands' inside route to a locked-down cluster's Talos API",
		Special: map[emulator.Kind]string{emulator.Deny: "the proxy refuses Kubernetes access (403), as for a role without kubernetes_groups or kubernetes_users"}},
	{Point: teleport.FaultKubeGroups, What: "the Kubernetes groups the identity's Teleport role maps to", OnlySpecial: true,
		Special: map[emulator.Kind]string{emulator.Deny: "the role maps Kubernetes access to group \"" + teleport.UnboundKubeGroup + "\", which no RBAC binding in the cluster names: Teleport lets the day-two commands' requests through and the cluster's RBAC refuses them (403)"}},
	{Point: "teleport.kube-server", What: "kube servers registered under the cluster's name", OnlySpecial: true,
		Special: map[emulator.Kind]string{emulator.Stale: "another agent (an earlier cluster's, or one elsewhere) is registered under the name and keeps heartbeating"}},
	{Point: "talos.maintenance", What: "reaching maintenance mode (never: the pivot never finishes)",
		Special: map[emulator.Kind]string{
			emulator.Linger: "after the apply the maintenance API keeps answering for many probe intervals",
			emulator.Hijack: "a stranger applies a config of their own the moment the node enters maintenance mode",
		}},
	{Point: "talos.apply", What: "applying the config in maintenance mode"},
	{Point: "talos.reboot", What: "the reboot into the configuration (never: it never comes back)"},
	{Point: "talos.bootstrap", What: "the etcd bootstrap"},
	{Point: "talos.services", What: "service health (never: etcd never healthy)"},
	{Point: "talos.kubelet", What: "the kubelet registering its Node (never: Talos calls the kubelet healthy, but the Node never appears in Kubernetes; other kinds do nothing)"},
	{Point: "talos.kubeconfig", What: "downloading the admin kubeconfig"},
	{Point: "imagefactory.schematics", What: "creating or reading an Image Factory schematic (talos-config-delivery install; the proxmox topology's Talos VM image)"},
	{Point: "imagefactory.versions", What: "listing Talos versions and extensions before the proxmox topology's Talos VM image is downloaded"},
	{Point: "imagefactory.image", What: "the proxmox topology's Talos VM image, checked before the host downloads it (never: the build never finishes)"},
	{Point: "teleport.sso", What: "the proxmox topology's Teleport VM: creating its GitHub connector, deleting the provisioner user at the end"},
	{Point: "teleport.ssh-node", What: "the proxmox host's Teleport SSH service joining the Teleport VM (never: the host never registers as a node; other kinds refuse the join, and the agent tries again)"},
	{Point: "teleport.app", What: "the Teleport VM's app service registering the Proxmox UI (never: the app never appears; other kinds refuse it, and the service tries again)"},
	{Point: "talos.lockdown", What: "re-applying the config without the operator rules"},
	{Point: "talos.etcd-snapshot", What: "Talos's EtcdSnapshot (etcd snapshot)"},
	{Point: "talos.upgrade", What: "Talos's Upgrade (upgrade; never: acknowledged, but the node never reboots into the new version)"},
	{Point: "s3.put-object", What: "uploading an etcd snapshot to object storage"},
	{Point: "s3.get-object", What: "downloading an etcd snapshot"},
	{Point: "s3.list-objects", What: "listing etcd snapshots (finding the latest)"},
	{Point: kubeemulator.FaultCNI, What: "the cluster's pod network (never: the CNI runs but no node ever gets Ready; other kinds do nothing)"},
	{Point: kubeemulator.FaultFlux, What: "the FluxInstance (never: it never becomes Ready; other kinds do nothing; needs flux-git-url)"},
}

func init() {
	for _, fp := range pveemu.FaultPoints {
		FaultPoints = append(FaultPoints, FaultPoint{Point: fp.Point, What: fp.What})
	}
}

// ParseFaults parses --sandbox-fault values and rejects unknown points.
func ParseFaults(specs []string) (map[string]emulator.Fault, error) {
	known := map[string]bool{}
	names := make([]string, 0, len(FaultPoints))
	for _, p := range FaultPoints {
		known[p.Point] = true
		names = append(names, p.Point)
	}
	sort.Strings(names)
	out := map[string]emulator.Fault{}
	for _, spec := range specs {
		point, f, err := emulator.ParseFault(spec)
		if err != nil {
			return nil, err
		}
		if !known[point] {
			return nil, fmt.Errorf("fault %q: unknown fault point %q (see --sandbox-fault list)", spec, point)
		}
		if fp := faultPoint(point); !fp.Accepts(f.Kind) {
			return nil, fmt.Errorf("fault %q: %s does not take kind %q (it takes %s; see --sandbox-fault list)", spec, point, f.Kind, strings.Join(fp.KindNames(), ", "))
		}
		out[point] = f
	}
	return out, nil
}

func faultPoint(name string) FaultPoint {
	for _, p := range FaultPoints {
		if p.Point == name {
			return p
		}
	}
	return FaultPoint{}
}

// KindNames lists the kinds the point accepts, general ones first.
func (p FaultPoint) KindNames() []string {
	var out []string
	for _, k := range append(append([]emulator.Kind(nil), emulator.Kinds...), emulator.SpecialKinds...) {
		if p.Accepts(k) {
			out = append(out, string(k))
		}
	}
	return out
}
