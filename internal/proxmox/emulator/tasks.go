package emulator

import (
	"fmt"
	"net/http"
	"time"
)

// task is a worker task. Tasks finish lazily: whoever looks at the node
// next (a request, the inventory) settles every task whose time has come
// and applies what it does, so no goroutine runs behind the API's back.
type task struct {
	upid, typ, id, user string
	node                string
	pid, pstart         int
	start               time.Time
	doneAt              time.Time // zero: never finishes (an injected fault)
	done                bool
	exit                string
	log                 []string
	effect              func() (exit string, log []string)
}

// taskOps names the task type of each operation that answers with a UPID.
var taskOps = map[string]string{
	"PUT /nodes/{node}/network":                               "srvreload",
	"POST /nodes/{node}/storage/{storage}/download-url":       "download",
	"POST /nodes/{node}/storage/{storage}/upload":             "imgcopy",
	"DELETE /nodes/{node}/storage/{storage}/content/{volume}": "imgdel",
	"POST /nodes/{node}/qemu":                                 "qmcreate",
	"POST /nodes/{node}/qemu/{vmid}/config":                   "qmconfig",
	"POST /nodes/{node}/qemu/{vmid}/status/start":             "qmstart",
	"POST /nodes/{node}/qemu/{vmid}/status/stop":              "qmstop",
	"POST /nodes/{node}/qemu/{vmid}/status/shutdown":          "qmshutdown",
	"DELETE /nodes/{node}/qemu/{vmid}":                        "qmdestroy",
}

// startTask registers a task and returns its UPID, formatted like PVE's:
// UPID:node:pid:pstart:starttime:type:id:user: with hex numbers.
func (e *Emulator) startTask(q *request, id string, d time.Duration, effect func() (string, []string)) string {
	e.pidSeq++
	now := e.now()
	who := q.user
	if q.token != "" {
		who = q.token
	}
	t := &task{typ: taskOps[q.op.Op], id: id, user: who, node: e.opts.Node, pid: 100000 + e.pidSeq, pstart: 5000 + e.pidSeq,
		start: now, doneAt: now.Add(d), effect: effect}
	if q.never {
		t.doneAt = time.Time{}
	}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", t.node, t.pid, t.pstart, now.Unix(), t.typ, id, who)
	e.st.tasks[t.upid] = t
	e.st.taskOrder = append(e.st.taskOrder, t.upid)
	if d <= 0 && !q.never {
		e.finish(t)
	}
	return t.upid
}

func (e *Emulator) finish(t *task) {
	t.done = true
	t.exit, t.log = "OK", nil
	if t.effect != nil {
		t.exit, t.log = t.effect()
	}
	t.log = append(t.log, "TASK "+map[bool]string{true: "OK", false: "ERROR: " + t.exit}[t.exit == "OK"])
}

// settle finishes every due task, oldest first. Caller holds e.mu.
func (e *Emulator) settle() {
	now := e.now()
	for _, id := range e.st.taskOrder {
		t := e.st.tasks[id]
		if !t.done && !t.doneAt.IsZero() && !now.Before(t.doneAt) {
			e.finish(t)
		}
	}
}

func init() {
	handlers["GET /nodes/{node}/tasks/{upid}/status"] = func(e *Emulator, q *request) (any, *pveError) {
		t, ok := e.st.tasks[q.p("upid")]
		if !ok {
			return nil, errf(http.StatusInternalServerError, "unable to parse worker upid '%s'", q.p("upid"))
		}
		out := map[string]any{"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
			"type": t.typ, "id": t.id, "user": t.user, "status": "running"}
		if t.done {
			out["status"] = "stopped"
			out["exitstatus"] = t.exit
		}
		return out, nil
	}
	handlers["GET /nodes/{node}/tasks/{upid}/log"] = func(e *Emulator, q *request) (any, *pveError) {
		t, ok := e.st.tasks[q.p("upid")]
		if !ok {
			return nil, errf(http.StatusInternalServerError, "unable to parse worker upid '%s'", q.p("upid"))
		}
		lines := []map[string]any{}
		for i, l := range t.log {
			lines = append(lines, map[string]any{"n": i + 1, "t": l})
		}
		return lines, nil
	}
}
