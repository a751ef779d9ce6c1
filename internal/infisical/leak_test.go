package infisical

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// goroutinesIn counts live goroutines whose stack mentions fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

// TestCloseStopsGoroutines is deliberately not parallel: it counts goroutines
// process-wide, and top-level sequential tests run while every parallel test
// is still parked, so nobody else's client is alive to be counted.
func TestCloseStopsGoroutines(t *testing.T) {
	const refresher = "go-sdk.(*InfisicalClient).handleTokenLifeCycle"
	const sdkCalls = "infisical/go-sdk"
	const httpConns = "net/http.(*persistConn)"
	baseRefresh, baseSDK, baseConns := goroutinesIn(refresher), goroutinesIn(sdkCalls), goroutinesIn(httpConns)

	e := NewEmulator(EmulatorOptions{
		Identities: []Identity{{ClientID: testClientID, ClientSecret: testClientSecret}},
		Projects:   []Project{{ID: testProject}},
	})
	defer e.Close()
	c := connect(t, testConfig(e))
	if err := c.Write(ctxTimeout(t, 5*time.Second), "/a/b", map[string]string{"k": "v"}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := goroutinesIn(refresher); got != baseRefresh+1 {
		t.Fatalf("refresh goroutines after Connect = %d, want %d", got, baseRefresh+1)
	}

	c.Close()
	c.Close() // idempotent
	testwait.For(t, 5*time.Second, "the token-refresh goroutine to stop", func() bool {
		return goroutinesIn(refresher) == baseRefresh
	})
	e.Close()
	testwait.For(t, 5*time.Second, "every SDK call and HTTP connection goroutine to end", func() bool {
		return goroutinesIn(sdkCalls) == baseSDK && goroutinesIn(httpConns) == baseConns
	})
}

// TestConnectFailureLeaksNothing: a failed login must not leave the refresh
// goroutine behind (Connect owns it until it returns a Client).
func TestConnectFailureLeaksNothing(t *testing.T) {
	const refresher = "go-sdk.(*InfisicalClient).handleTokenLifeCycle"
	base := goroutinesIn(refresher)
	e := NewEmulator(EmulatorOptions{})
	defer e.Close()
	cfg := testConfig(e)
	if _, err := Connect(ctxTimeout(t, 5*time.Second), cfg); err == nil {
		t.Fatal("Connect with an unknown identity succeeded")
	}
	testwait.For(t, 5*time.Second, "the token-refresh goroutine to stop", func() bool {
		return goroutinesIn(refresher) == base
	})
}
