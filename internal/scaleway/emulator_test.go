package scaleway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// rawDo sends one request to the emulator without the SDK, so the bodies
// can be compared with the recording key by key.
func rawDo(t *testing.T, method, url, token string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, url, b, err)
	}
	return resp.StatusCode, m
}

func lifecycleState(m map[string]any) string {
	install, _ := m["install"].(map[string]any)
	ips, _ := m["ips"].([]any)
	return m["status"].(string) + "/" + install["status"].(string) + "/ips=" + map[bool]string{true: "yes", false: "no"}[len(ips) > 0]
}

func fixtureState(t *testing.T, it interaction) string {
	return lifecycleState(decodeObject(t, it.ResponseBody))
}

// TestEmulatorMatchesRecording drives the emulator with the recorded
// requests and compares every body (keys, nested install and IP keys,
// error bodies) and the status sequence with the real API's.
func TestEmulatorMatchesRecording(t *testing.T) {
	t.Parallel()
	rec := loadFixture(t)
	fx := rec.Interactions
	// Each lifecycle step waits for the test to have looked at it.
	steps, ack, stop := make(chan Server), make(chan struct{}), make(chan struct{})
	e := NewEmulator(EmulatorOptions{Delays: &Delays{}, OnTransition: func(s Server) {
		select {
		case steps <- s:
			<-ack
		case <-stop:
		}
	}})
	t.Cleanup(e.Close)
	t.Cleanup(func() { close(stop) })
	base, tok := e.URL()+"/baremetal/v1/zones/"+fxZone, SandboxSecretKey

	st, osBody := rawDo(t, "GET", base+"/os/"+UbuntuOSID, tok, nil)
	if st != 200 {
		t.Fatalf("GET os: %d", st)
	}
	assertSameKeys(t, "OS", osBody, decodeObject(t, fx[0].ResponseBody))
	for _, k := range []string{"ssh", "user", "password"} {
		assertSameKeys(t, "OS."+k, osBody[k].(map[string]any), decodeObject(t, fx[0].ResponseBody)[k].(map[string]any))
	}
	_, offer := rawDo(t, "GET", base+"/offers/"+CloudInitOfferID, tok, nil)
	assertSameKeys(t, "offer", offer, decodeObject(t, fx[1].ResponseBody))

	// The recorded CreateServer request, verbatim (same project, OS, offer, key).
	st, created := rawDo(t, "POST", base+"/servers", tok, fx[2].RequestBody)
	if st != 200 {
		t.Fatalf("POST recorded create: %d %v", st, created)
	}
	wantCreated := decodeObject(t, fx[2].ResponseBody)
	assertSameKeys(t, "created server", created, wantCreated)
	assertSameKeys(t, "created install", created["install"].(map[string]any), wantCreated["install"].(map[string]any))
	if created["user_data"] != wantCreated["user_data"] {
		t.Errorf("user_data = %v, want the request's base64 %v", created["user_data"], wantCreated["user_data"])
	}

	id := created["id"].(string)
	seen := []string{lifecycleState(created)}
	var done map[string]any
	for done == nil {
		select {
		case <-steps:
		case <-time.After(5 * time.Second):
			t.Fatalf("lifecycle stalled after %v", seen)
		}
		_, got := rawDo(t, "GET", base+"/servers/"+id, tok, nil)
		seen = append(seen, lifecycleState(got))
		if got["install"].(map[string]any)["status"] == "completed" {
			done = got
		}
		ack <- struct{}{}
	}
	var want []string
	for _, i := range []int{2, 3, 4, 5, 6} {
		want = append(want, fixtureState(t, fx[i]))
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("status sequence:\n got  %v\n want %v", seen, want)
	}
	wantDone := decodeObject(t, fx[6].ResponseBody)
	assertSameKeys(t, "completed server", done, wantDone)
	assertSameKeys(t, "IP", done["ips"].([]any)[0].(map[string]any), wantDone["ips"].([]any)[0].(map[string]any))
	if done["domain"] == "" || done["ping_status"] != "ping_status_up" {
		t.Errorf("completed server lacks domain/ping: %v %v", done["domain"], done["ping_status"])
	}

	st, deleting := rawDo(t, "DELETE", base+"/servers/"+id, tok, nil)
	if st != 200 || deleting["status"] != "deleting" {
		t.Fatalf("DELETE: %d %v", st, deleting["status"])
	}
	assertSameKeys(t, "deleting server", deleting, decodeObject(t, fx[7].ResponseBody))
	var gone map[string]any
	testwait.For(t, 5*time.Second, "the deleted server to answer 404", func() bool {
		st, body := rawDo(t, "GET", base+"/servers/"+id, tok, nil)
		if st == 404 {
			gone = body
		}
		return gone != nil
	})
	if !jsonEqual(gone, decodeObject(t, fx[8].ResponseBody)) {
		t.Errorf("404 body = %v, want %s", gone, fx[8].ResponseBody)
	}

	// The recorded 503 for user data on an offer without cloud-init.
	st, body := rawDo(t, "POST", base+"/servers", tok, fx[9].RequestBody)
	if st != fx[9].Status || !jsonEqual(body, decodeObject(t, fx[9].ResponseBody)) {
		t.Errorf("incompatible create = %d %v, want %d %s", st, body, fx[9].Status, fx[9].ResponseBody)
	}

	st, keys := rawDo(t, "GET", e.URL()+"/iam/v1alpha1/ssh-keys?project_id="+SeedProjectID, tok, nil)
	list, _ := keys["ssh_keys"].([]any)
	if st != 200 || len(list) != 1 {
		t.Fatalf("list SSH keys = %d %v", st, keys)
	}
	assertSameKeys(t, "SSH key", list[0].(map[string]any), decodeObject(t, fx[10].ResponseBody))
	st, nf := rawDo(t, "GET", e.URL()+"/iam/v1alpha1/ssh-keys/d563fb19-f8cf-4dec-be61-66e7a0fc1c24", tok, nil)
	if st != 404 || !jsonEqual(nf, decodeObject(t, fx[11].ResponseBody)) {
		t.Errorf("IAM 404 = %d %v, want %s", st, nf, fx[11].ResponseBody)
	}
	if len(e.Servers()) != 0 {
		t.Errorf("inventory after delete: %+v", e.Servers())
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestEmulatorAuth checks the 401 shape and that the token is never echoed.
func TestEmulatorAuth(t *testing.T) {
	t.Parallel()
	const secret = "7a3f0c2e-9b1d-4e5f-8a6b-0c1d2e3f4a5b"
	e := NewEmulator(EmulatorOptions{SecretKey: secret})
	t.Cleanup(e.Close)
	tests := []struct {
		name, token, reason string
	}{
		{"missing", "", "invalid_argument"},
		{"wrong", "11111111-2222-4333-8444-555555555555", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, body := rawDo(t, "GET", e.URL()+"/baremetal/v1/zones/fr-par-2/servers", tt.token, nil)
			if st != 401 || body["type"] != "denied_authentication" || body["reason"] != tt.reason || body["method"] != "api_key" {
				t.Errorf("got %d %v", st, body)
			}
			b, _ := json.Marshal(body)
			if tt.token != "" && strings.Contains(string(b), tt.token) {
				t.Errorf("401 body echoes the token")
			}
		})
	}
	if st, _ := rawDo(t, "GET", e.URL()+"/baremetal/v1/zones/fr-par-2/servers", secret, nil); st != 200 {
		t.Errorf("right token: %d", st)
	}
}

// TestEmulatorOtherProjectForbidden checks the 403 permissions_denied shape.
func TestEmulatorOtherProjectForbidden(t *testing.T) {
	t.Parallel()
	e := NewEmulator(EmulatorOptions{})
	t.Cleanup(e.Close)
	st, body := rawDo(t, "GET", e.URL()+"/baremetal/v1/zones/fr-par-2/servers?project_id=11111111-2222-4333-8444-555555555555", SandboxSecretKey, nil)
	if st != 403 || body["type"] != "permissions_denied" {
		t.Errorf("got %d %v", st, body)
	}
}

// TestEmulatorCloseReleasesHang makes sure Close never deadlocks on a
// request held by a hang fault, and that hooks stop with it.
func TestEmulatorCloseReleasesHang(t *testing.T) {
	t.Parallel()
	e := NewEmulator(EmulatorOptions{})
	e.Faults().Set(FaultGetServer, faultOf("hang"))
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", e.URL()+"/baremetal/v1/zones/fr-par-2/servers/x", nil)
		req.Header.Set("X-Auth-Token", SandboxSecretKey)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	testwait.For(t, 5*time.Second, "request to hang", func() bool { return e.Counters().Get("get-server") == 1 })
	e.Close()
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("hanging request not released by Close")
	}
}
