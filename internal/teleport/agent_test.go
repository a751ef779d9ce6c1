package teleport

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// A kube server of the same name from another agent (an earlier cluster's,
// not expired yet, or one elsewhere) is no proof that this run's agent
// joined: only the run's label is.
func TestWaitKubeAgentNeedsTheRunsLabel(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	if err := e.RegisterForeign(testCluster, map[string]string{LabelRun: "an-earlier-run"}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, e, Config{})
	ours := map[string]string{LabelRun: "this-run"}

	agents, err := c.KubeAgents(testCtx(t, 5*time.Second), testCluster)
	if err != nil || len(agents) != 1 || agents[0].Labels[LabelRun] != "an-earlier-run" {
		t.Fatalf("KubeAgents = %+v, %v; want the foreign one", agents, err)
	}

	// Only the foreign one: the wait must not pass.
	var st states
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err = c.WaitKubeAgent(ctx, testCluster, ours, wait.Options{Interval: 5 * time.Millisecond, OnState: st.add})
	if !errors.Is(err, wait.ErrTimeout) {
		t.Fatalf("WaitKubeAgent with only a foreign registration = %v, want a timeout", err)
	}
	if !slices.Contains(st.list(), StateOthersOnly) {
		t.Fatalf("states %q do not say another agent holds the name", st.list())
	}

	// This run's agent joins: now it passes.
	token := mustToken(t, c, time.Minute)
	var st2 states
	opts := wait.Options{Interval: 5 * time.Millisecond, OnState: func(s string) {
		st2.add(s)
		if s == StateOthersOnly {
			if err := e.JoinWithLabels(token, testCluster, ours); err != nil {
				t.Errorf("Join: %v", err)
			}
		}
	}}
	if err := c.WaitKubeAgent(testCtx(t, 5*time.Second), testCluster, ours, opts); err != nil {
		t.Fatalf("WaitKubeAgent after this run's agent joined: %v", err)
	}
}

// Teleport lists a kube server until its heartbeat TTL has run out after
// its agent left, as the real backend does.
func TestKubeServerOutlivesItsAgentUntilTTL(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	e := newEmulator(t, EmulatorOptions{ServerTTL: time.Minute, Now: clk.Now})
	c := connect(t, e, Config{})
	token := mustToken(t, c, time.Hour)
	if err := e.JoinWithLabels(token, testCluster, map[string]string{LabelRun: "r1"}); err != nil {
		t.Fatal(err)
	}
	e.Leave(testCluster)
	if got := e.KubeServers(); len(got) != 0 {
		t.Fatalf("KubeServers after Leave = %v: an agent that left is not live", got)
	}
	agents, err := c.KubeAgents(testCtx(t, 5*time.Second), testCluster)
	if err != nil || len(agents) != 1 {
		t.Fatalf("within the TTL Teleport still lists it: got %+v, %v", agents, err)
	}
	clk.Advance(2 * time.Minute)
	agents, err = c.KubeAgents(testCtx(t, 5*time.Second), testCluster)
	if err != nil || len(agents) != 0 {
		t.Fatalf("after the TTL: got %+v, %v; want none", agents, err)
	}
}
