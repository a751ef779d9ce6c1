package scaleway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// fixturePath is the recorded real traffic, relative to this package's
// directory (internal/scaleway → repository root → ../shared).
var fixturePath = filepath.Join("..", "..", "..", "shared", "fixtures", "scaleway", "elastic-metal-recorded.json")

type interaction struct {
	Note         string          `json:"note"`
	Method       string          `json:"method"`
	Path         string          `json:"path"`
	Query        string          `json:"query"`
	RequestBody  json.RawMessage `json:"request_body"`
	Status       int             `json:"status"`
	ResponseBody json.RawMessage `json:"response_body"`
}

type recording struct {
	Interactions []interaction `json:"interactions"`
}

// Fixture identities (from the recording).
const (
	fxZone     = "fr-par-2"
	fxProject  = "d3520a52-2c75-4ba0-bda8-82dd087f07f2"
	fxServerID = "ce3cf028-f2af-4f73-b7a1-d36c89698e23"
	fxIPv4     = "195.154.100.190"
)

func loadFixture(t *testing.T) recording {
	t.Helper()
	b, err := os.ReadFile(fixturePath)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("recorded Scaleway traffic not found at %s (expected ../shared/fixtures next to the repository); skipping", fixturePath)
	}
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var rec recording
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return rec
}

// replay serves recorded interactions: each request gets the next unused
// recording for its method+path; once they are used up, the last one repeats
// (the real API repeated "installing" for ~70 polls).
type replay struct {
	srv *emulator.HTTPServer

	mu     sync.Mutex
	queues map[string][]interaction
	last   map[string]interaction
	bodies map[string][]json.RawMessage // request bodies per method+path
	calls  map[string]int
}

