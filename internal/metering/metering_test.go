package metering_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/metering"
)

func TestTransportCountsByOperation(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(srv.Close)
	m := metering.New()
	c := &http.Client{Transport: m.Transport("scaleway", nil)}
	for _, p := range []string{
		"/baremetal/v1/zones/fr-par-2/servers/5e1c0a3e-9c5e-4c1e-9b1a-1d2c3b4a5f6e",
		"/baremetal/v1/zones/fr-par-2/servers/0b1c0a3e-9c5e-4c1e-9b1a-1d2c3b4a5f6e",
		"/baremetal/v1/zones/fr-par-2/servers",
	} {
		resp, err := c.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := m.Snapshot()["scaleway"]
	if got["GET servers/{id}"] != 2 || got["GET fr-par-2/servers"] != 1 {
		t.Fatalf("counts = %v", got)
	}
}

func TestNilMeterCountsNothing(t *testing.T) {
	t.Parallel()
	var m *metering.Meter
	m.Inc("x", "y")
	if m.Snapshot() != nil || m.DialOptions("x") != nil {
		t.Fatal("nil meter should be inert")
	}
	if m.Transport("x", http.DefaultTransport) != http.DefaultTransport {
		t.Fatal("nil meter should not wrap")
	}
}
