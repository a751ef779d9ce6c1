package cloudflare

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEmulatorWire checks the raw v4 shapes the SDK and other tools rely on.
func TestEmulatorWire(t *testing.T) {
	t.Parallel()
	emu := NewEmulator(EmulatorOptions{Token: "tok", Records: []Record{
		{Name: "www", Type: "A", Content: "192.0.2.1"},
		{Name: "alias.example.com", Type: "CNAME", Content: "www.example.com", TTL: 300},
	}})
	t.Cleanup(emu.Close)
	recs := emu.Records()
	if recs[0].Name != "www.example.com" || recs[0].TTL != 1 {
		t.Fatalf("seeded relative name not completed: %+v", recs[0])
	}
	zone := emu.URL() + "/zones/" + DefaultZoneID + "/dns_records"
	tests := []struct {
		name, method, url, token, body string
		status                         int
		code                           int // first error code; 0 for success
	}{
		{name: "list", method: "GET", url: zone + "?name.exact=WWW.example.com&type=A&per_page=5", token: "tok", status: 200},
		{name: "no auth header", method: "GET", url: zone, status: 400, code: 6003},
		{name: "wrong token", method: "GET", url: zone, token: "nope", status: 403, code: 9109},
		{name: "unknown zone", method: "GET", url: emu.URL() + "/zones/abc/dns_records", token: "tok", status: 404, code: 7003},
		{name: "unknown route", method: "GET", url: emu.URL() + "/user/tokens", token: "tok", status: 404, code: 7000},
		{name: "per_page too small", method: "GET", url: zone + "?per_page=1", token: "tok", status: 400, code: 1004},
		{name: "bad A content", method: "POST", url: zone, token: "tok", body: `{"name":"x.example.com","type":"A","content":"nope","ttl":1}`, status: 400, code: 9005},
		{name: "bad TTL", method: "POST", url: zone, token: "tok", body: `{"name":"x.example.com","type":"A","content":"192.0.2.1","ttl":5}`, status: 400, code: 9021},
		{name: "identical record", method: "POST", url: zone, token: "tok", body: `{"name":"www.example.com","type":"A","content":"192.0.2.1","ttl":1}`, status: 400, code: 81058},
		{name: "A next to CNAME", method: "POST", url: zone, token: "tok", body: `{"name":"alias.example.com","type":"A","content":"192.0.2.1","ttl":1}`, status: 400, code: 81053},
		{name: "malformed body", method: "POST", url: zone, token: "tok", body: `{`, status: 400, code: 9207},
		{name: "put missing", method: "PUT", url: zone + "/0123", token: "tok", body: `{"name":"x","type":"A","content":"192.0.2.1","ttl":1}`, status: 404, code: 81044},
		{name: "delete missing", method: "DELETE", url: zone + "/0123", token: "tok", status: 404, code: 81044},
		{name: "get missing", method: "GET", url: zone + "/0123", token: "tok", status: 404, code: 81044},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			var env struct {
				Success    *bool           `json:"success"`
				Errors     []wireError     `json:"errors"`
				Messages   []any           `json:"messages"`
				Result     json.RawMessage `json:"result"`
				ResultInfo map[string]int  `json:"result_info"`
			}
			if err := json.Unmarshal(raw, &env); err != nil {
				t.Fatalf("body %s: %v", raw, err)
			}
			if res.StatusCode != tc.status || env.Success == nil || *env.Success != (tc.code == 0) || env.Messages == nil {
				t.Fatalf("status %d body %s; want %d", res.StatusCode, raw, tc.status)
			}
			if tc.code != 0 {
				if len(env.Errors) == 0 || env.Errors[0].Code != tc.code || string(env.Result) != "null" {
					t.Fatalf("body %s; want error code %d and null result", raw, tc.code)
				}
				return
			}
			for _, k := range []string{"page", "per_page", "count", "total_count", "total_pages"} {
				if _, ok := env.ResultInfo[k]; !ok {
					t.Fatalf("result_info lacks %s: %s", k, raw)
				}
			}
			var result []map[string]any
			if err := json.Unmarshal(env.Result, &result); err != nil || len(result) != 1 || result[0]["content"] != "192.0.2.1" {
				t.Fatalf("result %s", env.Result)
			}
			for _, k := range []string{"id", "name", "type", "content", "proxiable", "proxied", "ttl", "settings", "meta", "comment", "tags", "created_on", "modified_on"} {
				if _, ok := result[0][k]; !ok {
					t.Fatalf("record lacks %q: %s", k, env.Result)
				}
			}
		})
	}
}

func TestEmulatorLatency(t *testing.T) {
	t.Parallel()
	emu := NewEmulator(EmulatorOptions{})
	t.Cleanup(emu.Close)
	emu.Faults().SetLatency(FaultListRecords, 50*time.Millisecond)
	req, _ := http.NewRequest("GET", emu.URL()+"/zones/"+DefaultZoneID+"/dns_records", nil)
	req.Header.Set("Authorization", "Bearer "+emu.Token())
	begin := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if took := time.Since(begin); took < 50*time.Millisecond || res.StatusCode != 200 {
		t.Fatalf("status %d after %s; want 200 after at least 50ms", res.StatusCode, took)
	}
}
