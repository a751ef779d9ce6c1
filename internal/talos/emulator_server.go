package talos

import (
	"context"
	"net"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// EmulatedTalosVersion is what a fresh emulated node reports from Version
// (an upgrade changes it).
const EmulatedTalosVersion = "v1.12.4"

// machineServer serves the Machine API for one boot stage of a node.
type machineServer struct {
	machine.UnimplementedMachineServiceServer
	n *Node
	g *apiGen
}

// stage reports the node's mode, or Unavailable when this server's stage is
// over (the node rebooted under the caller).
func (s *machineServer) stage() (Mode, error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.n.api != s.g {
		return "", status.Error(codes.Unavailable, "node is rebooting")
	}
	return s.n.mode, nil
}

// fault waits out the latency of point, then shows the first active fault
// among kinds. It returns the kind it consumed (for kinds the caller handles
// itself) or the gRPC error to answer with.
func (s *machineServer) fault(ctx context.Context, point string, kinds ...emulator.Kind) (emulator.Kind, error) {
	if err := s.n.faults.Delay(ctx, point); err != nil {
		return "", status.FromContextError(err).Err()
	}
	for _, k := range kinds {
		if !s.n.faults.Peek(point, k) {
			continue
		}
		s.n.faults.Check(point)
		switch k {
		case emulator.Error:
			return k, status.Errorf(codes.Internal, "%s: emulated failure", point)
		case emulator.Unavailable:
			return k, status.Errorf(codes.Unavailable, "%s: emulated outage", point)
		case emulator.RateLimit:
			return k, status.Errorf(codes.ResourceExhausted, "%s: emulated rate limit", point)
		case emulator.Hang:
			emulator.HangCtx(ctx, s.g.done)
			return k, status.Errorf(codes.Unavailable, "%s: emulated hang released", point)
		}
		return k, nil
	}
	return "", nil
}

func (s *machineServer) Version(ctx context.Context, _ *emptypb.Empty) (*machine.VersionResponse, error) {
	s.n.counters.Inc("Version")
	mode, err := s.stage()
	if err != nil {
		return nil, err
	}
	if mode == ModeMaintenance {
		if _, err := s.fault(ctx, FaultMaintenance, emulator.Error, emulator.Unavailable, emulator.RateLimit, emulator.Hang); err != nil {
			return nil, err
		}
		// What a real node in maintenance mode answers: the signal the
		// client waits for.
		return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
	}
	s.n.mu.Lock()
	tag := s.n.version
	s.n.mu.Unlock()
	return &machine.VersionResponse{Messages: []*machine.Version{{
		Version:  &machine.VersionInfo{Tag: tag, Os: "Talos", Arch: "amd64"},
		Platform: &machine.PlatformInfo{Name: "metal", Mode: "metal"},
	}}}, nil
}

func (s *machineServer) ApplyConfiguration(ctx context.Context, req *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	s.n.counters.Inc("ApplyConfiguration")
	mode, err := s.stage()
	if err != nil {
		return nil, err
	}
	if rw := s.n.opts.RewriteConfig; rw != nil {
		req = &machine.ApplyConfigurationRequest{Data: rw(req.Data), Mode: req.Mode, DryRun: req.DryRun, TryModeTimeout: req.TryModeTimeout}
	}
	if mode == ModeMaintenance {
		return s.applyMaintenance(ctx, req)
	}
	return s.applyConfigured(ctx, req)
}

func applyReply(mode machine.ApplyConfigurationRequest_Mode, details string, warnings []string) *machine.ApplyConfigurationResponse {
	return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
		Mode: mode, ModeDetails: details, Warnings: warnings,
	}}}
}

func invalid(err error) error {
	return status.Errorf(codes.InvalidArgument, "configuration validation failed: %s", err)
}

