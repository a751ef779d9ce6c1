package teleport

import (
	"context"
	"fmt"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/defaults"
	"github.com/gravitational/teleport/api/types"

	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// WaitNode waits until an SSH node with this hostname is registered (the
// Proxmox host's teleport agent), polling under opts.
func (c *Client) WaitNode(ctx context.Context, hostname string, opts wait.Options) error {
	return c.waitListed(ctx, types.KindNode, hostname, "SSH node "+hostname, opts, func(r types.Resource) bool {
		s, ok := r.(types.Server)
		return ok && s.GetHostname() == hostname
	})
}

// WaitApp waits until an app server serves the app name (the Proxmox UI).
func (c *Client) WaitApp(ctx context.Context, name string, opts wait.Options) error {
	return c.waitListed(ctx, types.KindAppServer, name, "app "+name, opts, func(r types.Resource) bool {
		s, ok := r.(types.AppServer)
		return ok && s.GetApp() != nil && s.GetApp().GetName() == name
	})
}

func (c *Client) waitListed(ctx context.Context, kind, name, what string, opts wait.Options, match func(types.Resource) bool) error {
	err := wait.Until(ctx, what+" in Teleport", opts, func(ctx context.Context) (bool, string, error) {
		var found bool
		err := c.retry.Do(ctx, func(ctx context.Context) error {
			return c.attempt(ctx, func(ctx context.Context) error {
				var err error
				found, err = c.listed(ctx, kind, match)
				return classify(err)
			})
		})
		if err != nil {
			return false, "", err
		}
		if found {
			return true, "registered", nil
		}
		return false, "not registered yet", nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return nil
}

// listed pages through ListResources itself, for the reason kubeServerListed gives.
func (c *Client) listed(ctx context.Context, kind string, match func(types.Resource) bool) (bool, error) {
	req := proto.ListResourcesRequest{ResourceType: kind, Namespace: defaults.Namespace, Limit: int32(defaults.DefaultChunkSize)}
	for {
		resp, err := c.api.ListResources(ctx, req)
		if err != nil {
			return false, err
		}
		for _, r := range resp.Resources {
			if match(r) {
				return true, nil
			}
		}
		if resp.NextKey == "" || len(resp.Resources) == 0 {
			return false, nil
		}
		req.StartKey = resp.NextKey
	}
}
