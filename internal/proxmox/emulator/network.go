package emulator

import (
	"net/http"
	"net/netip"
	"strconv"
)

// view is the configuration GET shows: the pending one where it differs.
func (st *state) view() map[string]*iface {
	out := map[string]*iface{}
	for k, v := range st.network {
		out[k] = v
	}
	for k, v := range st.pending {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func ifaceJSON(st *state, i *iface) map[string]any {
	_, active := st.network[i.Iface]
	out := map[string]any{"iface": i.Iface, "type": i.Type, "active": b2i(active), "exists": b2i(active),
		"families": []string{"inet"}, "method": "manual", "method6": "manual", "priority": 3}
	if i.Type == "bridge" {
		out["bridge_ports"] = i.BridgePorts
		out["bridge_stp"] = "off"
		out["bridge_fd"] = "0"
	}
	if i.CIDR != "" {
		out["cidr"], out["address"], out["netmask"], out["method"] = i.CIDR, i.Address, i.Netmask, "static"
	}
	if i.Gateway != "" {
		out["gateway"] = i.Gateway
	}
	if i.Autostart {
		out["autostart"] = 1
	}
	if i.Comments != "" {
		out["comments"] = i.Comments + "\n"
	}
	return out
}

func fillIface(st *state, i *iface, q *request) *pveError {
	if q.has("cidr") {
		pfx, _ := netip.ParsePrefix(q.p("cidr"))
		i.CIDR, i.Address, i.Netmask = q.p("cidr"), pfx.Addr().String(), strconv.Itoa(pfx.Bits())
	}
	if q.has("address") {
		i.Address, i.Netmask = q.p("address"), q.p("netmask")
		i.CIDR = i.Address + "/" + i.Netmask
	}
	if q.has("gateway") {
		i.Gateway = q.p("gateway")
	}
	if q.has("bridge_ports") {
		view := st.view()
		for _, port := range splitList(q.p("bridge_ports")) {
			if view[port] == nil {
				return &pveError{status: http.StatusBadRequest, reason: "Parameter verification failed.",
					errors: map[string]string{"bridge_ports": "unable to find bridge port '" + port + "'"}}
			}
		}
		i.BridgePorts = q.p("bridge_ports")
	}
	if q.has("autostart") {
		i.Autostart = q.flag("autostart", false)
	}
	if q.has("bridge_vlan_aware") {
		i.VLANAware = q.flag("bridge_vlan_aware", false)
	}
	if q.has("comments") {
		i.Comments = q.p("comments")
	}
	return nil
}

func init() {
	handlers["GET /nodes/{node}/network"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		view := e.st.view()
		for _, k := range sortedKeys(view) {
			if t := q.p("type"); t != "" && t != "any_bridge" && view[k].Type != t {
				continue
			}
			if q.p("type") == "any_bridge" && view[k].Type != "bridge" && view[k].Type != "OVSBridge" {
				continue
			}
			out = append(out, ifaceJSON(e.st, view[k]))
		}
		return out, nil
	}
	handlers["POST /nodes/{node}/network"] = func(e *Emulator, q *request) (any, *pveError) {
		name := q.p("iface")
		if e.st.view()[name] != nil {
			return nil, errf(http.StatusInternalServerError, "interface already exists")
		}
		i := &iface{Iface: name, Type: q.p("type")}
		if perr := fillIface(e.st, i, q); perr != nil {
			return nil, perr
		}
		e.st.pending[name] = i
		e.st.netChanged = true
		return nil, nil
	}
	handlers["PUT /nodes/{node}/network"] = func(e *Emulator, q *request) (any, *pveError) {
		st := e.st
		return e.startTask(q, "", e.opts.Delays.NetworkApply, func() (string, []string) {
			for k, v := range st.pending {
				if v == nil {
					delete(st.network, k)
				} else {
					st.network[k] = v
				}
			}
			st.pending = map[string]*iface{}
			st.netChanged = false
			return "OK", []string{"ifreload -a"}
		}), nil
	}
	handlers["DELETE /nodes/{node}/network"] = func(e *Emulator, q *request) (any, *pveError) {
		e.st.pending = map[string]*iface{}
		e.st.netChanged = false
		return nil, nil
	}
	handlers["GET /nodes/{node}/network/{iface}"] = func(e *Emulator, q *request) (any, *pveError) {
		i := e.st.view()[q.p("iface")]
		if i == nil {
			return nil, errf(http.StatusInternalServerError, "network interface '%s' does not exist", q.p("iface"))
		}
		return ifaceJSON(e.st, i), nil
	}
	handlers["PUT /nodes/{node}/network/{iface}"] = func(e *Emulator, q *request) (any, *pveError) {
		cur := e.st.view()[q.p("iface")]
		if cur == nil {
			return nil, errf(http.StatusInternalServerError, "network interface '%s' does not exist", q.p("iface"))
		}
		if cur.Type != q.p("type") {
			return nil, errf(http.StatusInternalServerError, "interface type '%s' does not match '%s'", q.p("type"), cur.Type)
		}
		next := *cur
		if perr := fillIface(e.st, &next, q); perr != nil {
			return nil, perr
		}
		e.st.pending[next.Iface] = &next
		e.st.netChanged = true
		return nil, nil
	}
	handlers["DELETE /nodes/{node}/network/{iface}"] = func(e *Emulator, q *request) (any, *pveError) {
		if e.st.view()[q.p("iface")] == nil {
			return nil, errf(http.StatusInternalServerError, "network interface '%s' does not exist", q.p("iface"))
		}
		e.st.pending[q.p("iface")] = nil
		e.st.netChanged = true
		return nil, nil
	}
	handlers["GET /nodes"] = func(e *Emulator, q *request) (any, *pveError) {
		return []any{map[string]any{"node": e.st.node, "status": "online", "type": "node", "id": "node/" + e.st.node,
			"level": "", "maxcpu": 16, "maxmem": 68719476736, "mem": 4294967296, "cpu": 0.02,
			"uptime": int(e.now().Sub(e.st.started).Seconds()), "disk": 3221225472, "maxdisk": 100861726720,
			"ssl_fingerprint": "5A:9B:0C:1D:2E:3F:40:51:62:73:84:95:A6:B7:C8:D9:EA:FB:0C:1D:2E:3F:40:51:62:73:84:95:A6:B7:C8:D9"}}, nil
	}
	handlers["GET /nodes/{node}/status"] = func(e *Emulator, q *request) (any, *pveError) {
		return map[string]any{"uptime": int(e.now().Sub(e.st.started).Seconds()), "pveversion": "pve-manager/" + e.st.version + "/2a1d5c3b9e0f4d27",
			"kversion": "Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2", "cpu": 0.02, "wait": 0,
			"memory":  map[string]any{"total": 68719476736, "used": 4294967296, "free": 64424509440},
			"cpuinfo": map[string]any{"cpus": 16, "sockets": 1, "cores": 8, "model": "AMD EPYC 4344P 8-Core Processor"},
			"loadavg": []string{"0.10", "0.08", "0.05"}}, nil
	}
}
