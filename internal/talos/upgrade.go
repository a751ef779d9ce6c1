package talos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/client"

	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// ReadConfig reads the machine config in effect on a configured node
// (apid's Read of /system/state/config.yaml, which os:admin may do). Day-two
// changes start from it, so that a re-apply changes only what it means to
// and never reverts an earlier upgrade. The bytes hold the node's secrets.
func (c *Client) ReadConfig(ctx context.Context, ip string, talosconfig []byte) ([]byte, error) {
	var out []byte
	err := c.secureCall(ctx, ip, talosconfig, func(actx context.Context, cl *client.Client) error {
		r, err := cl.Read(actx, ConfigPath)
		if err != nil {
			return grpcErr(fmt.Sprintf("read the machine config of %s", ip), err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return grpcErr(fmt.Sprintf("read the machine config of %s", ip), err)
		}
		if len(b) == 0 {
			return errors.New("read the machine config of " + ip + ": empty")
		}
		out = b
		return nil
	})
	return out, err
}

// Upgrade asks the node to upgrade to the installer image, keeping its data
// (preserve). The answer is only an acknowledgement: WaitUpgraded watches
// the node go down and come back with the new version.
func (c *Client) Upgrade(ctx context.Context, ip string, talosconfig []byte, image string) error {
	return c.secureCall(ctx, ip, talosconfig, func(actx context.Context, cl *client.Client) error {
		_, err := cl.UpgradeWithOptions(actx, client.WithUpgradeImage(image), client.WithUpgradePreserve(true))
		if err != nil {
			return grpcErr(fmt.Sprintf("upgrade %s to %s", ip, image), err)
		}
		return nil
	})
}

// WaitUpgraded waits until the node answers with Talos version and every
// service in want is Running and healthy. Progress states name what is
// still missing.
func (c *Client) WaitUpgraded(ctx context.Context, ip string, talosconfig []byte, version string, want []string, opts wait.Options) error {
	what := fmt.Sprintf("Talos %s with healthy services on %s", version, ip)
	last, seen := "", ""
	return wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		info, err := c.Inspect(ctx, ip, talosconfig)
		switch {
		case err != nil && ctx.Err() != nil:
			// Cut short by the deadline: that says nothing about the node.
			return false, last, nil
		case err != nil:
			// Down to reboot, or on its way back: not yet. The version it
			// last answered with stays in the state: an upgrade that never
			// started ends with a probe that failed for another reason just
			// as often, and the operator needs to know it never moved.
			last = "unreachable (rebooting)"
			if seen != "" {
				last += ", last answered as Talos " + seen
			}
		case info.Version != version:
			seen = info.Version
			last = "still Talos " + info.Version
		case len(UnhealthyServices(info, want)) > 0:
			last = "Talos " + version + ", waiting for " + strings.Join(UnhealthyServices(info, want), ", ")
		default:
			return true, "Talos " + version + ", services healthy", nil
		}
		return false, last, nil
	})
}

// UnhealthyServices lists the services of want that are not Running and
// healthy, as "<id> <state>".
func UnhealthyServices(info NodeInfo, want []string) []string {
	var bad []string
	seen := map[string]bool{}
	for _, s := range info.Services {
		if !slices.Contains(want, s.ID) {
			continue
		}
		seen[s.ID] = true
		if s.State != "Running" || !s.Healthy {
			bad = append(bad, s.ID+" "+strings.ToLower(s.State))
		}
	}
	for _, id := range want {
		if !seen[id] {
			bad = append(bad, id+" missing")
		}
	}
	return bad
}
