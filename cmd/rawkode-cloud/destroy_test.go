package main_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// A server looked for in the wrong zone is not "already gone": destroy
// finds it in its real zone, says so with the command that destroys it
// (exit 1), and that command, pasted, does.
func TestDestroyFindsAServerInAnotherZone(t *testing.T) {
	t.Parallel()
	w := serve(t)
	w.must(0, "provision", "--cluster-name", "zoned", "--output", "json")
	inv := w.inventory()
	if len(inv["servers"]) != 1 {
		t.Fatalf("servers: %v", inv["servers"])
	}
	id, _ := inv["servers"][0]["id"].(string)

	r := w.must(1, "destroy", "--server-id", id, "--scaleway-zone", "nl-ams-1", "--yes", "--output", "json")
	want := "rawkode-cloud destroy --config " + w.config + " --server-id " + id + " --scaleway-zone fr-par-2"
	if !strings.Contains(r.err, "is not in zone nl-ams-1 but in fr-par-2") || !strings.Contains(r.err, want) {
		t.Fatalf("stderr does not name the zone and the command:\n%s", r.err)
	}
	if len(w.inventory()["servers"]) != 1 {
		t.Fatal("a destroy that looked in the wrong zone removed something")
	}
	// Pasted as suggested (the world adds --config once more, harmlessly).
	cmd := regexp.MustCompile(`rawkode-cloud (destroy [^\n]*)`).FindStringSubmatch(r.err)[1]
	args := append(strings.Fields(cmd), "--yes", "--output", "json")
	r = w.must(0, args...)
	var last map[string]any
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	for _, l := range lines {
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) == nil && ev["type"] == "summary" {
			last = ev
		}
	}
	if last["message"] != "destroyed" || len(w.inventory()["servers"]) != 0 {
		t.Errorf("the suggested command did not destroy the server:\n%s\n%s", r.out, r.err)
	}
}
