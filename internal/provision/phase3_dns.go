package provision

import (
	"context"
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// updateDNS is phase 3: the A record points at the server. The upsert was
// started as soon as the IP was known (phase 2), so this phase normally only
// collects its outcome.
func (p *Provisioner) updateDNS(ctx context.Context, r *pipeline.Run) error {
	if p.dns == nil {
		r.Skip("Cloudflare is not configured")
		return nil
	}
	if p.dnsTask == nil {
		p.dnsTask = p.spawn(r, func(ctx context.Context) error { return p.upsertDNS(ctx, r) })
	}
	return p.dnsTask.Wait(ctx)
}

// upsertDNS points the record at the server, remembering what was there so
// undo can put it back exactly.
func (p *Provisioner) upsertDNS(ctx context.Context, r *pipeline.Run) error {
	if p.dns == nil {
		return nil
	}
	name := p.cfg.Get(config.CloudflareDNSName)
	ch, err := p.dns.UpsertA(ctx, name, p.publicIP)
	// Even a failed upsert may have changed the record (an update whose
	// answer was lost); its Change is always safe to revert.
	if ch.Changed() || err != nil {
		r.Undo(pipeline.UndoStep{
			Resource: dnsResource(ch, name),
			Command:  revertCommand(ch, name, p.cfg.Get(config.CloudflareZoneID)),
			Do:       func(ctx context.Context) error { return p.dns.Revert(ctx, ch) },
		})
	}
	if err != nil {
		return fmt.Errorf("point %s at %s: %w", name, p.publicIP, err)
	}
	p.dnsChange = &ch
	r.Info("DNS "+ch.String(), map[string]any{"name": name, "ip": p.publicIP})
	return nil
}

// dnsResource names what undo restores, without repeating the name.
func dnsResource(ch cloudflare.Change, name string) string {
	switch {
	case ch.Created:
		return fmt.Sprintf("Cloudflare A record %s → %s (created)", name, ch.Current.Content)
	case ch.Previous != nil:
		return fmt.Sprintf("Cloudflare A record %s → %s (was %s)", name, ch.Current.Content, ch.Previous.Content)
	}
	return fmt.Sprintf("Cloudflare A record %s (state unknown after a failed change)", name)
}

// revertCommand is what undoes ch by hand when cleanup could not: the exact
// API call when the record is known, otherwise where to look.
func revertCommand(ch cloudflare.Change, name, zoneID string) string {
	url := fmt.Sprintf("https://api.cloudflare.com/client/v4/zones/%s/dns_records/%s", zoneID, ch.RecordID)
	const auth = `-H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"`
	switch {
	case ch.RecordID != "" && ch.Created:
		return fmt.Sprintf("curl -X DELETE %s %s", auth, url)
	case ch.RecordID != "" && ch.Previous != nil:
		return fmt.Sprintf(`curl -X PATCH %s -H "Content-Type: application/json" --data '{"content":"%s"}' %s`, auth, ch.Previous.Content, url)
	}
	return fmt.Sprintf("check the A record %s in Cloudflare zone %s", name, zoneID)
}
