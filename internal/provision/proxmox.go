package provision

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/democraticcsi"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// The proxmox topology runs the cluster as VMs on one Proxmox VE host: an
// Elastic Metal server ordered with Debian 12 and user data that turns it
// into Proxmox VE on first boot (internal/proxmoxhost). This file is the
// host: ordered, waited for, then set up through its API (the automation
// user and token, the internal bridge, the firewall) and locked down. The
// VMs on it come next; until then a proxmox run ends with the host ready.
//
// Why Debian and not Scaleway's own Proxmox VE image: that image comes with
// a panel password Scaleway sets and, as far as its catalogue says, no
// cloud-init, so every step of the design document's phase 1 would remain a
// manual one. Phase 0 checks the chosen OS supports cloud-init.

// Names the topology gives things on the host, so that a later run (or
// status) finds them without local state.
const (
	ProxmoxUser        = "rawkode-cloud@pve"
	ProxmoxTokenID     = "provision"
	ProxmoxBridge      = "vmbr1"
	proxmoxTempComment = "rawkode-cloud temporary: operator API access, removed at lockdown"
	proxmoxVMBR1Rule   = "rawkode-cloud: everything from the internal network vmbr1"
	// ProxmoxOperatorIPSet is the datacenter IP set the host's operator-only
	// forwards match on (as the kernel ipset PVEFW-0-operator-v4): the
	// operator's /32 is in it from the firewall step to the lockdown.
	ProxmoxOperatorIPSet = "operator"
	// ProxmoxRole is what the automation user holds on /. Administrator,
	// not PVEAdmin: network and firewall changes need Sys.Modify, which
	// PVEAdmin lacks (the design document's own note).
	ProxmoxRole = "Administrator"
)

// Secrets the proxmox topology keeps.
const (
	SecretProxmoxToken = "PROXMOX_API_TOKEN"
	// SecretProxmoxRoot is root@pam's password after rotation: break-glass
	// access through the Scaleway out-of-band console, nothing else.
	SecretProxmoxRoot = "PROXMOX_ROOT_PASSWORD"
)

// ProxmoxAPI is what the topology uses of a Proxmox VE node.
type ProxmoxAPI = proxmox.API

// proxmoxHost is the proxmox topology's host part.
type proxmoxHost struct {
	m     *metal // ordering and the pre-order checks are Elastic Metal's
	p     *Provisioner
	cfg   *config.Config
	node  string
	cidr  netip.Prefix // vmbr1's address: the host's .1 in the internal network
	certs struct{ cert, key []byte }

	server       scaleway.Server
	rootPassword string
	api          ProxmoxAPI
	version      string
	lockedDown   bool

	// The VMs (proxmox_vms.go).
	vmInput    proxmoxvms.Input
	build      proxmoxvms.Build
	vms        []proxmoxvms.VM
	vmTeleport *teleport.Client

	// storageKey is the storage driver's SSH key (proxmox_storage.go).
	storageKey democraticcsi.KeyPair
	// nodeToken names the host's SSH node join token, chosen in phase 1
	// and created on the Teleport VM later (proxmox_teleport.go).
	nodeToken       string
	nodeTokenMinted bool
}

func newProxmoxHost(p *Provisioner, m *metal) *proxmoxHost {
	return &proxmoxHost{m: m, p: p, cfg: p.cfg, node: p.clusterName(), cidr: netip.MustParsePrefix("10.10.0.1/24")}
}

// hostOptions are the user data settings; shared with `plan --render`.
func hostOptions(cfg *config.Config) proxmoxhost.Options {
	return proxmoxhost.Options{
		Hostname: cfg.Get(config.ClusterName),
		Domain:   cfg.Get(config.Domain),
		// Scaleway's partitioning leaves the 4th partition of each NVMe
		// disk to the pool (see README, "The proxmox topology").
		ZFSDevices:       []string{"/dev/nvme0n1p4", "/dev/nvme1n1p4"},
		OperatorIPSet:    ProxmoxOperatorIPSet,
		OperatorForwards: OperatorForwards(ProxmoxLayout()),
	}
}

// HostUserData renders the host's user data for plan: with a placeholder
// password hash, as plan must not mint credentials, and the public half of
// the storage key plan made for its render.
func HostUserData(cfg *config.Config, storageKey democraticcsi.KeyPair) ([]byte, error) {
	opts, err := withStorageKey(hostOptions(cfg), storageKey)
	if err != nil {
		return nil, err
	}
	// A name no Teleport knows: provision chooses the run's own.
	if opts, err = withHostAgent(opts, cfg.Get(config.ClusterName), strings.Repeat("0", 32)); err != nil {
		return nil, err
	}
	opts.RootPasswordHash = "$2b$10$" + strings.Repeat("x", 53)
	return proxmoxhost.Render(opts)
}

