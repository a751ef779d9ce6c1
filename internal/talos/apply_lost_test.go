package talos

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// An insecure apply whose answer is lost after the node took the config
// (a loaded link, a client deadline) meets, on its retry, a node that has
// already rebooted into that config and wants a client certificate. That
// is the apply having worked, not a failure: WaitMTLS proves whose config
// it is.
func TestApplyWhoseAnswerWasLostCountsWhenTheNodeIsConfigured(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	var applies atomic.Int32
	loseFirstAnswer := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if method == "/machine.MachineService/ApplyConfiguration" && applies.Add(1) == 1 && err == nil {
			// The answer is lost; by the time the client retries, the
			// node is configured.
			deadline := time.Now().Add(10 * time.Second)
			for n.Mode() != ModeConfigured && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			return status.Error(codes.DeadlineExceeded, "context deadline exceeded")
		}
		return err
	})
	c := New(Options{Dialer: n.Dialer(), AttemptTimeout: 2 * time.Second, RetryInitial: 10 * time.Millisecond,
		DialOpts: []grpc.DialOption{loseFirstAnswer}})
	ctx := testCtx(t, 30*time.Second)
	rec := &recorder{}
	if err := c.WaitMaintenance(ctx, testPublicIP.String(), rec.opts()); err != nil {
		t.Fatalf("WaitMaintenance: %v", err)
	}
	if err := c.ApplyInsecure(ctx, testPublicIP.String(), fx.open); err != nil {
		t.Fatalf("ApplyInsecure after a lost answer: %v", err)
	}
	if got := applies.Load(); got < 1 {
		t.Fatalf("apply was never sent")
	}
	if err := c.WaitMTLS(ctx, testPublicIP.String(), fx.talosconfig, rec.opts()); err != nil {
		t.Fatalf("WaitMTLS: %v", err)
	}
}
