package teleport

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/types"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

func role(t *testing.T, name string, allow, deny []types.Rule) types.Role {
	t.Helper()
	r, err := types.NewRole(name, types.RoleSpecV6{Allow: types.RoleConditions{Rules: allow}, Deny: types.RoleConditions{Rules: deny}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRolesAllow(t *testing.T) {
	t.Parallel()
	editor := role(t, "editor", []types.Rule{types.NewRule(types.Wildcard, []string{types.Wildcard})}, nil)
	tokens := role(t, "tokens", []types.Rule{types.NewRule(types.KindToken, []string{types.VerbCreate})}, nil)
	noTokens := role(t, "no-tokens", nil, []types.Rule{types.NewRule(types.KindToken, []string{types.Wildcard})})
	conditional := role(t, "conditional", nil, []types.Rule{{Resources: []string{types.KindToken}, Verbs: []string{types.VerbCreate}, Where: `contains(resource.metadata.labels["env"], "prod")`}})
	for _, tc := range []struct {
		name         string
		roles        []types.Role
		resource     string
		verb         string
		want         bool
		wantDeniedBy string
	}{
		{"wildcards allow everything", []types.Role{editor}, types.KindToken, types.VerbCreate, true, ""},
		{"an exact rule", []types.Role{tokens}, types.KindToken, types.VerbCreate, true, ""},
		{"another verb is not implied", []types.Role{tokens}, types.KindToken, types.VerbDelete, false, ""},
		{"another resource is not implied", []types.Role{tokens}, types.KindKubeServer, types.VerbList, false, ""},
		{"deny wins over allow", []types.Role{editor, noTokens}, types.KindToken, types.VerbCreate, false, "no-tokens"},
		{"a conditional deny cannot be proven", []types.Role{editor, conditional}, types.KindToken, types.VerbCreate, true, ""},
		{"no roles", nil, types.KindToken, types.VerbCreate, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, by := RolesAllow(tc.roles, tc.resource, tc.verb)
			if ok != tc.want || by != tc.wantDeniedBy {
				t.Fatalf("RolesAllow = %v, %q; want %v, %q", ok, by, tc.want, tc.wantDeniedBy)
			}
		})
	}
}

func TestCheckPermissions(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	c := connect(t, e, Config{})
	if err := c.CheckPermissions(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("the provisioner role: %v", err)
	}

	e.Faults().Set(FaultPermissions, emulator.Fault{Kind: emulator.Deny})
	err := c.CheckPermissions(testCtx(t, 5*time.Second))
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("with a read-only role: %v, want ErrPermission", err)
	}
	for _, want := range []string{"create on token", "delete on token", `"rawkode-cloud"`, "auditor"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "kube_server") {
		t.Errorf("error %q names kube_server, which the role allows", err)
	}
	// What the check predicted is what the auth service enforces.
	if _, err := c.CreateKubeToken(testCtx(t, 5*time.Second), testCluster, time.Minute); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("CreateKubeToken with a read-only role = %v, want access denied", err)
	}
}
