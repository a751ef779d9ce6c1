package emulator

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/golden"
)

// servedOps are the API operations the emulator answers. The extract holds
// exactly these, so adding a handler means adding its line here and running
// `go test ./internal/proxmox/emulator -run TestSchemaExtract -update` on a
// machine with the published API description.
var servedOps = []string{
	"GET /version",
	"POST /access/ticket",
	"GET /access/users", "POST /access/users",
	"GET /access/users/{userid}", "PUT /access/users/{userid}", "DELETE /access/users/{userid}",
	"GET /access/users/{userid}/token",
	"GET /access/users/{userid}/token/{tokenid}", "POST /access/users/{userid}/token/{tokenid}",
	"DELETE /access/users/{userid}/token/{tokenid}",
	"GET /access/acl", "PUT /access/acl",
	"PUT /access/password",
	"GET /nodes", "GET /nodes/{node}/status",
	"GET /nodes/{node}/network", "POST /nodes/{node}/network", "PUT /nodes/{node}/network",
	"DELETE /nodes/{node}/network",
	"GET /nodes/{node}/network/{iface}", "PUT /nodes/{node}/network/{iface}", "DELETE /nodes/{node}/network/{iface}",
	"GET /cluster/firewall/options", "PUT /cluster/firewall/options",
	"GET /cluster/firewall/rules", "POST /cluster/firewall/rules",
	"GET /cluster/firewall/rules/{pos}", "DELETE /cluster/firewall/rules/{pos}",
	"GET /cluster/firewall/ipset", "POST /cluster/firewall/ipset",
	"GET /cluster/firewall/ipset/{name}", "POST /cluster/firewall/ipset/{name}", "DELETE /cluster/firewall/ipset/{name}",
	"GET /cluster/firewall/ipset/{name}/{cidr}", "DELETE /cluster/firewall/ipset/{name}/{cidr}",
	"GET /nodes/{node}/firewall/options", "PUT /nodes/{node}/firewall/options",
	"GET /nodes/{node}/firewall/rules", "POST /nodes/{node}/firewall/rules",
	"GET /nodes/{node}/firewall/rules/{pos}", "DELETE /nodes/{node}/firewall/rules/{pos}",
	"GET /storage", "GET /storage/{storage}", "PUT /storage/{storage}",
	"GET /nodes/{node}/storage", "GET /nodes/{node}/storage/{storage}/status",
	"GET /nodes/{node}/storage/{storage}/content",
	"DELETE /nodes/{node}/storage/{storage}/content/{volume}",
	"POST /nodes/{node}/storage/{storage}/download-url", "POST /nodes/{node}/storage/{storage}/upload",
	"GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks/{upid}/log",
	"GET /cluster/resources", "GET /cluster/nextid",
	"GET /nodes/{node}/qemu", "POST /nodes/{node}/qemu", "DELETE /nodes/{node}/qemu/{vmid}",
	"GET /nodes/{node}/qemu/{vmid}/config", "POST /nodes/{node}/qemu/{vmid}/config",
	"PUT /nodes/{node}/qemu/{vmid}/config", "PUT /nodes/{node}/qemu/{vmid}/resize",
	"GET /nodes/{node}/qemu/{vmid}/status/current", "POST /nodes/{node}/qemu/{vmid}/status/start",
	"POST /nodes/{node}/qemu/{vmid}/status/stop", "POST /nodes/{node}/qemu/{vmid}/status/shutdown",
	"GET /nodes/{node}/qemu/{vmid}/agent/file-read", "POST /nodes/{node}/qemu/{vmid}/agent/exec",
	"GET /nodes/{node}/qemu/{vmid}/agent/exec-status",
}

// keptKeys are the facts about a parameter the validator needs. Prose
// (descriptions, type texts) is left behind on purpose: see apischema/README.md.
var keptKeys = map[string]bool{
	"type": true, "format": true, "enum": true, "optional": true, "pattern": true,
	"minimum": true, "maximum": true, "maxLength": true, "minLength": true, "requires": true,
	"alias": true, "keyAlias": true, "default_key": true,
}

// apidocPath finds the published API description: RAWKODE_CLOUD_PVE_APIDOC,
// else the shared fixtures folder beside the repository.
func apidocPath() string {
	if p := os.Getenv("RAWKODE_CLOUD_PVE_APIDOC"); p != "" {
		return p
	}
	for _, up := range []string{"../../../..", "../../../../..", "../../../../../.."} {
		p := filepath.Join(up, "shared", "fixtures", "proxmox", "pve-9.2-apidoc.json")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// TestSchemaExtract proves the embedded extract is exactly what the published
// API description says about the served operations (and rewrites it with
// -update). It needs the description, which is not part of the repository.
func TestSchemaExtract(t *testing.T) {
	path := apidocPath()
	if path == "" {
		t.Skip("published PVE API description not found (set RAWKODE_CLOUD_PVE_APIDOC to pve-9.2-apidoc.json)")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tree []map[string]any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	found := map[string]map[string]any{}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		p, _ := n["path"].(string)
		if info, ok := n["info"].(map[string]any); ok {
			for m, op := range info {
				found[m+" "+p] = op.(map[string]any)
			}
		}
		if kids, ok := n["children"].([]any); ok {
			for _, k := range kids {
				walk(k.(map[string]any))
			}
		}
	}
	for _, n := range tree {
		walk(n)
	}
	ops := append([]string(nil), servedOps...)
	sort.Strings(ops)
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, key := range ops {
		op, ok := found[key]
		if !ok {
			t.Fatalf("%s is not in the published API description", key)
		}
		params, _ := op["parameters"].(map[string]any)
		props, _ := params["properties"].(map[string]any)
		entry := map[string]any{
			"op":         key,
			"params":     keepFacts(props),
			"additional": params["additionalProperties"],
		}
		for _, k := range []string{"permissions", "allowtoken", "protected"} {
			if v, ok := op[k]; ok {
				entry[k] = stripDescriptions(v)
			}
		}
		line, err := json.Marshal(entry)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		if i < len(ops)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("]\n")
	golden.Compare(t, filepath.Join("apischema", "pve-9.2-params.json"), buf.Bytes())
}

func keepFacts(props map[string]any) map[string]any {
	out := map[string]any{}
	for name, v := range props {
		p, ok := v.(map[string]any)
		if !ok {
			continue
		}
		kept := map[string]any{}
		for k, val := range p {
			if !keptKeys[k] {
				continue
			}
			if sub, ok := val.(map[string]any); ok && k == "format" {
				val = keepFacts(sub)
			}
			kept[k] = val
		}
		out[name] = kept
	}
	return out
}

func stripDescriptions(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, val := range m {
		if k != "description" {
			out[k] = val
		}
	}
	return out
}