func (s *machineServer) applyMaintenance(ctx context.Context, req *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	kind, err := s.fault(ctx, FaultApply, emulator.Error, emulator.Unavailable, emulator.RateLimit, emulator.Hang, emulator.Never)
	if err != nil {
		return nil, err
	}
	switch req.Mode {
	case machine.ApplyConfigurationRequest_REBOOT, machine.ApplyConfigurationRequest_AUTO, machine.ApplyConfigurationRequest_TRY:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "apply mode %s is not supported in maintenance mode (use auto, reboot or try)", req.Mode)
	}
	cfg, warnings, err := ValidateConfig(req.Data)
	if err != nil {
		return nil, invalid(err)
	}
	const details = "Applied configuration with a reboot"
	if req.DryRun {
		return applyReply(machine.ApplyConfigurationRequest_REBOOT, "Dry run: "+details, warnings), nil
	}
	if kind == emulator.Never {
		return applyReply(machine.ApplyConfigurationRequest_REBOOT, details, warnings), nil
	}
	s.n.mu.Lock()
	if s.n.api != s.g {
		s.n.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "node is rebooting")
	}
	if s.n.taken {
		// A retried apply while the first one's teardown is pending: the
		// config was handed over already, the answer is the same.
		s.n.mu.Unlock()
		return applyReply(machine.ApplyConfigurationRequest_REBOOT, details, warnings), nil
	}
	after := s.n.takeConfigLocked(cfg, req.Data)
	s.n.mu.Unlock()
	if after != nil {
		after()
	}
	return applyReply(machine.ApplyConfigurationRequest_REBOOT, details, warnings), nil
}

func (s *machineServer) applyConfigured(ctx context.Context, req *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	kind, err := s.fault(ctx, FaultLockdown, emulator.Error, emulator.RateLimit, emulator.Never, emulator.Unavailable)
	if err != nil && kind != emulator.Unavailable {
		return nil, err
	}
	if kind == "" && s.n.faults.Peek(FaultLockdown, emulator.Hang) {
		// Unlike other points, a lockdown hang applies first, then stalls.
		s.n.faults.Check(FaultLockdown)
		kind = emulator.Hang
	}
	cfg, warnings, verr := ValidateConfig(req.Data)
	if verr != nil {
		return nil, invalid(verr)
	}
	mode := req.Mode
	if mode == machine.ApplyConfigurationRequest_AUTO {
		mode = machine.ApplyConfigurationRequest_NO_REBOOT
	}
	details := "Applied configuration without a reboot"
	switch mode {
	case machine.ApplyConfigurationRequest_REBOOT:
		details = "Applied configuration with a reboot"
	case machine.ApplyConfigurationRequest_STAGED:
		details = "Staged configuration to be applied after a reboot"
	}
	if req.DryRun || kind == emulator.Never {
		return applyReply(mode, details, warnings), nil
	}

	s.n.mu.Lock()
	if s.n.api != s.g {
		s.n.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "node is rebooting")
	}
	s.n.applied = append(s.n.applied, append([]byte(nil), req.Data...))
	var after func()
	switch mode {
	case machine.ApplyConfigurationRequest_STAGED:
	case machine.ApplyConfigurationRequest_REBOOT:
		after = s.n.beginRebootLocked(cfg, req.Data)
	default:
		// The firewall takes effect at once; established connections
		// survive (conntrack), new ones are judged by the new rules.
		s.n.restartKubeletIfChangedLocked(s.n.cfgBytes, req.Data)
		s.n.cfgBytes, s.n.fw = append([]byte(nil), req.Data...), FirewallFromConfig(cfg)
		after = s.n.hooksCall(req.Data)
	}
	var cut []net.Conn
	if kind == emulator.Unavailable {
		cut = s.g.cutLocked()
	}
	s.n.mu.Unlock()
	if after != nil {
		after()
	}
	if kind == emulator.Unavailable {
		// The new firewall drops our own flow before the reply leaves.
		closeAll(cut)
		return nil, err
	}
	if kind == emulator.Hang {
		emulator.HangCtx(ctx, s.g.done)
		return nil, status.Errorf(codes.Unavailable, "%s: emulated hang released", FaultLockdown)
	}
	return applyReply(mode, details, warnings), nil
}