// Check is phase 0's share: the Elastic Metal checks (the domain is
// required by extraChecks).
func (h *proxmoxHost) Check(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	return h.m.Check(ctx, r, nodes)
}

// Create is phase 1: order the host with its first-boot user data.
func (h *proxmoxHost) Create(ctx context.Context, r *pipeline.Run, _ []*Node) error {
	pw, err := randomPassword()
	if err != nil {
		return err
	}
	h.p.opts.Redactor.Add(pw)
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash the host's root password: %w", err)
	}
	// The storage driver's key: its public half is authorized on the host
	// by the user data, its private half reaches the cluster in phase 4.
	if h.storageKey, err = NewStorageKey(h.node); err != nil {
		return err
	}
	h.p.opts.Redactor.Add(string(h.storageKey.PrivateKey))
	opts, err := withStorageKey(hostOptions(h.cfg), h.storageKey)
	if err != nil {
		return err
	}
	// The host's Teleport SSH service: its token is created on the
	// Teleport VM once that exists.
	if h.nodeToken, err = teleport.NewTokenName(); err != nil {
		return fmt.Errorf("choose the host's join token: %w", err)
	}
	h.p.opts.Redactor.Add(h.nodeToken)
	if opts, err = withHostAgent(opts, h.node, h.nodeToken); err != nil {
		return err
	}
	opts.RootPasswordHash = string(hash)
	if h.certs.cert, h.certs.key, err = proxmoxhost.NewCertificate(h.node + "." + h.cfg.Get(config.Domain)); err != nil {
		return fmt.Errorf("make the host's API certificate: %w", err)
	}
	h.p.opts.Redactor.Add(string(h.certs.key))
	opts.TLSCert, opts.TLSKey = h.certs.cert, h.certs.key
	userData, err := proxmoxhost.Render(opts)
	if err != nil {
		return err
	}
	h.rootPassword = pw
	srv, err := h.m.orderServer(ctx, r, scaleway.ServerSpec{
		Name:        h.node,
		Description: "Proxmox VE host of cluster " + h.node + ", managed by rawkode-cloud",
		OfferID:     h.cfg.Get(config.ScalewayOfferID),
		OSID:        h.cfg.Get(config.ScalewayOSID),
		Hostname:    h.node,
		SSHKeyIDs:   h.m.sshKeys,
		UserData:    userData,
		// The domain tag lets destroy find teleport./proxmox./*.apps.<domain>
		// from the server alone, without the operator repeating --domain.
		Tags: append(scaleway.ClusterTags(h.node), TopologyProxmoxTag, "domain="+strings.TrimSuffix(h.cfg.Get(config.Domain), ".")),
	})
	if err != nil {
		return err
	}
	h.server = *srv
	for _, n := range h.p.nodes {
		n.Machine = Machine{ID: srv.ID, Zone: srv.Zone}
	}
	return nil
}

func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Reach is phase 2: the host delivered and installed, Proxmox VE answering,
// and the host set up through its API.
func (h *proxmoxHost) Reach(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	if err := h.waitInstalled(ctx, r, nodes); err != nil {
		return err
	}
	// The public names need only the host's address.
	h.p.ahead(r, h.p.dnsRecords)
	root, err := h.login(ctx, r)
	if err != nil {
		return err
	}
	// The user data carries the API certificate's private key and root's
	// password hash, and Scaleway serves it back on every GET of the
	// server: once the first boot consumed it (root can log in), it goes.
	if err := h.m.scw.ClearUserData(ctx, h.server.ID); err != nil {
		return fmt.Errorf("clear the host's user data (it holds the API certificate's key): %w", err)
	}
	r.Info("the host's user data is overwritten: its first boot is done with it", map[string]any{"server_id": h.server.ID})
	if err := h.credentials(ctx, r, root); err != nil {
		return err
	}
	if err := h.network(ctx, r); err != nil {
		return err
	}
	if err := h.firewall(ctx, r); err != nil {
		return err
	}
	if err := h.storage(ctx, r); err != nil {
		return err
	}
	if err := h.rotateRoot(ctx, r, root); err != nil {
		return err
	}
	// From here on the Talos VMs are reached through the host's
	// operator-only forwards.
	f := &h.p.opts.Factory
	f.TalosDialer = forwardDialer(h.server.IPv4, OperatorForwards(ProxmoxLayout()), f.TalosDialer)
	h.p.talos = f.Talos(h.cfg)
	return h.createVMs(ctx, r, nodes)
}

