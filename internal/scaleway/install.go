package scaleway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/scaleway/scaleway-sdk-go/api/baremetal/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// InstallSpec is the OS install of a server that was ordered without one.
type InstallSpec struct {
	OSID      string
	Hostname  string
	SSHKeyIDs []string
}

// SetUserData replaces the cloud-init user data a server carries. The API
// hands it to the server at its next install and returns it with every
// GET, so user data holding a secret must be overwritten (ClearUserData)
// once the server has used it. PATCH is idempotent: retried like a GET.
func (c *Client) SetUserData(ctx context.Context, id string, data []byte) error {
	ud := append([]byte(nil), data...)
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		_, err := c.bm.UpdateServer(&baremetal.UpdateServerRequest{Zone: c.zone, ServerID: id, UserData: &ud}, scw.WithContext(ctx))
		return classify(err, ra)
	})
	if err != nil {
		return fmt.Errorf("set the user data of server %s: %w", id, err)
	}
	return nil
}

// ClearedUserData replaces user data that carried a secret. A harmless
// cloud-config rather than an empty value: what the API makes of an empty
// user_data is not documented, what it makes of a document is.
var ClearedUserData = []byte("#cloud-config\n# cleared by rawkode-cloud once the node had stored its configuration\n{}\n")

// ClearUserData overwrites the server's user data with ClearedUserData.
func (c *Client) ClearUserData(ctx context.Context, id string) error {
	return c.SetUserData(ctx, id, ClearedUserData)
}

// InstallServer starts the OS install of a delivered server with the user
// data it carries. A lost answer is resolved by reading the server: an
// install in progress (or done) is ours, since nobody else installs it.
func (c *Client) InstallServer(ctx context.Context, id string, spec InstallSpec) error {
	req := &baremetal.InstallServerRequest{
		Zone: c.zone, ServerID: id, OsID: spec.OSID, Hostname: spec.Hostname, SSHKeyIDs: spec.SSHKeyIDs,
	}
	err := c.policy.Do(ctx, func(ctx context.Context) error {
		ctx, ra := withRetryAfterSlot(ctx)
		_, err := c.bm.InstallServer(req, scw.WithContext(ctx))
		if err == nil {
			return nil
		}
		var re *scw.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusPreconditionFailed {
			// Already installing: an earlier attempt of ours got through.
			if srv, gerr := c.getOnce(ctx, id, ra); gerr == nil && srv.Install != nil &&
				(srv.Install.Status == baremetal.ServerInstallStatusToInstall || srv.Install.Status == baremetal.ServerInstallStatusInstalling) {
				return nil
			}
			return retry.Permanent(err)
		}
		return classify(err, ra)
	})
	if err != nil {
		return fmt.Errorf("install server %s (OS %s): %w", id, spec.OSID, err)
	}
	return nil
}

// SetTags replaces a server's tags (PATCH; idempotent, retried like a GET).
// Day-two state that must outlive this process — a break-glass opening's
// end — is kept on the server this way, where any later run finds it.
func (c *Client) SetTags(ctx context.Context, id string, tags []string) error {
	t := append([]string{}, tags...)
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		_, err := c.bm.UpdateServer(&baremetal.UpdateServerRequest{Zone: c.zone, ServerID: id, Tags: &t}, scw.WithContext(ctx))
		return classify(err, ra)
	})
	if err != nil {
		return fmt.Errorf("set the tags of server %s: %w", id, err)
	}
	return nil
}
