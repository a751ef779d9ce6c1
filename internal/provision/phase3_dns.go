package provision

import (
	"context"
	"fmt"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// updateDNS is phase 3: the cluster endpoint's A record points at the
// control plane. The records were started as soon as the addresses were
// known (phase 2), so this phase normally only collects the outcome.
func (p *Provisioner) updateDNS(ctx context.Context, r *pipeline.Run) error {
	if p.dns == nil {
		r.Skip("Cloudflare is not configured")
		return nil
	}
	// The proxmox topology's records (its host's public names) were needed
	// by phase 2 already, to reach the Teleport VM; this collects them.
	_, err := p.dnsRecords.Get(ctx, r)
	return err
}

// upsertDNS makes the endpoint name resolve to every control plane, one A
// record each, remembering what was there so undo can put it back exactly.
func (p *Provisioner) upsertDNS(ctx context.Context, r *pipeline.Run) ([]cloudflare.Change, error) {
	if p.dns == nil {
		return nil, nil
	}
	if p.host != nil {
		// The Kubernetes API's endpoint is the VIP on the internal network;
		// the public names point at the host.
		return p.host.upsertDNS(ctx, r)
	}
	ips, err := addresses(ctx, p.controlPlanes())
	if err != nil {
		return nil, err
	}
	return p.pointName(ctx, r, p.cfg.Get(config.CloudflareDNSName), ips)
}

// pointName makes name resolve to exactly ips, pushing each change's undo
// before its request goes out.
func (p *Provisioner) pointName(ctx context.Context, r *pipeline.Run, name string, ips []string) ([]cloudflare.Change, error) {
	// Each undo goes on the stack before its request goes out: a run that
	// fails meanwhile cancels the request, and a record Cloudflare created
	// whose answer was never read must still be removed (by name and
	// address, as its ID is unknown). Reverting a change that never landed
	// finds nothing to do.
	changes, err := p.dns.SetA(ctx, name, ips, func(ch cloudflare.Change) {
		r.Undo(pipeline.UndoStep{
			Resource: dnsResource(ch, name),
			Undone:   dnsUndone(ch, name),
			Command:  revertCommand(ch, name, p.cfg.Get(config.CloudflareZoneID)),
			Do:       func(ctx context.Context) error { return p.dns.Revert(ctx, ch) },
		})
	})
	if err != nil {
		return changes, fmt.Errorf("point %s at %s: %w", name, strings.Join(ips, ", "), err)
	}
	for _, ch := range changes {
		r.Info("DNS "+ch.String(), map[string]any{"name": name, "ip": ch.Current.Content})
	}
	return changes, nil
}

// dnsResource names what undo restores, without repeating the name.
func dnsResource(ch cloudflare.Change, name string) string {
	switch {
	case ch.Created:
		return fmt.Sprintf("Cloudflare A record %s → %s", name, ch.Current.Content)
	case ch.Previous != nil:
		return fmt.Sprintf("Cloudflare A record %s → %s (was %s)", name, ch.Current.Content, ch.Previous.Content)
	}
	return fmt.Sprintf("Cloudflare A record %s (state unknown after a failed change)", name)
}

// dnsUndone says what a successful revert did: a record that existed
// before is restored, not removed.
func dnsUndone(ch cloudflare.Change, name string) string {
	if !ch.Created && ch.Previous != nil {
		return fmt.Sprintf("restored Cloudflare A record %s to %s", name, ch.Previous.Content)
	}
	return ""
}

// revertCommand is what undoes ch by hand when cleanup could not: the exact
// API call when the record is known, otherwise where to look.
func revertCommand(ch cloudflare.Change, name, zoneID string) string {
	url := fmt.Sprintf("https://api.cloudflare.com/client/v4/zones/%s/dns_records/%s", zoneID, ch.RecordID)
	const auth = `-H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"`
	switch {
	case ch.RecordID == "" && ch.Created:
		return fmt.Sprintf(`curl %s "https://api.cloudflare.com/client/v4/zones/%s/dns_records?type=A&name=%s&content=%s", then delete the record it lists that this run created: curl -X DELETE %s https://api.cloudflare.com/client/v4/zones/%s/dns_records/<id>`,
			auth, zoneID, name, ch.Current.Content, auth, zoneID)
	case ch.RecordID != "" && ch.Created:
		return fmt.Sprintf("curl -X DELETE %s %s", auth, url)
	case ch.RecordID != "" && ch.Previous != nil:
		return fmt.Sprintf(`curl -X PATCH %s -H "Content-Type: application/json" --data '{"content":"%s"}' %s`, auth, ch.Previous.Content, url)
	}
	return fmt.Sprintf("check the A record %s in Cloudflare zone %s", name, zoneID)
}
