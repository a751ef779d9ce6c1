package infisical

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// rawCall sends one request to the emulator and decodes the JSON answer.
func rawCall(t *testing.T, method, url, token string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, url, err)
	}
	return res.StatusCode, res.Header, out
}

func rawLogin(t *testing.T, e *Emulator) map[string]any {
	t.Helper()
	status, _, body := rawCall(t, "POST", e.URL()+"/api/v1/auth/universal-auth/login", "",
		map[string]string{"clientId": testClientID, "clientSecret": testClientSecret})
	if status != 200 {
		t.Fatalf("login: %d %v", status, body)
	}
	return body
}

func TestEmulatorWireShapes(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{Secrets: []SeedSecret{{testProject, testEnv, "/a", "k", "v"}}})
	login := rawLogin(t, e)
	tok, _ := login["accessToken"].(string)
	for _, f := range []string{"accessToken", "expiresIn", "accessTokenMaxTTL", "tokenType"} {
		if _, ok := login[f]; !ok {
			t.Errorf("login answer lacks %s: %v", f, login)
		}
	}
	list := e.URL() + "/api/v3/secrets/raw?workspaceId=" + testProject + "&environment=" + testEnv + "&secretPath=/a"
	tests := []struct {
		name, method, url, token string
		body                     any
		wantStatus               int
		wantError                string // the "error" field of Infisical's error shape
	}{
		{name: "list", method: "GET", url: list, token: tok, wantStatus: 200},
		{name: "no token", method: "GET", url: list, wantStatus: 401, wantError: "UnauthorizedError"},
		{name: "bad token", method: "GET", url: list, token: "forged", wantStatus: 401, wantError: "UnauthorizedError"},
		{name: "wrong secret", method: "POST", url: e.URL() + "/api/v1/auth/universal-auth/login",
			body: map[string]string{"clientId": testClientID, "clientSecret": "nope"}, wantStatus: 401, wantError: "UnauthorizedError"},
		{name: "missing project", method: "GET", token: tok, wantStatus: 404, wantError: "NotFound",
			url: e.URL() + "/api/v3/secrets/raw?workspaceId=nope&environment=prod&secretPath=/"},
		{name: "validation", method: "GET", token: tok, wantStatus: 422, wantError: "ValidationFailure",
			url: e.URL() + "/api/v3/secrets/raw?environment=prod"},
		{name: "create in missing folder", method: "POST", token: tok, wantStatus: 404, wantError: "NotFound",
			url:  e.URL() + "/api/v3/secrets/raw/x",
			body: map[string]string{"workspaceId": testProject, "environment": testEnv, "secretPath": "/missing", "secretValue": "1"}},
		{name: "create existing", method: "POST", token: tok, wantStatus: 400, wantError: "BadRequest",
			url:  e.URL() + "/api/v3/secrets/raw/k",
			body: map[string]string{"workspaceId": testProject, "environment": testEnv, "secretPath": "/a", "secretValue": "1"}},
		{name: "unknown route", method: "GET", url: e.URL() + "/api/v9/nothing", wantStatus: 404, wantError: "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := rawCall(t, tt.method, tt.url, tt.token, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%v)", status, tt.wantStatus, body)
			}
			if tt.wantError == "" {
				return
			}
			if body["error"] != tt.wantError || body["message"] == nil {
				t.Errorf("error shape = %v, want error %q with a message", body, tt.wantError)
			}
			if tt.name != "unknown route" { // fastify's own 404 has no reqId
				if body["reqId"] == nil || body["statusCode"] != float64(tt.wantStatus) {
					t.Errorf("error shape lacks reqId/statusCode: %v", body)
				}
			}
		})
	}
}

func TestEmulatorTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{TokenTTL: 50 * time.Millisecond})
	tok, _ := rawLogin(t, e)["accessToken"].(string)
	url := e.URL() + "/api/v3/secrets/raw?workspaceId=" + testProject + "&environment=" + testEnv
	var body map[string]any
	testwait.For(t, 5*time.Second, "the token to expire", func() bool {
		var status int
		status, _, body = rawCall(t, "GET", url, tok, nil)
		return status == http.StatusForbidden
	})
	if body["error"] != "TokenError" {
		t.Errorf("expired token answer = %v, want TokenError", body)
	}
	status, _, _ := rawCall(t, "POST", e.URL()+"/api/v1/auth/token/renew", "", map[string]string{"accessToken": tok})
	if status != http.StatusForbidden {
		t.Errorf("renewing an expired token: status %d, want 403", status)
	}
}

func TestEmulatorRateLimitHeader(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{RetryAfter: 3 * time.Second})
	e.Faults().Set(FaultLogin, emulator.Fault{Kind: emulator.RateLimit, Times: 1})
	status, hdr, body := rawCall(t, "POST", e.URL()+"/api/v1/auth/universal-auth/login", "",
		map[string]string{"clientId": testClientID, "clientSecret": testClientSecret})
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") != "3" || body["error"] != "RateLimitExceeded" {
		t.Fatalf("rate limit answer = %d %q %v", status, hdr.Get("Retry-After"), body)
	}
	rawLogin(t, e) // the fault fired once only
}

func TestEmulatorInventory(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{Secrets: []SeedSecret{
		{testProject, testEnv, "/b", "z", "secret-z"},
		{testProject, testEnv, "a/", "y", "secret-y"},
	}})
	e.Put(testProject, "dev", "/", "x", "secret-x")
	want := []Secret{
		{testProject, "dev", "/", "x"},
		{testProject, testEnv, "/a", "y"},
		{testProject, testEnv, "/b", "z"},
	}
	got := e.Secrets()
	if len(got) != len(want) {
		t.Fatalf("Secrets() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Secrets()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if v, ok := e.Value(testProject, testEnv, "/a/", "y"); !ok || v != "secret-y" {
		t.Errorf("Value = %q, %v", v, ok)
	}
	if _, ok := e.Value(testProject, testEnv, "/a", "missing"); ok {
		t.Error("Value of a missing secret reported present")
	}
	// Recursive listing sees sub folders, each secret tagged with its path.
	tok, _ := rawLogin(t, e)["accessToken"].(string)
	_, _, body := rawCall(t, "GET", e.URL()+"/api/v3/secrets/raw?workspaceId="+testProject+
		"&environment="+testEnv+"&secretPath=/&recursive=true", tok, nil)
	secrets, _ := body["secrets"].([]any)
	if len(secrets) != 2 {
		t.Fatalf("recursive list = %v, want 2 secrets", body)
	}
	if p := secrets[0].(map[string]any)["secretPath"]; !strings.HasPrefix(p.(string), "/a") {
		t.Errorf("first secret path = %v, want /a", p)
	}
}
