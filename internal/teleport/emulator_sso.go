package teleport

import (
	"context"
	"sort"

	"github.com/gravitational/teleport/api/client/proto"
	userspb "github.com/gravitational/teleport/api/gen/proto/go/teleport/users/v1"
	"github.com/gravitational/teleport/api/types"
	apiutils "github.com/gravitational/teleport/api/utils"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// FaultSSO covers the GitHub connector and user calls.
const FaultSSO = "teleport.sso"

// Operation names of the SSO calls, for request counts.
const (
	OpUpsertGithubConnector = "UpsertGithubConnector"
	OpGetGithubConnector    = "GetGithubConnector"
	OpDeleteGithubConnector = "DeleteGithubConnector"
	OpDeleteUser            = "DeleteUser"
)

// The auth service refuses a connector its own checks refuse, and answers
// a missing one with NotFound, as Teleport does (its trace errors travel as
// these gRPC codes).
func (s *authServer) UpsertGithubConnectorV2(ctx context.Context, req *proto.UpsertGithubConnectorRequest) (*types.GithubConnectorV3, error) {
	if err := s.e.enter(ctx, OpUpsertGithubConnector, FaultSSO); err != nil {
		return nil, err
	}
	c := req.GetConnector()
	if c == nil {
		return nil, status.Error(codes.InvalidArgument, "missing connector")
	}
	c = apiClone(c)
	if err := c.CheckAndSetDefaults(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.connectors[c.GetName()] = c
	return c, nil
}

func (s *authServer) GetGithubConnector(ctx context.Context, req *types.ResourceWithSecretsRequest) (*types.GithubConnectorV3, error) {
	if err := s.e.enter(ctx, OpGetGithubConnector, FaultSSO); err != nil {
		return nil, err
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	c, ok := s.e.connectors[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "github connector %q is not found", req.Name)
	}
	if !req.WithSecrets {
		out := apiClone(c)
		out.SetClientSecret("")
		return out, nil
	}
	return apiClone(c), nil
}

func (s *authServer) DeleteGithubConnector(ctx context.Context, req *types.ResourceRequest) (*emptypb.Empty, error) {
	if err := s.e.enter(ctx, OpDeleteGithubConnector, FaultSSO); err != nil {
		return nil, err
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if _, ok := s.e.connectors[req.Name]; !ok {
		return nil, status.Errorf(codes.NotFound, "github connector %q is not found", req.Name)
	}
	delete(s.e.connectors, req.Name)
	return &emptypb.Empty{}, nil
}

// usersServer is the UsersService subset: deleting a user.
type usersServer struct {
	userspb.UnimplementedUsersServiceServer
	e *Emulator
}

func (s *usersServer) DeleteUser(ctx context.Context, req *userspb.DeleteUserRequest) (*emptypb.Empty, error) {
	if err := s.e.enter(ctx, OpDeleteUser, FaultSSO); err != nil {
		return nil, err
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if !s.e.users[req.GetName()] {
		return nil, status.Errorf(codes.NotFound, "user %q is not found", req.GetName())
	}
	delete(s.e.users, req.GetName())
	return &emptypb.Empty{}, nil
}

// SeedUser adds a user, as `tctl create` on the auth server would.
func (e *Emulator) SeedUser(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[name] = true
}

// Users lists the users, sorted.
func (e *Emulator) Users() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.users))
	for u := range e.users {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// GithubConnector returns a stored connector (with its secret), for tests
// and the sandbox inventory.
func (e *Emulator) GithubConnector(name string) (types.GithubConnector, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.connectors[name]
	return c, ok
}

func apiClone(c *types.GithubConnectorV3) *types.GithubConnectorV3 {
	return apiutils.CloneProtoMsg(c)
}
