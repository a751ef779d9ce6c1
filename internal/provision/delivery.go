package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// Config delivered with the install (talos-config-delivery: install).
//
// With the first design's flow a node sits in Talos maintenance mode on a
// public IP between the pivot's reboot and phase 5's insecure apply, and
// whoever applies a config first owns it. Elastic Metal can order a server
// without an OS, tell its IP, and install it later with user data set in
// between; Talos on the metal platform booted with talos.config=metal-iso
// reads its config from a volume labelled metal-iso before it would ever
// enter maintenance mode. So:
//
//	phase 0  the Image Factory schematic gains the kernel argument (a new,
//	         content-addressed schematic; the argument is not secret)
//	phase 1  order without an OS
//	phase 2  IP known → configs rendered (the join token is minted now) →
//	         user data set (pivot + a metal-iso volume with the config) →
//	         install → the node comes up configured: mTLS, never maintenance
//	phase 5  no apply; once etcd and the services are up (the node has long
//	         stored its config on STATE), the user data is overwritten and
//	         the volume wiped and its partition dropped
//
// The user data holds the machine config (the cluster's CA keys), and the
// Scaleway API returns it to anyone who may read the server until it is
// overwritten; the node itself reads it once, at the install's first boot.

// KernelArgMetalISO makes Talos read its config from the metal-iso volume.
const KernelArgMetalISO = "talos.config=metal-iso"

// ImageFactory creates the schematic the install's image is built from.
type ImageFactory interface {
	GetSchematic(ctx context.Context, id string) (imagefactory.Schematic, error)
	CreateSchematic(ctx context.Context, s imagefactory.Schematic) (string, error)
}

// installDelivery reports whether configs travel with the install.
func installDelivery(cfg *config.Config) bool {
	return cfg.Get(config.TalosConfigDelivery) == config.DeliveryInstall
}

// checkInstallDelivery is metal's phase-0 part of it: the schematic the
// pivot's image comes from is the configured one plus the kernel argument.
func (m *metal) checkInstallDelivery(ctx context.Context, r *pipeline.Run) error {
	base := m.cfg.Get(config.TalosSchematicID)
	s, err := m.factory.GetSchematic(ctx, base)
	if err != nil {
		return fmt.Errorf("read Image Factory schematic %s (talos-schematic-id) to add %s: %w", base, KernelArgMetalISO, err)
	}
	if !slices.Contains(s.Customization.ExtraKernelArgs, KernelArgMetalISO) {
		s.Customization.ExtraKernelArgs = append(s.Customization.ExtraKernelArgs, KernelArgMetalISO)
	}
	id, err := m.factory.CreateSchematic(ctx, s)
	if err != nil {
		return err
	}
	m.installSchematic = id
	r.Info("machine configs will be delivered with the install: nodes never wait in maintenance mode",
		map[string]any{"schematic": id, "kernel_arg": KernelArgMetalISO})
	return nil
}

