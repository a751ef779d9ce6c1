package teleport

import (
	"context"
	"errors"
	"fmt"

	"github.com/gravitational/teleport/api/types"
)

// The Proxmox topology's own Teleport gets its GitHub connector over the
// API, from the CLI's short-lived provisioner identity, so the client secret
// never sits in a VM's user data; at the end of the run the provisioner
// user is deleted.

// UpsertGithubConnector creates or replaces a GitHub connector. It carries
// the client secret, which errors never quote.
func (c *Client) UpsertGithubConnector(ctx context.Context, conn types.GithubConnector) error {
	secret := conn.GetClientSecret()
	err := c.scrubbedRetry(secret).Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			_, err := c.api.UpsertGithubConnector(ctx, conn)
			return classify(err)
		})
	})
	if err != nil {
		return fmt.Errorf("create GitHub connector %s: %w", conn.GetName(), scrub(err, secret))
	}
	return nil
}

// DeleteGithubConnector removes a connector; already gone is done.
func (c *Client) DeleteGithubConnector(ctx context.Context, name string) error {
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			return classify(c.api.DeleteGithubConnector(ctx, name))
		})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete GitHub connector %s: %w", name, err)
	}
	return nil
}

// DeleteUser removes a Teleport user; already gone is done.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			return classify(c.api.DeleteUser(ctx, name))
		})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete Teleport user %s: %w", name, err)
	}
	return nil
}
