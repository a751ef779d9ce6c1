package emulator

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// digest is PVE's optimistic-locking token: a hash of the configuration
// file, sent back with a change so that a concurrent edit is refused.
func digest(v any) string {
	h := sha1.Sum([]byte(fmt.Sprintf("%+v", v)))
	return hex.EncodeToString(h[:])
}

func rulesDigest(rules []*fwRule) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = fmt.Sprintf("%+v", *r)
	}
	return digest(strings.Join(parts, "|"))
}

func (st *state) rules(q *request) *[]*fwRule {
	if q.has("node") {
		return &st.nodeRules
	}
	return &st.clusterRules
}

func ruleJSON(r *fwRule, pos int, dg string) map[string]any {
	out := map[string]any{"pos": pos, "type": r.Type, "action": r.Action, "enable": b2i(r.Enable), "digest": dg, "ipversion": 4}
	for k, v := range map[string]string{"source": r.Source, "dest": r.Dest, "dport": r.Dport, "sport": r.Sport,
		"proto": r.Proto, "iface": r.Iface, "comment": r.Comment, "macro": r.Macro, "log": r.Log} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

func checkDigest(q *request, current string) *pveError {
	if q.has("digest") && q.p("digest") != current {
		return errf(http.StatusInternalServerError, "detected modified configuration - file changed by other user? Try again.")
	}
	return nil
}

func listRules(e *Emulator, q *request) (any, *pveError) {
	rules := *e.st.rules(q)
	dg := rulesDigest(rules)
	out := []any{}
	for i, r := range rules {
		out = append(out, ruleJSON(r, i, dg))
	}
	return out, nil
}

func getRule(e *Emulator, q *request) (any, *pveError) {
	rules := *e.st.rules(q)
	pos := atoi(q.p("pos"))
	if !q.has("pos") || pos >= len(rules) {
		return nil, errf(http.StatusInternalServerError, "no rule at position %s", q.p("pos"))
	}
	return ruleJSON(rules[pos], pos, rulesDigest(rules)), nil
}

func createRule(e *Emulator, q *request) (any, *pveError) {
	rules := e.st.rules(q)
	if perr := checkDigest(q, rulesDigest(*rules)); perr != nil {
		return nil, perr
	}
	typ, action := q.p("type"), q.p("action")
	if typ != "group" && action != "ACCEPT" && action != "DROP" && action != "REJECT" {
		return nil, &pveError{status: http.StatusBadRequest, reason: "Parameter verification failed.",
			errors: map[string]string{"action": fmt.Sprintf("value '%s' does not have a value in the enumeration 'ACCEPT, DROP, REJECT'", action)}}
	}
	if q.has("dport") && !q.has("proto") && !q.has("macro") {
		return nil, &pveError{status: http.StatusBadRequest, reason: "Parameter verification failed.",
			errors: map[string]string{"proto": "protocol required for option 'dport'"}}
	}
	r := &fwRule{Type: typ, Action: action, Source: q.p("source"), Dest: q.p("dest"), Dport: q.p("dport"),
		Sport: q.p("sport"), Proto: q.p("proto"), Iface: q.p("iface"), Comment: q.p("comment"), Macro: q.p("macro"),
		Log: q.p("log"), Enable: atoi(q.p("enable")) > 0}
	// PVE puts a new rule first unless told where.
	pos := 0
	if q.has("pos") {
		pos = min(atoi(q.p("pos")), len(*rules))
	}
	next := append([]*fwRule{}, (*rules)[:pos]...)
	next = append(next, r)
	*rules = append(next, (*rules)[pos:]...)
	return nil, nil
}

func deleteRule(e *Emulator, q *request) (any, *pveError) {
	rules := e.st.rules(q)
	if perr := checkDigest(q, rulesDigest(*rules)); perr != nil {
		return nil, perr
	}
	pos := atoi(q.p("pos"))
	if !q.has("pos") || pos >= len(*rules) {
		return nil, errf(http.StatusInternalServerError, "no rule at position %s", q.p("pos"))
	}
	*rules = append((*rules)[:pos:pos], (*rules)[pos+1:]...)
	return nil, nil
}

func optionsJSON(o fwOptions, node bool) map[string]any {
	out := map[string]any{"enable": b2i(o.enable)}
	if !node {
		out["policy_in"], out["policy_out"], out["policy_forward"] = o.policyIn, o.policyOut, o.policyFwd
		out["ebtables"] = 1
	}
	out["digest"] = digest(o)
	return out
}

func putOptions(o *fwOptions, q *request) *pveError {
	if perr := checkDigest(q, digest(*o)); perr != nil {
		return perr
	}
	for _, d := range splitList(q.p("delete")) {
		switch d {
		case "enable":
			o.enable = false
		case "policy_in":
			o.policyIn = "DROP"
		case "policy_out":
			o.policyOut = "ACCEPT"
		}
	}
	if q.has("enable") {
		o.enable = truthy(q.p("enable")) || atoi(q.p("enable")) > 0
	}
	if q.has("policy_in") {
		o.policyIn = q.p("policy_in")
	}
	if q.has("policy_out") {
		o.policyOut = q.p("policy_out")
	}
	if q.has("policy_forward") {
		o.policyFwd = q.p("policy_forward")
	}
	return nil
}

func init() {
	for _, base := range []string{"/cluster/firewall", "/nodes/{node}/firewall"} {
		handlers["GET "+base+"/rules"] = listRules
		handlers["POST "+base+"/rules"] = createRule
		handlers["GET "+base+"/rules/{pos}"] = getRule
		handlers["DELETE "+base+"/rules/{pos}"] = deleteRule
	}
	handlers["GET /cluster/firewall/options"] = func(e *Emulator, q *request) (any, *pveError) {
		return optionsJSON(e.st.clusterFW, false), nil
	}
	handlers["PUT /cluster/firewall/options"] = func(e *Emulator, q *request) (any, *pveError) {
		return nil, putOptions(&e.st.clusterFW, q)
	}
	handlers["GET /nodes/{node}/firewall/options"] = func(e *Emulator, q *request) (any, *pveError) {
		return optionsJSON(e.st.nodeFW, true), nil
	}
	handlers["PUT /nodes/{node}/firewall/options"] = func(e *Emulator, q *request) (any, *pveError) {
		return nil, putOptions(&e.st.nodeFW, q)
	}
}
