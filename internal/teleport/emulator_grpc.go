package teleport

import (
	"context"
	"sort"

	"github.com/gravitational/teleport/api"
	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/types"
	apiutils "github.com/gravitational/teleport/api/utils"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// authServer implements the AuthService subset the client uses; every
// other RPC answers Unimplemented through the embedded type.
type authServer struct {
	proto.UnimplementedAuthServiceServer
	e *Emulator
}

// enter counts a request, waits out the point's latency and reports the
// injected fault, if any, as the gRPC status real Teleport would send.
func (e *Emulator) enter(ctx context.Context, op, point string) error {
	e.count(op)
	if err := e.faults.Delay(ctx, point); err != nil {
		return status.FromContextError(err).Err()
	}
	kind, ok := e.faults.Check(point)
	if !ok {
		return nil
	}
	switch kind {
	case emulator.Unavailable:
		return status.Error(codes.Unavailable, "emulated: auth service unavailable")
	case emulator.RateLimit:
		return status.Error(codes.ResourceExhausted, "emulated: rate limit exceeded")
	case emulator.Hang, emulator.Never:
		emulator.HangCtx(ctx, e.done)
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Error(codes.Unavailable, "emulated: auth service shutting down")
	default:
		return status.Error(codes.Internal, "emulated: internal error")
	}
}

func (s *authServer) Ping(ctx context.Context, _ *proto.PingRequest) (*proto.PingResponse, error) {
	if err := s.e.enter(ctx, OpPing, FaultConnect); err != nil {
		return nil, err
	}
	return &proto.PingResponse{
		ClusterName:     s.e.opts.ClusterName,
		ServerVersion:   api.Version,
		ServerFeatures:  &proto.Features{Kubernetes: true},
		ProxyPublicAddr: s.e.Addr(),
	}, nil
}

func (s *authServer) CreateTokenV2(ctx context.Context, req *proto.CreateTokenV2Request) (*emptypb.Empty, error) {
	if err := s.e.enter(ctx, OpCreateToken, FaultCreateToken); err != nil {
		return nil, err
	}
	if err := s.e.authorize(types.KindToken, types.VerbCreate); err != nil {
		return nil, err
	}
	return s.e.storeToken(req.GetV2(), false)
}

func (s *authServer) UpsertTokenV2(ctx context.Context, req *proto.UpsertTokenV2Request) (*emptypb.Empty, error) {
	if err := s.e.enter(ctx, OpUpsertToken, FaultCreateToken); err != nil {
		return nil, err
	}
	if err := s.e.authorize(types.KindToken, types.VerbCreate); err != nil {
		return nil, err
	}
	if err := s.e.authorize(types.KindToken, types.VerbUpdate); err != nil {
		return nil, err
	}
	return s.e.storeToken(req.GetV2(), true)
}

func (e *Emulator) storeToken(t *types.ProvisionTokenV2, upsert bool) (*emptypb.Empty, error) {
	if t == nil {
		return nil, status.Error(codes.InvalidArgument, "missing token")
	}
	t = apiutils.CloneProtoMsg(t)
	if err := t.CheckAndSetDefaults(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid token: %v", err)
	}
	early := e.expiresEarly()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	if old, ok := e.tokens[t.GetName()]; ok && !upsert && !expired(old, now) {
		return nil, status.Errorf(codes.AlreadyExists, "token %s already exists", Redact(t.GetName()))
	}
	if early {
		if at := now.Add(e.opts.EarlyExpiry); t.Expiry().IsZero() || at.Before(t.Expiry()) {
			t.SetExpiry(at)
		}
	}
	e.tokens[t.GetName()] = t
	return &emptypb.Empty{}, nil
}

func (s *authServer) GetToken(ctx context.Context, req *types.ResourceRequest) (*types.ProvisionTokenV2, error) {
	s.e.count(OpGetToken)
	if err := s.e.authorize(types.KindToken, types.VerbRead); err != nil {
		return nil, err
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	t, ok := s.e.tokens[req.Name]
	if !ok || expired(t, s.e.opts.Now()) {
		return nil, status.Errorf(codes.NotFound, "provision token %s not found", Redact(req.Name))
	}
	return apiutils.CloneProtoMsg(t), nil
}

func (s *authServer) GetTokens(ctx context.Context, _ *emptypb.Empty) (*types.ProvisionTokenV2List, error) {
	s.e.count(OpGetTokens)
	for _, verb := range []string{types.VerbList, types.VerbRead} {
		if err := s.e.authorize(types.KindToken, verb); err != nil {
			return nil, err
		}
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	now := s.e.opts.Now()
	out := &types.ProvisionTokenV2List{}
	for _, t := range s.e.tokens {
		if !expired(t, now) {
			out.ProvisionTokens = append(out.ProvisionTokens, apiutils.CloneProtoMsg(t))
		}
	}
	sort.Slice(out.ProvisionTokens, func(i, j int) bool {
		return out.ProvisionTokens[i].GetName() < out.ProvisionTokens[j].GetName()
	})
	return out, nil
}

func (s *authServer) DeleteToken(ctx context.Context, req *types.ResourceRequest) (*emptypb.Empty, error) {
	if err := s.e.enter(ctx, OpDeleteToken, FaultDeleteToken); err != nil {
		return nil, err
	}
	if err := s.e.authorize(types.KindToken, types.VerbDelete); err != nil {
		return nil, err
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	t, ok := s.e.tokens[req.Name]
	if !ok || expired(t, s.e.opts.Now()) {
		delete(s.e.tokens, req.Name)
		return nil, status.Errorf(codes.NotFound, "provision token %s not found", Redact(req.Name))
	}
	delete(s.e.tokens, req.Name)
	return &emptypb.Empty{}, nil
}

// ListResources pages through kube servers sorted by name; StartKey is the
// name of the first server of the page, as in the real backend.
func (s *authServer) ListResources(ctx context.Context, req *proto.ListResourcesRequest) (*proto.ListResourcesResponse, error) {
	if err := s.e.enter(ctx, OpListResources, FaultListKube); err != nil {
		return nil, err
	}
	switch req.ResourceType {
	case types.KindKubeServer:
	case types.KindNode, types.KindAppServer:
		return s.e.listAgents(req), nil
	default:
		return nil, status.Errorf(codes.Unimplemented, "emulator lists only %s, %s and %s, not %s",
			types.KindKubeServer, types.KindNode, types.KindAppServer, req.ResourceType)
	}
	for _, verb := range []string{types.VerbList, types.VerbRead} {
		if err := s.e.authorize(types.KindKubeServer, verb); err != nil {
			return nil, err
		}
	}
	limit := int(req.Limit)
	if limit <= 0 {
		limit = 1000
	}
	s.e.mu.Lock()
	now := s.e.opts.Now()
	names := make([]string, 0, len(s.e.kube))
	for key, reg := range s.e.kube {
		if !s.e.listedLocked(reg, now) {
			delete(s.e.kube, key) // its heartbeat TTL ran out
			continue
		}
		if key >= req.StartKey {
			names = append(names, key)
		}
	}
	sort.Strings(names)
	resp := &proto.ListResourcesResponse{TotalCount: int32(len(names))}
	for i, name := range names {
		if i == limit {
			resp.NextKey = name
			break
		}
		resp.Resources = append(resp.Resources, &proto.PaginatedResource{
			Resource: &proto.PaginatedResource_KubernetesServer{KubernetesServer: apiutils.CloneProtoMsg(s.e.kube[name].srv)},
		})
	}
	s.e.mu.Unlock()
	return resp, nil
}

// WatchEvents sends the OpInit event, then a put/delete for every kube
// server change, until the client goes away or the emulator closes.
func (s *authServer) WatchEvents(w *proto.Watch, stream proto.AuthService_WatchEventsServer) error {
	ctx := stream.Context()
	if err := s.e.enter(ctx, OpWatchEvents, FaultListKube); err != nil {
		return err
	}
	if s.e.opts.NoWatch {
		return status.Error(codes.Unimplemented, "emulated: watches are not supported")
	}
	kinds := make([]types.WatchKind, 0, len(w.Kinds))
	wantKube := false
	for _, k := range w.Kinds {
		kinds = append(kinds, types.WatchKind{Kind: k.Kind})
		wantKube = wantKube || k.Kind == types.KindKubeServer
	}
	// Subscribe before sending OpInit: anything registered after the client
	// sees OpInit is then guaranteed to reach it.
	ch := make(chan *proto.Event, 64)
	if wantKube {
		s.e.mu.Lock()
		s.e.watches[ch] = struct{}{}
		s.e.mu.Unlock()
		defer func() {
			s.e.mu.Lock()
			delete(s.e.watches, ch)
			s.e.mu.Unlock()
		}()
	}
	init, err := client.EventToGRPC(types.Event{Type: types.OpInit, Resource: types.NewWatchStatus(kinds)})
	if err != nil {
		return status.Errorf(codes.Internal, "encode init event: %v", err)
	}
	if err := stream.Send(init); err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return status.Error(codes.Unavailable, "watcher is falling behind, closing it")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.e.done:
			return status.Error(codes.Unavailable, "auth service shutting down")
		}
	}
}

// broadcast fans a kube server change out to the open watches. A watch
// whose buffer is full is closed rather than allowed to block registration,
// which is what real Teleport does to slow watchers.
func (e *Emulator) broadcast(op types.OpType, srv *types.KubernetesServerV3) {
	ev, err := client.EventToGRPC(types.Event{Type: op, Resource: apiutils.CloneProtoMsg(srv)})
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.watches {
		select {
		case ch <- ev:
		default:
			close(ch)
			delete(e.watches, ch)
		}
	}
}

// GetCurrentUserRoles streams the caller's roles, which clients evaluate
// to learn what they may do before they try.
func (s *authServer) GetCurrentUserRoles(_ *emptypb.Empty, stream proto.AuthService_GetCurrentUserRolesServer) error {
	if err := s.e.enter(stream.Context(), OpRoles, FaultConnect); err != nil {
		return err
	}
	for _, r := range s.e.roles() {
		v6, ok := r.(*types.RoleV6)
		if !ok {
			continue
		}
		if err := stream.Send(apiutils.CloneProtoMsg(v6)); err != nil {
			return err
		}
	}
	return nil
}
