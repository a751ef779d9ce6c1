package talos

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// EtcdSnapshot streams a snapshot of etcd from the node (Talos's own
// EtcdSnapshot API: a consistent bbolt copy with its hash appended). The
// whole snapshot is held in memory: it is uploaded with a known size.
func (c *Client) EtcdSnapshot(ctx context.Context, ip string, talosconfig []byte) ([]byte, error) {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = c.policy().Do(ctx, func(ctx context.Context) error {
		buf.Reset()
		cl, err := c.secureClient(ctx, ip, m)
		if err != nil {
			return err
		}
		defer cl.Close()
		stream, err := cl.MachineClient.EtcdSnapshot(ctx, &machine.EtcdSnapshotRequest{})
		if err != nil {
			return grpcErr(fmt.Sprintf("etcd snapshot on %s", ip), err)
		}
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return grpcErr(fmt.Sprintf("etcd snapshot on %s", ip), err)
			}
			buf.Write(msg.GetBytes())
		}
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EtcdRecover uploads a snapshot to a node whose etcd waits for the
// bootstrap; BootstrapRecover then starts etcd from it.
func (c *Client) EtcdRecover(ctx context.Context, ip string, talosconfig, snapshot []byte) error {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return err
	}
	return c.policy().Do(ctx, func(ctx context.Context) error {
		cl, err := c.secureClient(ctx, ip, m)
		if err != nil {
			return err
		}
		defer cl.Close()
		stream, err := cl.MachineClient.EtcdRecover(ctx)
		if err != nil {
			return grpcErr(fmt.Sprintf("upload etcd snapshot to %s", ip), err)
		}
		for rest := snapshot; len(rest) > 0; {
			n := min(len(rest), 1<<20)
			if err := stream.Send(&common.Data{Bytes: rest[:n]}); err != nil {
				break // the real error comes with CloseAndRecv
			}
			rest = rest[n:]
		}
		if _, err := stream.CloseAndRecv(); err != nil {
			return grpcErr(fmt.Sprintf("upload etcd snapshot to %s", ip), err)
		}
		return nil
	})
}

// BootstrapRecover bootstraps etcd from the snapshot EtcdRecover uploaded,
// waiting (like Bootstrap) until etcd is ready for it.
func (c *Client) BootstrapRecover(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return err
	}
	return wait.Until(ctx, "etcd recovery on "+ip, opts, func(ctx context.Context) (bool, string, error) {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return false, "", err
		}
		defer cl.Close()
		err = cl.Bootstrap(actx, &machine.BootstrapRequest{RecoverEtcd: true})
		switch status.Code(err) {
		case codes.OK:
			return true, "recovered from snapshot", nil
		case codes.AlreadyExists:
			return true, "already bootstrapped", nil
		default:
			return false, "", grpcErr(fmt.Sprintf("bootstrap etcd from snapshot on %s", ip), err)
		}
	})
}
