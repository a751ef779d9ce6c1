package provision

import (
	"context"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// ProxmoxDNSNames are the names the proxmox topology points at its host's
// public address, where HAProxy routes them by SNI: teleport.<domain> and
// proxmox.<domain> to the Teleport VM (the Proxmox UI is one of its apps),
// *.apps.<domain> to the cluster's gateway. The Kubernetes API has no
// public name: its endpoint is the VIP on the internal network.
func ProxmoxDNSNames(domain string) []string {
	return []string{"teleport." + domain, "proxmox." + domain, "*.apps." + domain}
}

// upsertDNS points every public name at the host, each change's undo
// pushed before its request goes out (exactly as the metal A records: a
// record that existed is put back, one created is removed). The CLI itself
// needs teleport.<domain> in phase 2, to reach the Teleport VM it created.
func (h *proxmoxHost) upsertDNS(ctx context.Context, r *pipeline.Run) ([]cloudflare.Change, error) {
	var all []cloudflare.Change
	for _, name := range ProxmoxDNSNames(h.cfg.Get(config.Domain)) {
		chs, err := h.p.pointName(ctx, r, name, []string{h.server.IPv4})
		all = append(all, chs...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}
