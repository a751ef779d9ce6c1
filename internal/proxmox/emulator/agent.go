package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
)

// The QEMU guest agent, as far as the topology uses it: reading a file the
// VM's first boot left (the Teleport VM's one-hour provisioner identity)
// and removing it again. The agent answers only for a running VM whose
// config enables it, with PVE's messages otherwise.

type execResult struct {
	exitcode int
	errData  string
}

// WriteGuestFile puts a file inside a VM, as its first boot would; the
// sandbox calls it when an emulated VM "runs" its user data.
func (e *Emulator) WriteGuestFile(vmid int, path string, data []byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.st.vms[vmid]
	if v == nil {
		return false
	}
	if v.guest == nil {
		v.guest = map[string][]byte{}
	}
	v.guest[path] = append([]byte(nil), data...)
	return true
}

// GuestFile reports a file inside a VM, for tests.
func (e *Emulator) GuestFile(vmid int, path string) ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.st.vms[vmid]
	if v == nil {
		return nil, false
	}
	b, ok := v.guest[path]
	return b, ok
}

func (e *Emulator) agentOr500(q *request) (*vm, *pveError) {
	v, perr := e.vmOr500(q)
	if perr != nil {
		return nil, perr
	}
	if !strings.HasPrefix(v.config["agent"], "1") && !strings.Contains(v.config["agent"], "enabled=1") {
		return nil, errf(http.StatusInternalServerError, "No QEMU guest agent configured")
	}
	if !v.running {
		return nil, errf(http.StatusInternalServerError, "VM %d is not running", v.vmid)
	}
	return v, nil
}

func init() {
	handlers["GET /nodes/{node}/qemu/{vmid}/agent/file-read"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.agentOr500(q)
		if perr != nil {
			return nil, perr
		}
		data, ok := v.guest[q.p("file")]
		if !ok {
			return nil, errf(http.StatusInternalServerError, "guest-file-open: Failed to open file '%s': No such file or directory", q.p("file"))
		}
		return map[string]any{"content": string(data)}, nil
	}
	handlers["POST /nodes/{node}/qemu/{vmid}/agent/exec"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.agentOr500(q)
		if perr != nil {
			return nil, perr
		}
		var argv []string
		raw := q.p("command")
		if err := json.Unmarshal([]byte(raw), &argv); err != nil {
			argv = strings.Split(raw, "\x00")
		}
		res := execResult{}
		switch {
		case len(argv) == 3 && (argv[0] == "shred" && argv[1] == "-u" || argv[0] == "rm" && argv[1] == "-f"):
			if _, ok := v.guest[argv[2]]; !ok && argv[0] == "shred" {
				res = execResult{exitcode: 1, errData: "shred: " + argv[2] + ": failed to open for writing: No such file or directory\n"}
			}
			delete(v.guest, argv[2])
		case len(argv) == 1 && argv[0] == "true":
		default:
			return nil, errf(http.StatusInternalServerError, "Agent error: Guest agent command failed, error was 'Failed to execute child process “%s” (No such file or directory)'", argv[0])
		}
		v.execs = append(v.execs, res)
		return map[string]any{"pid": 1000 + len(v.execs)}, nil
	}
	handlers["GET /nodes/{node}/qemu/{vmid}/agent/exec-status"] = func(e *Emulator, q *request) (any, *pveError) {
		v, perr := e.agentOr500(q)
		if perr != nil {
			return nil, perr
		}
		i := atoi(q.p("pid")) - 1001
		if i < 0 || i >= len(v.execs) {
			return nil, errf(http.StatusInternalServerError, "Agent error: Invalid parameter 'pid'")
		}
		r := v.execs[i]
		out := map[string]any{"exited": 1, "exitcode": r.exitcode}
		if r.errData != "" {
			out["err-data"] = r.errData
		}
		return out, nil
	}
}
