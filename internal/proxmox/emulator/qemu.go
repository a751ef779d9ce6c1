package emulator

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var diskKey = regexp.MustCompile(`^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$`)

func (e *Emulator) vmOr500(q *request) (*vm, *pveError) {
	id := atoi(q.p("vmid"))
	v := e.st.vms[id]
	if v == nil {
		return nil, errf(http.StatusInternalServerError, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", e.st.node, id)
	}
	return v, nil
}

// resolveDisk turns a create-time disk value into what the config keeps:
// "local-zfs:0,import-from=local:import/x.qcow2" becomes a new volume
// imported from x.qcow2, "local:cloudinit" a cloud-init drive, and
// "local-zfs:8" an 8 GiB empty volume.
func (e *Emulator) resolveDisk(vmid int, key, value string, n *int) (string, *pveError) {
	parts := strings.Split(value, ",")
	first := parts[0]
	if first == "none" || strings.Contains(first, "/") && !strings.HasPrefix(first, "/") && strings.Contains(first, ":") {
		// An existing volume (an ISO as CD-ROM): it must exist.
		if first != "none" {
			store, _, _ := strings.Cut(first, ":")
			s, perr := e.storageOr500(store)
			if perr != nil {
				return "", perr
			}
			if s.volumes[first] == nil {
				return "", errf(http.StatusInternalServerError, "volume '%s' does not exist", first)
			}
		}
		return value, nil
	}
	store, spec, ok := strings.Cut(first, ":")
	if !ok {
		return "", paramErr(key, "invalid format - unable to parse volume ID '"+first+"'")
	}
	s, perr := e.storageOr500(store)
	if perr != nil {
		return "", perr
	}
	if spec == "cloudinit" {
		if !s.content["images"] && s.typ != "dir" {
			return "", errf(http.StatusInternalServerError, "storage '%s' does not support content type 'images'", store)
		}
		volid := fmt.Sprintf("%s:vm-%d-cloudinit", store, vmid)
		if s.typ == "dir" {
			volid = fmt.Sprintf("%s:%d/vm-%d-cloudinit.qcow2", store, vmid, vmid)
		}
		s.volumes[volid] = &volume{volid: volid, content: "images", format: "raw", size: 4 << 20, ctime: e.now().Unix()}
		return volid + ",media=cdrom", nil
	}
	size, err := strconv.ParseFloat(spec, 64)
	if err != nil {
		return "", paramErr(key, "invalid format - unable to parse volume ID '"+first+"'")
	}
	if !s.content["images"] {
		return "", errf(http.StatusInternalServerError, "storage '%s' does not support content type 'images'", store)
	}
	var rest []string
	bytes := int64(size * (1 << 30))
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		if k == "import-from" {
			srcStore, _, _ := strings.Cut(v, ":")
			src, perr := e.storageOr500(srcStore)
			if perr != nil {
				return "", perr
			}
			vol := src.volumes[v]
			if vol == nil {
				return "", errf(http.StatusInternalServerError, "volume '%s' does not exist", v)
			}
			if vol.content != "import" && vol.content != "images" {
				return "", errf(http.StatusInternalServerError, "%s: importing from '%s' content type is not supported", key, vol.content)
			}
			bytes = vol.size
			continue
		}
		rest = append(rest, p)
	}
	volid := fmt.Sprintf("%s:vm-%d-disk-%d", store, vmid, *n)
	*n++
	s.volumes[volid] = &volume{volid: volid, content: "images", format: "raw", size: bytes, ctime: e.now().Unix()}
	out := append([]string{volid}, rest...)
	out = append(out, "size="+humanSize(bytes))
	return strings.Join(out, ","), nil
}

func humanSize(b int64) string {
	if b%(1<<30) == 0 {
		return fmt.Sprintf("%dG", b>>30)
	}
	return fmt.Sprintf("%dM", b>>20)
}

func (e *Emulator) applyConfig(v *vm, q *request) *pveError {
	n := 0
	for k := range v.config {
		if diskKey.MatchString(k) {
			n++
		}
	}
	for _, k := range sortedKeys(q.params) {
		switch k {
		case "node", "vmid", "digest", "delete", "start", "skiplock", "force", "background_delay":
			continue
		}
		val := q.params[k]
		if diskKey.MatchString(k) {
			resolved, perr := e.resolveDisk(v.vmid, k, val, &n)
			if perr != nil {
				return perr
			}
			val = resolved
		}
		v.config[k] = val
	}
	for _, k := range splitList(q.p("delete")) {
		delete(v.config, k)
	}
	return nil
}