func newReplay(t *testing.T, rec recording, pick func(i int, it interaction) bool) *replay {
	t.Helper()
	r := &replay{queues: map[string][]interaction{}, last: map[string]interaction{},
		bodies: map[string][]json.RawMessage{}, calls: map[string]int{}}
	for i, it := range rec.Interactions {
		if pick(i, it) {
			k := it.Method + " " + it.Path
			r.queues[k] = append(r.queues[k], it)
		}
	}
	r.srv = emulator.StartHTTP(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replay) serve(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("X-Auth-Token") == "" {
		emulator.WriteJSON(w, http.StatusUnauthorized, wireMessage{Message: "missing X-Auth-Token"})
		return
	}
	k := req.Method + " " + req.URL.Path
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.calls[k]++
	if len(body) > 0 {
		r.bodies[k] = append(r.bodies[k], body)
	}
	it, ok := r.last[k]
	if q := r.queues[k]; len(q) > 0 {
		it, ok = q[0], true
		r.queues[k] = q[1:]
		r.last[k] = it
	}
	r.mu.Unlock()
	if !ok {
		emulator.WriteJSON(w, http.StatusNotImplemented, wireMessage{Message: "not in the recording: " + k})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(it.Status)
	_, _ = w.Write(it.ResponseBody)
}

func (r *replay) count(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[k]
}

func (r *replay) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{AccessKey: SandboxAccessKey, SecretKey: SandboxSecretKey, ProjectID: fxProject,
		Zone: fxZone, APIURL: r.srv.URL()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func fastWait(states *[]string) wait.Options {
	return wait.Options{Interval: 2 * time.Millisecond, OnState: func(s string) { *states = append(*states, s) }}
}

// TestReplayLifecycle runs the adapter against the recorded real API: the
// compatibility check, the one CreateServer call, the real status sequence
// and the delete down to the recorded 404.
func TestReplayLifecycle(t *testing.T) {
	t.Parallel()
	rec := loadFixture(t)
	r := newReplay(t, rec, func(i int, it interaction) bool { return i <= 8 })
	c := r.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := c.CheckCompatibility(ctx, CloudInitOfferID, UbuntuOSID); err != nil {
		t.Fatalf("CheckCompatibility on the recorded offer/OS: %v", err)
	}
	created, err := c.CreateServer(ctx, ServerSpec{
		Name: "TestAccServer_CloudInit", Description: "test a description", OfferID: CloudInitOfferID,
		OSID: UbuntuOSID, SSHKeyIDs: []string{SeedSSHKeyID}, UserData: []byte("#cloud-config\n"),
		Tags: []string{"terraform-test"},
	})
	if err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	if created.ID != fxServerID || created.Status != "ordered" || created.InstallStatus != "to_install" || created.IPv4 != "" {
		t.Fatalf("created = %+v, want the recorded ordered/to_install server without IP", created)
	}

	var states []string
	srv, err := c.WaitReady(ctx, created.ID, fastWait(&states))
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	want := []string{"ordered", "ready/to_install", "ready/installing", "ready/completed"}
	if !slices.Equal(states, want) {
		t.Errorf("states = %v, want %v", states, want)
	}
	if srv.IPv4 != fxIPv4 {
		t.Errorf("IPv4 = %q, want %q", srv.IPv4, fxIPv4)
	}

	states = nil
	if err := c.DeleteServer(ctx, created.ID, fastWait(&states)); err != nil {
		t.Fatalf("DeleteServer: %v", err)
	}
	if got := r.count("DELETE /baremetal/v1/zones/fr-par-2/servers/" + fxServerID); got != 1 {
		t.Errorf("DELETE calls = %d, want 1", got)
	}
	if !slices.Equal(states, []string{"deleted"}) {
		t.Errorf("delete states = %v, want [deleted]", states)
	}
}

// TestReplayCreateRequestShape checks that the SDK request we build has the
// same JSON keys as the recorded CreateServer request.
func TestReplayCreateRequestShape(t *testing.T) {
	t.Parallel()
	rec := loadFixture(t)
	r := newReplay(t, rec, func(i int, it interaction) bool { return i == 2 })
	c := r.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.CreateServer(ctx, ServerSpec{Name: "n", OfferID: CloudInitOfferID, OSID: UbuntuOSID,
		SSHKeyIDs: []string{SeedSSHKeyID}, UserData: []byte("#cloud-config\n"), Tags: ClusterTags("c")}); err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	bodies := r.bodies["POST /baremetal/v1/zones/fr-par-2/servers"]
	if len(bodies) != 1 {
		t.Fatalf("got %d create bodies, want 1", len(bodies))
	}
	got, want := decodeObject(t, bodies[0]), decodeObject(t, rec.Interactions[2].RequestBody)
	assertSameKeys(t, "create request", got, want)
	assertSameKeys(t, "create request install", got["install"].(map[string]any), want["install"].(map[string]any))
}

// TestReplayCloudInitUnsupported replays the recorded HTTP 503: permanent,
// never retried, and not an ambiguous create.
func TestReplayCloudInitUnsupported(t *testing.T) {
	t.Parallel()
	rec := loadFixture(t)
	r := newReplay(t, rec, func(i int, it interaction) bool { return i == 9 })
	c := r.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.CreateServer(ctx, ServerSpec{Name: "n", OfferID: NoCloudInitOfferID, OSID: UbuntuOSID,
		SSHKeyIDs: []string{SeedSSHKeyID}, UserData: []byte("#cloud-config\n")})
	if !errors.Is(err, ErrIncompatible) || errors.Is(err, ErrMaybeCreated) {
		t.Fatalf("err = %v, want ErrIncompatible and not ErrMaybeCreated", err)
	}
	assertPermanent(t, err)
	if n := r.count("POST /baremetal/v1/zones/fr-par-2/servers"); n != 1 {
		t.Errorf("POST calls = %d, want exactly 1 (never retry this 503)", n)
	}
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func keysOf(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func assertSameKeys(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if g, w := keysOf(got), keysOf(want); !slices.Equal(g, w) {
		t.Errorf("%s keys:\n got  %v\n want %v", what, g, w)
	}
}