func (s *machineServer) configuredOnly() error {
	mode, err := s.stage()
	if err != nil {
		return err
	}
	if mode != ModeConfigured {
		return status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
	}
	return nil
}

func (s *machineServer) Bootstrap(ctx context.Context, req *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	s.n.counters.Inc("Bootstrap")
	if err := s.configuredOnly(); err != nil {
		return nil, err
	}
	if _, err := s.fault(ctx, FaultBootstrap, emulator.Error, emulator.Unavailable, emulator.RateLimit, emulator.Hang); err != nil {
		return nil, err
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	switch {
	case s.n.bootstrapped:
		return nil, status.Error(codes.AlreadyExists, "etcd data directory is not empty")
	case !s.n.etcdReady || s.n.faults.Peek(FaultBootstrap, emulator.Never):
		return nil, status.Error(codes.FailedPrecondition, "bootstrap is not available yet: etcd is not waiting for bootstrap")
	}
	if err := s.n.seedEtcdLocked(req.GetRecoverEtcd()); err != nil {
		return nil, err
	}
	s.n.bootstrapped = true
	s.n.bootstraps++
	s.n.etcd = &etcdCluster{}
	s.n.etcd.add(s.n.hostnameLocked(), s.n.opts.PublicIP)
	s.n.eventLocked(EventBootstrapped)
	s.n.startEtcdLocked()
	return &machine.BootstrapResponse{Messages: []*machine.Bootstrap{{}}}, nil
}

func (s *machineServer) ServiceList(ctx context.Context, _ *emptypb.Empty) (*machine.ServiceListResponse, error) {
	s.n.counters.Inc("ServiceList")
	if err := s.configuredOnly(); err != nil {
		return nil, err
	}
	if _, err := s.fault(ctx, FaultServices, emulator.Unavailable, emulator.RateLimit, emulator.Hang); err != nil {
		return nil, err
	}
	return &machine.ServiceListResponse{Messages: []*machine.ServiceList{{Services: s.n.serviceList()}}}, nil
}

func (s *machineServer) Events(req *machine.EventsRequest, stream grpc.ServerStreamingServer[machine.Event]) error {
	s.n.counters.Inc("Events")
	ctx := stream.Context()
	if err := s.configuredOnly(); err != nil {
		return err
	}
	if s.n.opts.NoEvents {
		return status.Error(codes.Unimplemented, "method Events not implemented")
	}
	if _, err := s.fault(ctx, FaultServices, emulator.Unavailable, emulator.RateLimit, emulator.Hang); err != nil {
		return err
	}
	s.n.mu.Lock()
	id, ch, past := s.n.subscribeLocked(req.TailEvents)
	s.n.mu.Unlock()
	defer s.n.unsubscribe(id)

	// machined opens every watch with an empty event so the client knows
	// the subscription is live (EventsWatchV2 waits for it).
	if err := stream.Send(&machine.Event{}); err != nil {
		return err
	}
	for _, e := range past {
		if err := stream.Send(e); err != nil {
			return err
		}
	}
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return status.Error(codes.ResourceExhausted, "events subscriber fell behind")
			}
			if err := stream.Send(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.g.done:
			return status.Error(codes.Unavailable, "node is rebooting")
		}
	}
}

// ValidationMode is the runtime mode the node validates configs for: a
// bare-metal machine that installs Talos to disk.
type ValidationMode struct{}

func (ValidationMode) String() string        { return "metal" }
func (ValidationMode) RequiresInstall() bool { return true }
func (ValidationMode) InContainer() bool     { return false }

// ValidateConfig loads a machine config and runs Talos's own validator for
// bare metal over it, as the node does before accepting it.
func ValidateConfig(raw []byte) (config.Provider, []string, error) {
	cfg, err := configloader.NewFromBytes(raw)
	if err != nil {
		return nil, nil, err
	}
	warnings, err := cfg.Validate(ValidationMode{}, validation.WithLocal())
	if err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}