func vmStatus(e *Emulator, v *vm) map[string]any {
	status := "stopped"
	if v.running {
		status = "running"
	}
	out := map[string]any{"vmid": v.vmid, "name": v.config["name"], "status": status, "qmpstatus": status,
		"maxmem": atoi(v.config["memory"]) << 20, "cpus": max(atoi(v.config["cores"]), 1), "uptime": 0}
	if t := v.config["tags"]; t != "" {
		out["tags"] = strings.Join(splitList(t), ";")
	}
	if v.lock != "" {
		out["lock"] = v.lock
	}
	if v.running {
		out["agent"] = 1
	}
	return out
}

func init() {
	handlers["GET /nodes/{node}/qemu"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		for _, id := range vmIDs(e.st) {
			out = append(out, vmStatus(e, e.st.vms[id]))
		}
		return out, nil
	}
	handlers["GET /cluster/resources"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		t := q.p("type")
		if t == "" || t == "node" {
			out = append(out, map[string]any{"id": "node/" + e.st.node, "type": "node", "node": e.st.node, "status": "online"})
		}
		if t == "" || t == "vm" {
			for _, id := range vmIDs(e.st) {
				m := vmStatus(e, e.st.vms[id])
				m["id"], m["type"], m["node"] = fmt.Sprintf("qemu/%d", id), "qemu", e.st.node
				out = append(out, m)
			}
		}
		if t == "" || t == "storage" {
			for _, id := range sortedKeys(e.st.storages) {
				out = append(out, map[string]any{"id": "storage/" + e.st.node + "/" + id, "type": "storage", "storage": id,
					"node": e.st.node, "status": "available", "content": strings.Join(sortedKeys(e.st.storages[id].content), ",")})
			}
		}
		return out, nil
	}
	handlers["GET /cluster/nextid"] = func(e *Emulator, q *request) (any, *pveError) {
		for id := 100; ; id++ {
			if e.st.vms[id] == nil {
				return strconv.Itoa(id), nil
			}
		}
	}
	handlers["POST /nodes/{node}/qemu"] = func(e *Emulator, q *request) (any, *pveError) {
		id := atoi(q.p("vmid"))
		if !e.st.hasPriv(q, fmt.Sprintf("/vms/%d", id), "VM.Allocate") {
			return nil, errf(http.StatusForbidden, "Permission check failed (/vms/%d, VM.Allocate)", id)
		}
		if e.st.vms[id] != nil {
			return nil, errf(http.StatusInternalServerError, "unable to create VM %d - VM %d already exists on node '%s'", id, id, e.st.node)
		}
		v := &vm{vmid: id, config: map[string]string{}, lock: "create"}
		if perr := e.applyConfig(v, q); perr != nil {
			return nil, perr
		}
		e.st.vms[id] = v
		start := q.flag("start", false)
		return e.startTask(q, strconv.Itoa(id), e.opts.Delays.VMCreate, func() (string, []string) {
			v.lock = ""
			if start && !v.running {
				v.running = true
				e.powered(v, true)
			}
			return "OK", nil
		}), nil
	}
	handlers["GET /nodes/{node}/qemu/{vmid}/config"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.vmOr500(q)
		if perr != nil {
			return nil, perr
		}
		out := map[string]any{"digest": digest(v.config)}
		for k, val := range v.config {
			out[k] = val
		}
		return out, nil
	}
	update := func(async bool) handler {
		return func(e *Emulator, q *request) (any, *pveError) {
			v, perr := e.vmOr500(q)
			if perr != nil {
				return nil, perr
			}
			if perr := checkDigest(q, digest(v.config)); perr != nil {
				return nil, perr
			}
			if v.lock != "" {
				return nil, errf(http.StatusInternalServerError, "VM is locked (%s)", v.lock)
			}
			if perr := e.applyConfig(v, q); perr != nil {
				return nil, perr
			}
			if async {
				return e.startTask(q, strconv.Itoa(v.vmid), 0, nil), nil
			}
			return nil, nil
		}
	}
	handlers["POST /nodes/{node}/qemu/{vmid}/config"] = update(true)
	handlers["PUT /nodes/{node}/qemu/{vmid}/config"] = update(false)
	handlers["PUT /nodes/{node}/qemu/{vmid}/resize"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.vmOr500(q)
		if perr != nil {
			return nil, perr
		}
		disk := q.p("disk")
		cur, ok := v.config[disk]
		if !ok {
			return nil, errf(http.StatusInternalServerError, "disk '%s' does not exist", disk)
		}
		volid, _, _ := strings.Cut(cur, ",")
		store, _, _ := strings.Cut(volid, ":")
		vol := e.st.storages[store].volumes[volid]
		size := q.p("size")
		grow := strings.HasPrefix(size, "+")
		n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(size, "+"), "G"), 64)
		if err != nil {
			return nil, paramErr("size", "invalid format - value does not look like a valid disk size")
		}
		want := int64(n * (1 << 30))
		if grow {
			want += vol.size
		}
		if want < vol.size {
			return nil, errf(http.StatusInternalServerError, "shrinking disks is not supported")
		}
		// PVE 8+ resizes in a task and answers with its UPID (apidoc: "the task ID").
		return e.startTask(q, strconv.Itoa(v.vmid), 0, func() (string, []string) {
			vol.size = want
			parts := strings.Split(cur, ",")
			out := parts[:1]
			for _, p := range parts[1:] {
				if !strings.HasPrefix(p, "size=") {
					out = append(out, p)
				}
			}
			v.config[disk] = strings.Join(append(out, "size="+humanSize(want)), ",")
			return "OK", nil
		}), nil
	}
	handlers["GET /nodes/{node}/qemu/{vmid}/status/current"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.vmOr500(q)
		if perr != nil {
			return nil, perr
		}
		return vmStatus(e, v), nil
	}
	power := func(on bool, delay func(*Emulator) int64) handler {
		return func(e *Emulator, q *request) (any, *pveError) {
			v, perr := e.vmOr500(q)
			if perr != nil {
				return nil, perr
			}
			if v.lock != "" {
				return nil, errf(http.StatusInternalServerError, "VM is locked (%s)", v.lock)
			}
			if on && v.running {
				return nil, errf(http.StatusInternalServerError, "VM %d already running", v.vmid)
			}
			return e.startTask(q, strconv.Itoa(v.vmid), timeDur(delay(e)), func() (string, []string) {
				changed := v.running != on
				v.running = on
				if changed {
					e.powered(v, on)
				}
				return "OK", nil
			}), nil
		}
	}
	handlers["POST /nodes/{node}/qemu/{vmid}/status/start"] = power(true, func(e *Emulator) int64 { return int64(e.opts.Delays.VMStart) })
	handlers["POST /nodes/{node}/qemu/{vmid}/status/stop"] = power(false, func(e *Emulator) int64 { return int64(e.opts.Delays.VMStop) })
	handlers["POST /nodes/{node}/qemu/{vmid}/status/shutdown"] = power(false, func(e *Emulator) int64 { return int64(e.opts.Delays.VMStop) })
	handlers["DELETE /nodes/{node}/qemu/{vmid}"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.vmOr500(q)
		if perr != nil {
			return nil, perr
		}
		if v.running {
			return nil, errf(http.StatusInternalServerError, "VM %d is running - destroy failed", v.vmid)
		}
		return e.startTask(q, strconv.Itoa(v.vmid), 0, func() (string, []string) {
			for _, s := range e.st.storages {
				for id := range s.volumes {
					if strings.Contains(id, fmt.Sprintf("vm-%d-", v.vmid)) {
						delete(s.volumes, id)
					}
				}
			}
			delete(e.st.vms, v.vmid)
			return "OK", nil
		}), nil
	}
}

func vmIDs(st *state) []int {
	ids := make([]int, 0, len(st.vms))
	for id := range st.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func timeDur(n int64) time.Duration { return time.Duration(n) }

// powered tells OnPower about a VM that started or stopped, with a copy of
// what it boots from. Called with the node's lock held.
func (e *Emulator) powered(v *vm, on bool) {
	if e.opts.OnPower == nil {
		return
	}
	g := Guest{VMID: v.vmid, Name: v.config["name"], Config: map[string]string{}}
	for k, val := range v.config {
		g.Config[k] = val
	}
	if volid, _, _ := strings.Cut(v.config["ide2"], ","); volid != "" && volid != "none" {
		store, _, _ := strings.Cut(volid, ":")
		if s := e.st.storages[store]; s != nil && s.volumes[volid] != nil {
			g.CIData = append([]byte(nil), s.volumes[volid].data...)
		}
	}
	go e.opts.OnPower(g, on)
}
