package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// The proxmox topology through the command line: the emulated host comes
// up, its five VMs run, the three Talos VMs are a cluster of Ready nodes,
// the inventory shows it all, no temporary firewall rule survives the
// lockdown, and the host's API really is closed to the operator.
func TestProvisionProxmoxHostThroughTheCLI(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	var sb *sandbox.Sandbox
	var mu sync.Mutex
	// The sandbox closes with the command: the host's firewall is judged
	// when the inventory is printed, just before.
	judged, openTo, userData, inSet, setKept := false, false, "", true, false
	snoop := &lineWriter{w: &out, onLine: func(line string) {
		if !strings.Contains(line, `"type":"inventory"`) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, srv := range sb.Inventory().Servers {
			if h := sb.Host(srv["ip"].(string)); h != nil {
				judged = true
				openTo = h.Reachable(sandbox.OperatorIP, 8006) || h.Reachable(netip.MustParseAddr("192.0.2.1"), 8006)
				inSet = h.IPSetAdmits("operator", sandbox.OperatorIP)
				entries, ok := h.Snapshot().IPSets["operator"]
				setKept = ok && len(entries) == 0
				userData = string(sb.Scaleway.UserData(srv["id"].(string)))
			}
		}
	}}
	env := cli.Env{In: strings.NewReader(""), Out: snoop, Err: &errOut,
		LookupEnv: func(string) (string, bool) { return "", false }, Home: t.TempDir(),
		OnSandbox: func(s *sandbox.Sandbox) { mu.Lock(); sb = s; mu.Unlock() }}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Execute(ctx, []string{"provision", "--sandbox", "--sandbox-speed", "400", "--output", "json",
		"--topology", "proxmox", "--domain", "example.com", "--cluster-name", "pve-e2e"}, env)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nout:\n%s", code, errOut.String(), out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var inv struct {
		Type       string `json:"type"`
		Secrets    []map[string]any
		Servers    []map[string]any
		Tokens     []map[string]any `json:"tokens"`
		Kubernetes struct {
			Nodes []struct {
				Name  string `json:"name"`
				Ready bool   `json:"ready"`
			} `json:"nodes"`
			Objects             []string `json:"objects"`
			DefaultStorageClass string   `json:"default_storage_class"`
		} `json:"kubernetes"`
		Proxmox struct {
			Hosts         []map[string]any `json:"hosts"`
			Bridges       []map[string]any `json:"bridges"`
			FirewallRules []map[string]any `json:"firewall_rules"`
			APITokens     []map[string]any `json:"api_tokens"`
			VMs           []map[string]any `json:"vms"`
			TeleportNodes []map[string]any `json:"teleport_nodes"`
			TeleportApps  []map[string]any `json:"teleport_apps"`
		} `json:"proxmox"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &inv); err != nil || inv.Type != "inventory" {
		t.Fatalf("last line is not the inventory: %v %s", err, lines[len(lines)-1])
	}
	p := inv.Proxmox
	if len(p.Hosts) != 1 || p.Hosts[0]["node"] != "pve-e2e" || p.Hosts[0]["policy_in"] != "DROP" || p.Hosts[0]["firewall"] != "enabled" {
		t.Errorf("hosts: %v", p.Hosts)
	}
	hasBridge := false
	for _, b := range p.Bridges {
		hasBridge = hasBridge || (b["iface"] == "vmbr1" && b["cidr"] == "10.10.0.1/24")
	}
	if !hasBridge {
		t.Errorf("no vmbr1 10.10.0.1/24 in %v", p.Bridges)
	}
	for _, r := range p.FirewallRules {
		if strings.Contains(r["comment"].(string), "temporary") || r["source"] != "" {
			t.Errorf("a temporary rule survived the lockdown: %v", r)
		}
	}
	// Phase 7: the host is an SSH node and the Proxmox UI an app of the
	// Teleport VM, each verified before the lockdown; the host's join
	// token is gone once used.
	if len(p.TeleportNodes) != 1 || p.TeleportNodes[0]["hostname"] != "pve-e2e" {
		t.Errorf("teleport nodes: %v", p.TeleportNodes)
	}
	if len(p.TeleportApps) != 1 || p.TeleportApps[0]["name"] != "proxmox" {
		t.Errorf("teleport apps: %v", p.TeleportApps)
	}
	// The cluster registered with the Teleport VM, not teleport-proxy: the
	// configs name it, and the sandbox's agent on a Talos VM joins only
	// the Teleport VM of its host by that name. teleport-proxy was not
	// even asked in phase 0.
	joins := false
	for _, l := range lines {
		joins = joins || (strings.Contains(l, "the cluster's kube agent joins the Teleport VM") && strings.Contains(l, `"proxy":"teleport.example.com:443"`))
		if strings.Contains(l, "Teleport reachable and credentials accepted") {
			t.Errorf("phase 0 still checked teleport-proxy: %s", l)
		}
	}
	// Deleted through the provisioner's identity, before that user went.
	if len(inv.Tokens) != 0 {
		t.Errorf("join tokens left on Teleport: %v", inv.Tokens)
	}
	if !joins {
		t.Error("no event says the kube agent joins the Teleport VM at teleport.example.com:443")
	}
	if !strings.Contains(out.String(), "the host's used SSH node join token is deleted") {
		t.Error("the host's join token was not deleted after use")
	}
	if len(p.APITokens) != 1 || p.APITokens[0]["id"] != "rawkode-cloud@pve!provision" {
		t.Errorf("api tokens: %v", p.APITokens)
	}
	secrets := map[string]bool{}
	for _, s := range inv.Secrets {
		secrets[s["name"].(string)] = true
	}
	for _, name := range []string{"PROXMOX_API_TOKEN", "PROXMOX_ROOT_PASSWORD", "TALOS_SECRETS_BUNDLE", "TALOSCONFIG", "KUBECONFIG", "DEMOCRATIC_CSI_SSH_KEY"} {
		if !secrets[name] {
			t.Errorf("stored secrets: %v, missing %s", secrets, name)
		}
	}
	var vms []string
	for _, vm := range p.VMs {
		vms = append(vms, fmt.Sprintf("%v %v %v %v %v", vm["name"], vm["vmid"], vm["ip"], vm["status"], vm["tags"]))
	}
	want := []string{
		"haproxy 100 10.10.0.3 running [rawkode-cloud cluster-pve-e2e haproxy]",
		"teleport 101 10.10.0.2 running [rawkode-cloud cluster-pve-e2e teleport]",
		"pve-e2e-cp-1 110 10.10.0.10 running [rawkode-cloud cluster-pve-e2e talos]",
		"pve-e2e-cp-2 111 10.10.0.11 running [rawkode-cloud cluster-pve-e2e talos]",
		"pve-e2e-cp-3 112 10.10.0.12 running [rawkode-cloud cluster-pve-e2e talos]",
	}
	if strings.Join(vms, "\n") != strings.Join(want, "\n") {
		t.Errorf("proxmox.vms:\n%s\nwant:\n%s", strings.Join(vms, "\n"), strings.Join(want, "\n"))
	}
	// The topology defaults cni to cilium, whose load-balancer pool is the
	// gateway VIP the HAProxy VM sends *.apps.<domain> to.
	platformLine := ""
	for _, l := range lines {
		if strings.Contains(l, "platform layer rendered") {
			platformLine = l
		}
	}
	if !strings.Contains(platformLine, `"cni":"cilium"`) || !strings.Contains(platformLine, `"load_balancer_pool":"[10.10.0.30/32]"`) {
		t.Errorf("platform layer: want cilium with the gateway VIP as its pool, got %s", platformLine)
	}
	// The storage driver came with the control planes' configs.
	if inv.Kubernetes.DefaultStorageClass != "zfs-iscsi" {
		t.Errorf("default StorageClass %q, want zfs-iscsi", inv.Kubernetes.DefaultStorageClass)
	}
	for _, obj := range []string{"DaemonSet/kube-system/cilium", "CiliumLoadBalancerIPPool/pve-e2e-pool",
		"CSIDriver/org.democratic-csi.iscsi", "DaemonSet/democratic-csi/zfs-iscsi-democratic-csi-node", "Secret/democratic-csi/zfs-iscsi-democratic-csi-driver-config"} {
		if !slices.Contains(inv.Kubernetes.Objects, obj) {
			t.Errorf("Kubernetes objects lack %s: %v", obj, inv.Kubernetes.Objects)
		}
	}
	ready := 0
	for _, n := range inv.Kubernetes.Nodes {
		if n.Ready {
			ready++
		}
	}
	if ready != 3 {
		t.Errorf("Kubernetes nodes: %+v, want 3 Ready", inv.Kubernetes.Nodes)
	}
	mu.Lock()
	defer mu.Unlock()
	if !judged || openTo {
		t.Errorf("the Proxmox API must be closed to everyone after lockdown (host seen: %v)", judged)
	}
	if inSet || !setKept {
		t.Errorf("after lockdown the operator IP set must stay, empty (operator still admitted: %v)", inSet)
	}
	if userData != string(scaleway.ClearedUserData) {
		t.Errorf("the host's user data (API certificate key, root hash) was left on Scaleway:\n%.200s", userData)
	}
	for _, s := range []string{"PROXMOX_ROOT_PASSWORD", "PVEAPIToken", "BEGIN EC PRIVATE KEY"} {
		if strings.Contains(out.String()+errOut.String(), s+"=") {
			t.Errorf("output shows %s", s)
		}
	}
	if strings.Contains(out.String()+errOut.String(), "OPENSSH PRIVATE KEY") {
		t.Error("output shows the storage driver's SSH private key")
	}
}

// destroy --cluster-name finds the host by its tags alone, and with
// --delete-secrets takes the token and the break-glass password along.
// TestDestroyFindsTheProxmoxNamesByTag: the host's domain= tag is enough for
// destroy to find teleport./proxmox./*.apps.<domain>; the operator does not
// have to remember --domain. The domain sits inside the sandbox's default
// zone, so destroy's configuration (no domain) reaches the same zone.
func TestDestroyFindsTheProxmoxNamesByTag(t *testing.T) {
	t.Parallel()
	domain := "pve." + sandbox.DefaultDNSZone
	r := provisionSandbox(t, runOpts{cluster: "pve-tagged", set: map[string]string{"topology": "proxmox", "domain": domain, "cni": "flannel"}})
	if r.err != nil {
		t.Fatalf("provision: %v\n%s", r.err, dump(r.events))
	}
	var public int
	for _, rec := range r.sb.Inventory().DNSRecords {
		if strings.HasSuffix(fmt.Sprint(rec["name"]), "."+domain) {
			public++
		}
	}
	if public != 3 {
		t.Fatalf("%d records under %s after provision, want teleport., proxmox. and *.apps.: %+v", public, domain, r.sb.Inventory().DNSRecords)
	}
	cfg := config.New()
	cfg.Set(config.ClusterName, "pve-tagged", config.FromFlag, "--cluster-name")
	destroyIn(t, r, cfg)
	if inv := r.sb.Inventory(); !inv.Empty() {
		t.Errorf("left after destroy without --domain: %+v", inv)
	}
}

// destroyIn runs destroy (find, then delete, secrets included) against the
// sandbox that r provisioned, with cfg as the operator gave it.
func destroyIn(t *testing.T, r result, cfg *config.Config) {
	t.Helper()
	r.sb.Apply(cfg)
	d := provision.NewDestroyer(provision.DestroyOptions{Config: cfg, Factory: r.sb.Factory(), DeleteSecrets: true})
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := (&pipeline.Runner{Phases: append(d.FindPhases(), d.Phases()...), Sink: &pipeline.Recorder{}}).Execute(ctx); err != nil {
		t.Fatalf("destroy: %v", err)
	}
}

func TestDestroyFindsTheProxmoxHost(t *testing.T) {
	t.Parallel()
	// flannel: this test is about destroy, and Cilium is the heavier start.
	r := provisionSandbox(t, runOpts{cluster: "pve-doomed", set: map[string]string{"topology": "proxmox", "domain": "example.com", "cni": "flannel"}})
	if r.err != nil {
		t.Fatalf("provision: %v\n%s", r.err, dump(r.events))
	}
	if got := len(r.sb.Inventory().Proxmox.Hosts); got != 1 {
		t.Fatalf("%d hosts after provision", got)
	}
	if got := len(r.sb.Inventory().DNSRecords); got != 3 {
		t.Fatalf("%d DNS records after provision, want teleport., proxmox. and *.apps.example.com", got)
	}
	// The domain says which names are the cluster's (and, in the sandbox,
	// which zone holds them).
	cfg := config.New()
	cfg.Set(config.ClusterName, "pve-doomed", config.FromFlag, "--cluster-name")
	cfg.Set(config.Domain, "example.com", config.FromFlag, "--domain")
	destroyIn(t, r, cfg)
	inv := r.sb.Inventory()
	if !inv.Empty() {
		t.Errorf("left after destroy: %+v", inv)
	}
}
