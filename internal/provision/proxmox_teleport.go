package provision

import (
	"context"
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// The design document's phase 7 on the proxmox topology: besides the
// cluster's kube agent, the Teleport VM serves the Proxmox UI as an app
// (its teleport.yaml's app_service, the reverse tunnel it registers
// through) and reaches the host as an SSH node. The host's agent is
// configured by its user data in phase 1 with a join token name the CLI
// chose then (teleportvm.HostAgent); the token itself is created on the
// Teleport VM once that Teleport answers, and deleted once the node is
// registered. Phase 6 waits for both before the lockdown, as for the kube
// agent: a failure leaves everything running (exit 3).

// withHostAgent adds the host's Teleport SSH service to its user data
// options: it joins the Teleport VM's auth service with the token name.
func withHostAgent(opts proxmoxhost.Options, node, token string) (proxmoxhost.Options, error) {
	cfg, err := teleportvm.HostAgentYAML(teleportvm.HostAgent{NodeName: node,
		AuthServer: teleportvm.AuthAddr(ProxmoxLayout().Teleport), Token: token, Labels: teleportvm.HostRoleLabel})
	if err != nil {
		return opts, err
	}
	opts.TeleportAgent = cfg
	opts.TeleportAptSource, opts.TeleportAptKeyURL = teleportvm.AptRepo.Source, teleportvm.AptRepo.KeyURL
	return opts, nil
}

// hostNodeToken creates the host agent's join token on the Teleport VM
// (role Node), its removal pushed right after, even when the create
// failed: a lost answer may hide a token that was made.
func (h *proxmoxHost) hostNodeToken(ctx context.Context, r *pipeline.Run) error {
	p := h.p
	tok, err := h.vmTeleport.CreateNodeToken(ctx, h.nodeToken, h.node, p.tokenTTL())
	expires := tok.Expires.UTC().Format("15:04:05Z")
	r.Undo(pipeline.UndoStep{
		Resource: fmt.Sprintf("Teleport join token %s (expires %s) for the host's SSH service, on the Teleport VM", teleport.Redact(tok.Name), expires),
		Command:  fmt.Sprintf("tctl tokens rm <token %s> on the Teleport VM (it expires by itself at %s; it goes with the VM)", teleport.Redact(tok.Name), expires),
		Do:       func(ctx context.Context) error { return h.vmTeleport.DeleteToken(ctx, tok.Name) },
	})
	if err != nil {
		return fmt.Errorf("create the host's SSH node join token on the Teleport VM: %w", err)
	}
	h.nodeTokenMinted = true
	r.Info("join token for the host's SSH service created on the Teleport VM", map[string]any{"role": "Node", "node": h.node,
		"token": teleport.Redact(tok.Name), "ttl": p.tokenTTL().String()})
	return nil
}

// verifications are the topology's phase 7 checks, run with the others
// before the lockdown.
func (h *proxmoxHost) verifications() []verification {
	return []verification{
		{"the Teleport VM lists the host as an SSH node", h.verifyHostNode},
		{"the Teleport VM serves the Proxmox UI as an app", h.verifyProxmoxApp},
	}
}

func (h *proxmoxHost) verifyHostNode(ctx context.Context, r *pipeline.Run) error {
	return h.waitOnTeleportVM(ctx, r, "host "+h.node+" to register with the Teleport VM as an SSH node",
		"check the host's agent: journalctl -u teleport on "+h.node+", through the Scaleway console",
		func(ctx context.Context, o wait.Options) error { return h.vmTeleport.WaitNode(ctx, h.node, o) })
}

func (h *proxmoxHost) verifyProxmoxApp(ctx context.Context, r *pipeline.Run) error {
	return h.waitOnTeleportVM(ctx, r, "the Proxmox UI ("+teleportvm.ProxmoxApp+") to be served by the Teleport VM's app service",
		"check the app service and its reverse tunnel in the Teleport VM's logs",
		func(ctx context.Context, o wait.Options) error {
			return h.vmTeleport.WaitApp(ctx, teleportvm.ProxmoxApp, o)
		})
}

// waitOnTeleportVM waits, within the agent's deadline, for something the
// Teleport VM must list before the lockdown; hint says where to look when
// it never does.
func (h *proxmoxHost) waitOnTeleportVM(ctx context.Context, r *pipeline.Run, what, hint string, until func(context.Context, wait.Options) error) error {
	p := h.p
	if h.vmTeleport == nil {
		return fmt.Errorf("Teleport verification failed: the Teleport VM was never reached")
	}
	w := r.Wait(what, p.timeout(config.TeleportAgentTimeout), p.cfg.Duration(config.TeleportAgentPollInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	if err := until(wctx, w.Options()); err != nil {
		return fmt.Errorf("Teleport verification failed: %w (%s)", err, hint)
	}
	w.Done()
	return nil
}

// dropHostNodeToken deletes the used join token: the host's agent has its
// own identity now. A failure only warns: the token expires by itself.
func (h *proxmoxHost) dropHostNodeToken(ctx context.Context, r *pipeline.Run) {
	if !h.nodeTokenMinted || h.vmTeleport == nil {
		return
	}
	if err := h.vmTeleport.DeleteToken(ctx, h.nodeToken); err != nil {
		r.Warn("could not delete the host's used SSH node join token on the Teleport VM; it expires by itself", map[string]any{"token": teleport.Redact(h.nodeToken), "error": err.Error()})
		return
	}
	h.nodeTokenMinted = false
	r.Info("the host's used SSH node join token is deleted", map[string]any{"token": teleport.Redact(h.nodeToken)})
}

// KubeAgentProxy is the Teleport proxy the cluster's kube agent joins: on
// the proxmox topology the Teleport VM the run creates, by its public name
// (HAProxy on the host passes 443 on to it by SNI); elsewhere
// teleport-proxy.
func KubeAgentProxy(cfg *config.Config) string {
	if cfg.Get(config.Topology) == config.TopologyProxmox {
		return teleportvm.Config{Domain: cfg.Get(config.Domain)}.PublicHost() + ":443"
	}
	return cfg.Get(config.TeleportProxy)
}

func (p *Provisioner) kubeAgentProxy() string { return KubeAgentProxy(p.cfg) }