// reachInstalled is one node's phase 2 with the config delivered at install.
func (m *metal) reachInstalled(ctx context.Context, r *pipeline.Run, n *Node) error {
	id := n.Machine.ID
	serverTimeout := m.cfg.Duration(config.ServerTimeout)
	pollEvery := m.cfg.Duration(config.ServerPollInterval)
	sctx, cancel := context.WithTimeout(ctx, serverTimeout)
	defer cancel()

	w := r.Wait("public IPv4 of server "+id, serverTimeout, pollEvery)
	srv, err := m.scw.WaitIPv4(sctx, id, w.Options())
	if err != nil {
		return fmt.Errorf("wait for server %s: %w", id, err)
	}
	w.Done()
	r.Info("public IPv4 assigned", map[string]any{"server_id": id, "ip": srv.IPv4})
	n.Address.Keep(srv.IPv4)

	// Everything the config needs is known now: render it while the
	// server is still being delivered.
	cfg, talosconfig, err := m.nodeConfig(ctx, r, n)
	if err != nil {
		return err
	}
	userData, err := m.installUserData(cfg)
	if err != nil {
		return err
	}
	// The install needs a delivered server; the user data can be set now.
	if err := m.scw.SetUserData(ctx, id, userData); err != nil {
		return err
	}
	r.Info("user data with the machine config set on the server (overwritten after bootstrap)", map[string]any{"server_id": id})
	w = r.Wait("server "+id+" delivery", serverTimeout, pollEvery)
	if err := m.waitDelivered(sctx, id, w); err != nil {
		return err
	}
	if err := m.scw.InstallServer(ctx, id, scaleway.InstallSpec{OSID: m.cfg.Get(config.ScalewayOSID), Hostname: n.Name, SSHKeyIDs: m.sshKeys}); err != nil {
		return err
	}
	r.Info("OS install started; the pivot writes Talos and its config", map[string]any{"server_id": id})
	w = r.Wait("server "+id+" OS install", serverTimeout, pollEvery)
	if _, err := m.scw.WaitReady(sctx, id, w.Options()); err != nil {
		return fmt.Errorf("wait for server %s: %w", id, err)
	}
	w.Done()
	n.Installed.Keep(struct{}{})

	// The node boots configured: the first thing it serves is mTLS.
	mw := r.Wait("Talos API over mTLS on "+srv.IPv4+" (configured at install)", m.cfg.Duration(config.TalosMaintenanceTimeout), m.cfg.Duration(config.TalosMaintenanceInterval))
	mctx, mcancel := mw.Context(ctx)
	defer mcancel()
	if err := m.talos.WaitMTLS(mctx, srv.IPv4, talosconfig, mw.Options()); err != nil {
		return err
	}
	mw.Done()
	return nil
}

// waitDelivered waits until the server may be installed (status ready).
func (m *metal) waitDelivered(ctx context.Context, id string, w *pipeline.Waiter) error {
	err := wait.Until(ctx, "server "+id+" delivered", w.Options(), func(ctx context.Context) (bool, string, error) {
		srv, err := m.scw.GetServer(ctx, id)
		if err != nil {
			return false, "", err
		}
		switch srv.Status {
		case "ready":
			return true, srv.Status, nil
		case "error", "out_of_stock", "locked":
			return false, "", retry.Permanent(fmt.Errorf("delivery failed: status %s", srv.Status))
		}
		return false, srv.Status, nil
	})
	if err != nil {
		return fmt.Errorf("wait for server %s: %w", id, err)
	}
	w.Done()
	return nil
}

// installUserData is the pivot with the node's config on a metal-iso volume.
func (m *metal) installUserData(cfg []byte) ([]byte, error) {
	vol, err := cidata.Build(cidata.LabelMetalISO, time.Time{}, cidata.File{Name: "config.yaml", Data: cfg})
	if err != nil {
		return nil, fmt.Errorf("build the config volume: %w", err)
	}
	opts := m.pivotOptions()
	opts.SchematicID = m.installSchematic
	opts.ConfigVolume = vol
	ud, err := pivot.Render(opts)
	if err != nil {
		return nil, fmt.Errorf("render cloud-init user data: %w", err)
	}
	return ud, nil
}

// removeDeliveryTraces overwrites the user data that carried node n's config
// and drops the config volume: the node stored its config on STATE when it
// first booted, and neither is read again.
func (p *Provisioner) removeDeliveryTraces(ctx context.Context, r *pipeline.Run, n *Node) error {
	if err := p.scw.ClearUserData(ctx, n.Machine.ID); err != nil {
		return err
	}
	dev := pivot.ConfigPartition(p.cfg.Get(config.TalosInstallDisk))
	if err := p.talos.WipeConfigVolume(ctx, n.IP(), p.talosconfig, dev); err != nil {
		return err
	}
	r.Info("the config's delivery traces are gone: user data overwritten, config volume wiped and dropped",
		map[string]any{"server_id": n.Machine.ID, "volume": dev})
	return nil
}

var errNoNodeConfig = errors.New("node config not rendered")

// renderedConfig waits for the configs (phase 4's work, started ahead) and
// returns node n's with the cluster's talosconfig.
func (p *Provisioner) renderedConfig(ctx context.Context, r *pipeline.Run, n *Node) ([]byte, []byte, error) {
	if _, err := p.prep.Get(ctx, r); err != nil {
		return nil, nil, err
	}
	if n.config == nil {
		return nil, nil, fmt.Errorf("node %s: %w", n.Name, errNoNodeConfig)
	}
	return n.config, p.talosconfig, nil
}
