package teleport

import (
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/types"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

const ssoSecret = "sandbox-github-client-secret-0123456789"

func githubConnector(t *testing.T, team string) types.GithubConnector {
	t.Helper()
	spec := types.GithubConnectorSpecV3{ClientID: "Iv1.0123", ClientSecret: ssoSecret, Display: "GitHub",
		RedirectURL: "https://teleport.example.com/v1/webapi/github/callback"}
	if team != "" {
		spec.TeamsToRoles = []types.TeamRolesMapping{{Organization: "example-org", Team: team, Roles: []string{"infra-admin"}}}
	}
	c := &types.GithubConnectorV3{Metadata: types.Metadata{Name: "github"}, Spec: spec}
	return c
}

func TestGithubConnectorAndProvisionerLifecycle(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	c := connect(t, e, Config{})
	ctx := testCtx(t, 20*time.Second)

	if err := c.UpsertGithubConnector(ctx, githubConnector(t, "platform-admins")); err != nil {
		t.Fatal(err)
	}
	got, ok := e.GithubConnector("github")
	if !ok || got.GetClientSecret() != ssoSecret || got.GetTeamsToRoles()[0].Team != "platform-admins" {
		t.Fatalf("stored connector %v", got)
	}
	// Teleport's own check refuses a connector without team mappings, and
	// the error does not quote the secret.
	err := c.UpsertGithubConnector(ctx, githubConnector(t, ""))
	if err == nil || !strings.Contains(err.Error(), "no mappings defined") || strings.Contains(err.Error(), ssoSecret) {
		t.Errorf("connector without teams: %v", err)
	}
	if err := c.DeleteGithubConnector(ctx, "github"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteGithubConnector(ctx, "github"); err != nil {
		t.Errorf("deleting it again: %v (undo runs twice)", err)
	}

	e.SeedUser("rawkode-cloud-provisioner")
	if err := c.DeleteUser(ctx, "rawkode-cloud-provisioner"); err != nil {
		t.Fatal(err)
	}
	if len(e.Users()) != 0 {
		t.Errorf("users left: %v", e.Users())
	}
	if err := c.DeleteUser(ctx, "rawkode-cloud-provisioner"); err != nil {
		t.Errorf("deleting a gone user: %v", err)
	}
}

func TestSSOFaults(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	c := connect(t, e, Config{})
	ctx := testCtx(t, 20*time.Second)
	e.Faults().Set(FaultSSO, emulator.Fault{Kind: emulator.Unavailable, Times: 1})
	if err := c.UpsertGithubConnector(ctx, githubConnector(t, "platform-admins")); err != nil {
		t.Fatalf("a transient fault was not retried: %v", err)
	}
	e.Faults().Set(FaultSSO, emulator.Fault{Kind: emulator.Error})
	err := c.UpsertGithubConnector(ctx, githubConnector(t, "platform-admins"))
	if err == nil || strings.Contains(err.Error(), ssoSecret) {
		t.Errorf("permanent fault: %v", err)
	}
}
