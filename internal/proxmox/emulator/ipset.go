package emulator

import (
	"net/http"
	"net/netip"
	"strings"
)

// The datacenter's IP sets (/cluster/firewall/ipset), as pve-firewall's
// API2/Firewall/IPSet.pm keeps them in cluster.fw: a set is a list of
// entries, newest first; an entry's cidr is stored normalised (host bits
// masked, and a single address without its /32 or /128), and an entry is
// removed only by that stored spelling — deleting "198.51.100.7/32" removes
// nothing and says nothing. pve-firewall materialises each set on the host
// as the kernel ipset PVEFW-0-<name>-v4 (compute_ipset_chain_name) while
// the datacenter firewall is on; IPSetAdmits is that view.

type ipsetEntry struct {
	cidr, comment string
	nomatch       bool
}

type ipset struct {
	comment string
	entries []ipsetEntry
}

func ipsetsDigest(st *state) string {
	var parts []string
	for _, name := range sortedKeys(st.ipsets) {
		parts = append(parts, name+":"+st.ipsets[name].comment)
	}
	return digest(strings.Join(parts, "|"))
}

func entriesDigest(s *ipset) string {
	parts := make([]string, len(s.entries))
	for i, e := range s.entries {
		parts[i] = e.cidr + "|" + e.comment + "|" + boolStr(e.nomatch)
	}
	return digest(strings.Join(parts, ";"))
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// normaliseCIDR is pve-firewall's clean_cidr followed by parse_ip_or_cidr.
func normaliseCIDR(v string) string {
	if pfx, err := netip.ParsePrefix(v); err == nil {
		pfx = pfx.Masked()
		if pfx.Bits() == pfx.Addr().BitLen() {
			return pfx.Addr().String()
		}
		return pfx.String()
	}
	return v // an address or an alias
}

func (st *state) ipset(name string) (*ipset, *pveError) {
	s, ok := st.ipsets[name]
	if !ok {
		return nil, errf(http.StatusInternalServerError, "no such IPSet '%s'", name)
	}
	return s, nil
}

func entryJSON(e ipsetEntry, dg string) map[string]any {
	out := map[string]any{"cidr": e.cidr, "digest": dg}
	if e.comment != "" {
		out["comment"] = e.comment
	}
	if e.nomatch {
		out["nomatch"] = 1
	}
	return out
}

func init() {
	handlers["GET /cluster/firewall/ipset"] = func(e *Emulator, q *request) (any, *pveError) {
		dg := ipsetsDigest(e.st)
		out := []any{}
		for _, name := range sortedKeys(e.st.ipsets) {
			m := map[string]any{"name": name, "digest": dg}
			if c := e.st.ipsets[name].comment; c != "" {
				m["comment"] = c
			}
			out = append(out, m)
		}
		return out, nil
	}
	handlers["POST /cluster/firewall/ipset"] = func(e *Emulator, q *request) (any, *pveError) {
		if perr := checkDigest(q, ipsetsDigest(e.st)); perr != nil {
			return nil, perr
		}
		name := q.p("name")
		if q.has("rename") {
			old, ok := e.st.ipsets[q.p("rename")]
			if !ok {
				return nil, paramErr("name", "IPSet '"+q.p("rename")+"' does not exist")
			}
			if _, taken := e.st.ipsets[name]; taken && name != q.p("rename") {
				return nil, paramErr("name", "IPSet '"+name+"' does already exist")
			}
			delete(e.st.ipsets, q.p("rename"))
			if q.has("comment") {
				old.comment = q.p("comment")
			}
			e.st.ipsets[name] = old
			return nil, nil
		}
		if _, ok := e.st.ipsets[name]; ok {
			return nil, paramErr("name", "IPSet '"+name+"' already exists")
		}
		e.st.ipsets[name] = &ipset{comment: q.p("comment")}
		return nil, nil
	}
	handlers["DELETE /cluster/firewall/ipset/{name}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.st.ipset(q.p("name"))
		if perr != nil {
			return nil, perr
		}
		if len(s.entries) > 0 && !q.flag("force", false) {
			return nil, errf(http.StatusInternalServerError, "IPSet '%s' is not empty", q.p("name"))
		}
		delete(e.st.ipsets, q.p("name"))
		return nil, nil
	}
	handlers["GET /cluster/firewall/ipset/{name}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.st.ipset(q.p("name"))
		if perr != nil {
			return nil, perr
		}
		dg := entriesDigest(s)
		out := []any{}
		for _, en := range s.entries {
			out = append(out, entryJSON(en, dg))
		}
		return out, nil
	}
	handlers["POST /cluster/firewall/ipset/{name}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.st.ipset(q.p("name"))
		if perr != nil {
			return nil, perr
		}
		cidr := normaliseCIDR(q.p("cidr"))
		for _, en := range s.entries {
			if en.cidr == cidr {
				return nil, paramErr("cidr", "address '"+cidr+"' already exists")
			}
		}
		if strings.HasSuffix(cidr, "/0") {
			return nil, paramErr("cidr", "a zero prefix is not allowed in ipset entries")
		}
		en := ipsetEntry{cidr: cidr, comment: q.p("comment"), nomatch: q.flag("nomatch", false)}
		s.entries = append([]ipsetEntry{en}, s.entries...)
		return nil, nil
	}
	handlers["GET /cluster/firewall/ipset/{name}/{cidr}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.st.ipset(q.p("name"))
		if perr != nil {
			return nil, perr
		}
		for _, en := range s.entries {
			if en.cidr == q.p("cidr") {
				return entryJSON(en, entriesDigest(s)), nil
			}
		}
		return nil, paramErr("cidr", "no such IP/Network")
	}
	handlers["DELETE /cluster/firewall/ipset/{name}/{cidr}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.st.ipset(q.p("name"))
		if perr != nil {
			return nil, perr
		}
		if perr := checkDigest(q, entriesDigest(s)); perr != nil {
			return nil, perr
		}
		// Compared as sent: an entry spelt otherwise stays, silently.
		kept := s.entries[:0:0]
		for _, en := range s.entries {
			if en.cidr != q.p("cidr") {
				kept = append(kept, en)
			}
		}
		s.entries = kept
		return nil, nil
	}
}

// IPSetAdmits reports whether src is in the kernel ipset pve-firewall
// makes of the datacenter IP set name: only while the datacenter firewall
// is on (pve-firewall removes its sets otherwise), and not when a nomatch
// entry excludes it. Host rules outside PVE's own (the host's DNAT of
// internal/proxmoxhost) match against that kernel set.
func (e *Emulator) IPSetAdmits(name string, src netip.Addr) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.ipsets[name]
	if !ok || !e.st.clusterFW.enable {
		return false
	}
	hit := false
	for _, en := range s.entries {
		if !entryContains(en.cidr, src) {
			continue
		}
		if en.nomatch {
			return false
		}
		hit = true
	}
	return hit
}

func entryContains(cidr string, a netip.Addr) bool {
	if pfx, err := netip.ParsePrefix(cidr); err == nil {
		return pfx.Contains(a)
	}
	b, err := netip.ParseAddr(cidr)
	return err == nil && b == a
}