func (h *proxmoxHost) waitInstalled(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	id := h.server.ID
	timeout, every := h.cfg.Duration(config.ServerTimeout), h.cfg.Duration(config.ServerPollInterval)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := r.Wait("server "+id+" delivery and OS install", timeout, every)
	srv, err := h.m.scw.WaitReady(sctx, id, w.Options())
	if err != nil {
		return fmt.Errorf("wait for server %s: %w", id, err)
	}
	w.Done()
	h.server.IPv4 = srv.IPv4
	// The nodes are VMs on the internal network: their addresses are the
	// plan's, and nothing of theirs is installed until the host is.
	l := ProxmoxLayout()
	for i, n := range nodes {
		n.Address.Keep(l.Nodes[i].String())
		n.Installed.Keep(struct{}{})
	}
	r.Info("Debian installed; it now turns itself into Proxmox VE", map[string]any{"server_id": id, "ip": srv.IPv4})
	return nil
}

// login waits for Proxmox VE to answer with the root password the user data
// set: the end of the host's first-boot setup.
func (h *proxmoxHost) login(ctx context.Context, r *pipeline.Run) (ProxmoxAPI, error) {
	timeout := h.cfg.Duration(config.ProxmoxHostTimeout)
	w := r.Wait("Proxmox VE on "+h.server.IPv4+" to accept the root login", timeout, h.cfg.Duration(config.ProxmoxHostInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	var api ProxmoxAPI
	err := wait.Until(wctx, "Proxmox VE root login on "+h.server.IPv4, w.Options(), func(ctx context.Context) (bool, string, error) {
		c, err := h.p.opts.Factory.Proxmox(ctx, h.server.IPv4, h.node, h.certs.cert, proxmox.Config{Username: "root@pam", Password: h.rootPassword})
		if err != nil {
			var ae *proxmox.APIError
			if errors.As(err, &ae) && ae.StatusCode == 401 {
				// Not yet ours: the first boot has not set the password.
				return false, "login refused", nil
			}
			return false, "not answering", nil
		}
		api = c
		return true, "logged in", nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for Proxmox VE on %s: %w", h.server.IPv4, err)
	}
	w.Done()
	v, err := api.Version(ctx)
	if err != nil {
		return nil, err
	}
	h.version = v.Version
	r.Info("Proxmox VE answers", map[string]any{"ip": h.server.IPv4, "version": v.Version})
	return api, nil
}

// credentials creates the automation user and its token, keeps the token
// and continues with it: root's password is only used to get here.
func (h *proxmoxHost) credentials(ctx context.Context, r *pipeline.Run, root ProxmoxAPI) error {
	if err := root.EnsureUser(ctx, ProxmoxUser, "rawkode-cloud automation"); err != nil {
		return err
	}
	if err := root.Grant(ctx, "/", ProxmoxRole, ProxmoxUser); err != nil {
		return err
	}
	secret, err := root.CreateToken(ctx, ProxmoxUser, ProxmoxTokenID, "rawkode-cloud provisioning")
	if err != nil {
		return err
	}
	h.p.opts.Redactor.Add(secret)
	tokenID := ProxmoxUser + "!" + ProxmoxTokenID
	if err := h.p.keep(ctx, r, map[string][]byte{SecretProxmoxToken: []byte(tokenID + "=" + secret)}); err != nil {
		return err
	}
	api, err := h.p.opts.Factory.Proxmox(ctx, h.server.IPv4, h.node, h.certs.cert, proxmox.Config{TokenID: tokenID, TokenSecret: secret})
	if err != nil {
		return fmt.Errorf("use the new API token: %w", err)
	}
	h.api = api
	r.Info("API user and token created", map[string]any{"user": ProxmoxUser, "token": tokenID, "role": ProxmoxRole + " on /"})
	return nil
}

// network creates vmbr1, applies it, and checks it from the API.
func (h *proxmoxHost) network(ctx context.Context, r *pipeline.Run) error {
	b := proxmox.Bridge{Iface: ProxmoxBridge, CIDR: h.cidr.String(), Comment: "rawkode-cloud internal network"}
	if err := h.api.CreateBridge(ctx, b); err != nil {
		return err
	}
	if err := h.api.ApplyNetwork(ctx); err != nil {
		return err
	}
	got, err := h.api.Interface(ctx, ProxmoxBridge)
	if err != nil {
		return err
	}
	if !got.Active || got.CIDR != b.CIDR {
		return fmt.Errorf("bridge %s after apply: active=%v address %q, want %s", ProxmoxBridge, got.Active, got.CIDR, b.CIDR)
	}
	r.Info("internal bridge up", map[string]any{"iface": ProxmoxBridge, "cidr": b.CIDR})
	return nil
}

// firewall turns the firewall on without locking us out: the operator's
// temporary rule and the vmbr1 rule exist before the input policy is DROP
// (the design document's troubleshooting: the other order loses the API).
func (h *proxmoxHost) firewall(ctx context.Context, r *pipeline.Run) error {
	op := h.p.operatorIP
	if !op.IsValid() {
		return errors.New("the operator's address is unknown: no temporary firewall rule can be made")
	}
	cluster := proxmox.Scope{}
	if err := h.api.AddRule(ctx, cluster, proxmox.Rule{Type: "in", Action: "ACCEPT", Proto: "tcp", Dport: "8006",
		Source: netip.PrefixFrom(op, 32).String(), Comment: proxmoxTempComment, Enable: true}); err != nil {
		return err
	}
	if err := h.api.AddRule(ctx, proxmox.Scope{Node: h.node}, proxmox.Rule{Type: "in", Action: "ACCEPT", Iface: ProxmoxBridge,
		Comment: proxmoxVMBR1Rule, Enable: true}); err != nil {
		return err
	}
	if err := h.operatorIPSet(ctx, r, op); err != nil {
		return err
	}
	if err := h.api.SetFirewallOptions(ctx, cluster, proxmox.FirewallOptions{Enable: true, PolicyIn: "DROP"}); err != nil {
		return err
	}
	o, err := h.api.FirewallOptions(ctx, cluster)
	if err != nil {
		return err
	}
	if !o.Enable || o.PolicyIn != "DROP" {
		return fmt.Errorf("datacenter firewall after enabling: enable=%v policy_in=%s", o.Enable, o.PolicyIn)
	}
	// Still in: the rule works.
	if _, err := h.api.Version(ctx); err != nil {
		return fmt.Errorf("the API stopped answering once the firewall was on: %w", err)
	}
	r.Info("firewall on: input DROP, vmbr1 and the operator's API access allowed", map[string]any{"operator_ip": op.String()})
	return nil
}

// operatorIPSet opens the host's operator-only forwards to the operator:
// their DNAT (the host's user data) matches the kernel ipset pve-firewall
// makes of this datacenter IP set, so the operator's /32 goes in through
// the API, with its removal pushed right after. The set itself stays for
// good: the host's rules name it, and pve-firewall could not destroy a set
// in use.
func (h *proxmoxHost) operatorIPSet(ctx context.Context, r *pipeline.Run, op netip.Addr) error {
	if err := h.api.EnsureIPSet(ctx, ProxmoxOperatorIPSet, "rawkode-cloud: sources the host's operator-only forwards admit"); err != nil {
		return err
	}
	entry := netip.PrefixFrom(op, 32)
	err := h.api.AddToIPSet(ctx, ProxmoxOperatorIPSet, entry, proxmoxTempComment)
	// Pushed whatever the answer: an add whose answer was lost (or that
	// Ctrl-C cut off) may have opened the forwards all the same, and an
	// opening must never outlive the run. Removing an absent entry is a
	// no-op.
	r.Undo(pipeline.UndoStep{
		Resource: "operator address " + entry.String() + " in the Proxmox IP set " + ProxmoxOperatorIPSet,
		Command:  "pvesh delete /cluster/firewall/ipset/" + ProxmoxOperatorIPSet + "/" + op.String(),
		Do: func(ctx context.Context) error {
			return h.api.RemoveFromIPSet(ctx, ProxmoxOperatorIPSet, entry)
		},
	})
	if err != nil {
		return err
	}
	ports := []int{}
	for _, f := range OperatorForwards(ProxmoxLayout()) {
		ports = append(ports, f.Port)
	}
	r.Info("the host's operator-only forwards admit the operator", map[string]any{"ipset": ProxmoxOperatorIPSet,
		"kernel_ipset": proxmoxhost.KernelIPSet(ProxmoxOperatorIPSet), "operator_ip": op.String(), "ports": ports})
	return nil
}

// storage checks the content types the first boot set on local (and sets
// them through the API when they are missing).
func (h *proxmoxHost) storage(ctx context.Context, r *pipeline.Run) error {
	want := hostOptions(h.cfg).WithDefaults().LocalContent
	have, err := h.api.StorageContent(ctx, "local")
	if err != nil {
		return err
	}
	for _, c := range want {
		if !slices.Contains(have, c) {
			if err := h.api.SetStorageContent(ctx, "local", want); err != nil {
				return err
			}
			break
		}
	}
	r.Info("storage local holds disk images, ISOs and cloud-init drives", map[string]any{"content": strings.Join(want, ",")})
	return nil
}

// rotateRoot replaces the first-boot root password, which has travelled
// as a hash in the user data, with a new one kept as break-glass only. It
// is kept before it is set, so that it is never lost.
func (h *proxmoxHost) rotateRoot(ctx context.Context, r *pipeline.Run, root ProxmoxAPI) error {
	pw, err := randomPassword()
	if err != nil {
		return err
	}
	h.p.opts.Redactor.Add(pw)
	if err := h.p.keep(ctx, r, map[string][]byte{SecretProxmoxRoot: []byte(pw)}); err != nil {
		return err
	}
	if err := root.SetPassword(ctx, "root@pam", pw, h.rootPassword); err != nil {
		return err
	}
	h.rootPassword = ""
	r.Info("root password rotated; the new one is kept as break-glass only", map[string]any{"secret": SecretProxmoxRoot})
	return nil
}

// LockDown takes the operator out of the forwards' IP set and removes the
// temporary API rule, and proves from here that neither the forwards nor
// the API answer any more.
func (h *proxmoxHost) LockDown(ctx context.Context, r *pipeline.Run) error {
	entry := netip.PrefixFrom(h.p.operatorIP, 32)
	if err := h.api.RemoveFromIPSet(ctx, ProxmoxOperatorIPSet, entry); err != nil {
		return fmt.Errorf("lockdown: %w", err)
	}
	if err := h.forwardsClosed(ctx, r); err != nil {
		return err
	}
	if err := h.api.DeleteRule(ctx, proxmox.Scope{}, proxmoxTempComment); err != nil && !errors.Is(err, proxmox.ErrNotFound) {
		return fmt.Errorf("lockdown: %w", err)
	}
	probe := lockdownProbe
	if t := h.p.opts.Factory.AttemptTimeout; t > 0 && t < probe {
		probe = t
	}
	pctx, cancel := context.WithTimeout(ctx, probe)
	defer cancel()
	if h.api.Reachable(pctx) {
		return fmt.Errorf("lockdown of %s did not take: the Proxmox API (TCP 8006) still answers here", h.server.IPv4)
	}
	h.lockedDown = true
	r.Info("locked down: the Proxmox API no longer answers from the internet", map[string]any{"ip": h.server.IPv4, "ports_closed": []int{8006}})
	return nil
}

// lockdownProbe is how long a closed port may take to prove it is closed.
const lockdownProbe = 5 * time.Second

// forwardsSync bounds how long the host may take to stop forwarding once
// the operator left the IP set: pve-firewall applies cluster.fw changes
// in its update loop, every 10 seconds.
const forwardsSync = time.Minute

// forwardsClosed waits until none of the host's operator-only forwards
// answers from here.
func (h *proxmoxHost) forwardsClosed(ctx context.Context, r *pipeline.Run) error {
	var ports []int
	for _, f := range OperatorForwards(ProxmoxLayout()) {
		ports = append(ports, f.Port)
	}
	limit := forwardsSync
	if s := h.p.opts.Factory.TimeScale; s > 0 {
		limit = time.Duration(float64(limit)/s) + h.p.opts.Factory.TimeSlack
	}
	w := r.Wait("the host's operator-only forwards to close", limit, h.cfg.Duration(config.ProxmoxHostInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	err := wait.Until(wctx, "operator-only forwards on "+h.server.IPv4+" closed", w.Options(), func(ctx context.Context) (bool, string, error) {
		open, err := h.p.talos.ProbePorts(ctx, h.server.IPv4, ports)
		if err != nil {
			return false, err.Error(), nil
		}
		var still []string
		for _, p := range ports {
			if open[p] {
				still = append(still, fmt.Sprint(p))
			}
		}
		if len(still) > 0 {
			return false, "still open: TCP " + strings.Join(still, ", "), nil
		}
		return true, "closed", nil
	})
	if err != nil {
		return fmt.Errorf("lockdown of %s did not take: %w", h.server.IPv4, err)
	}
	w.Done()
	r.Info("locked down: the host's operator-only forwards no longer answer", map[string]any{"ip": h.server.IPv4, "ports_closed": ports})
	return nil
}

// prepareHost is the proxmox topology's phase 2: the host set up, the VMs
// on it created, and the Talos nodes answering over mTLS.
func (p *Provisioner) prepareHost(ctx context.Context, r *pipeline.Run) error {
	return p.topo.Reach(ctx, r, p.nodes)
}
