package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// Error chains read as one sentence per problem.
func TestTidyErrorChains(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Resolve secrets: service unavailable: detect this machine's public IPv4 (set operator-ip to skip detection): detect operator public IPv4: no service gave one (set operator-ip to skip detection): http://127.0.0.1:1/ip: HTTP 500",
			"Resolve secrets: service unavailable: detect this machine's public IPv4: no service gave one (set operator-ip to skip detection): http://127.0.0.1:1/ip: HTTP 500"},
		{"Resolve secrets: log in to Infisical: log in to Infisical at https://i.example.com as client c1: HTTP 401",
			"Resolve secrets: log in to Infisical at https://i.example.com as client c1: HTTP 401"},
		{"configuration has 1 problem:\n  - scaleway-zone: value \"mars-1\" from env X is not a Scaleway zone",
			"configuration has 1 problem:\n  - scaleway-zone: value \"mars-1\" from env X is not a Scaleway zone"},
	}
	for _, tt := range tests {
		if got := tidy(tt.in); got != tt.want {
			t.Errorf("tidy(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// Without an identity and without a tsh profile the user is told what to
// run, not how the SDK failed to decode a profile.
func TestNoTshProfileSaysWhatToRun(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("TELEPORT_HOME", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := teleport.Connect(ctx, teleport.Config{Proxy: "127.0.0.1:1", DialTimeout: time.Second})
	if err == nil {
		t.Skip("connected without credentials")
	}
	got := tidy("Resolve secrets: connect to Teleport: " + err.Error())
	if !strings.Contains(got, "tsh login --proxy") || strings.Contains(got, "current-profile") {
		t.Errorf("raw: %v\ntidied: %s", err, got)
	}
}
