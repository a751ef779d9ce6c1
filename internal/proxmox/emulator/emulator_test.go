package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

type raw struct {
	t      *testing.T
	e      *Emulator
	ticket string
	csrf   string
	token  string
}

func newRaw(t *testing.T, opts Options) *raw {
	t.Helper()
	h, _ := bcrypt.GenerateFromPassword([]byte("secret-root"), bcrypt.MinCost)
	opts.RootPasswordHash = string(h)
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	r := &raw{t: t, e: e}
	status, _, body := r.do("POST", "/access/ticket", url.Values{"username": {"root@pam"}, "password": {"secret-root"}})
	if status != 200 {
		t.Fatalf("login: %d %s", status, body)
	}
	var env struct {
		Data struct {
			Ticket string `json:"ticket"`
			CSRF   string `json:"CSRFPreventionToken"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	r.ticket, r.csrf = env.Data.Ticket, env.Data.CSRF
	return r
}

// do sends form-encoded params (as pvesh and curl do) and returns the
// status, the reason phrase and the body.
func (r *raw) do(method, path string, params url.Values) (int, string, []byte) {
	r.t.Helper()
	var body io.Reader
	u := r.e.URL() + path
	if method == "GET" || method == "DELETE" {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.ticket != "" {
		req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: r.ticket})
		req.Header.Set("CSRFPreventionToken", r.csrf)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "PVEAPIToken="+r.token)
	}
	res, err := r.e.HTTPClient().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimPrefix(res.Status, res.Status[:4]), b
}

func (r *raw) waitTask(body []byte) map[string]any {
	r.t.Helper()
	var env struct{ Data string }
	if err := json.Unmarshal(body, &env); err != nil || !strings.HasPrefix(env.Data, "UPID:pve:") {
		r.t.Fatalf("want a UPID, got %s", body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, _, b := r.do("GET", "/nodes/pve/tasks/"+url.PathEscape(env.Data)+"/status", nil)
		var st struct{ Data map[string]any }
		_ = json.Unmarshal(b, &st)
		if st.Data["status"] == "stopped" {
			return st.Data
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatal("task never stopped")
	return nil
}

func TestRefusesWhatTheRealAPIRefuses(t *testing.T) {
	t.Parallel()
	r := newRaw(t, Options{})
	for _, tc := range []struct {
		name, method, path string
		params             url.Values
		status             int
		reason, param, msg string
	}{
		{"misspelled option", "POST", "/nodes/pve/network", url.Values{"iface": {"vmbr1"}, "type": {"bridge"}, "cdir": {"10.10.0.1/24"}},
			400, "Parameter verification failed.", "cdir", msgUndefined},
		{"missing required", "POST", "/nodes/pve/network", url.Values{"iface": {"vmbr1"}},
			400, "Parameter verification failed.", "type", msgMissing},
		{"bad enum", "PUT", "/cluster/firewall/options", url.Values{"policy_in": {"BLOCK"}},
			400, "Parameter verification failed.", "policy_in", "value 'BLOCK' does not have a value in the enumeration 'ACCEPT, REJECT, DROP'"},
		{"bad boolean", "POST", "/access/users/root@pam/token/t1", url.Values{"privsep": {"maybe"}},
			400, "Parameter verification failed.", "privsep", "type check ('boolean') failed - got 'maybe'"},
		{"bad CIDR", "POST", "/nodes/pve/network", url.Values{"iface": {"vmbr1"}, "type": {"bridge"}, "cidr": {"10.10.0.1"}},
			400, "Parameter verification failed.", "cidr", "invalid format - value does not look like a valid CIDR network"},
		{"snippets cannot be uploaded", "POST", "/nodes/pve/storage/local/download-url",
			url.Values{"content": {"snippets"}, "filename": {"u.yaml"}, "url": {"https://example.com/u.yaml"}},
			400, "Parameter verification failed.", "content", "value 'snippets' does not have a value in the enumeration 'iso, vztmpl, import'"},
		{"unknown disk option", "POST", "/nodes/pve/qemu", url.Values{"vmid": {"100"}, "scsi0": {"local-zfs:0,import_from=local:import/x.qcow2"}},
			400, "Parameter verification failed.", "scsi0", "scsi0.import_from: " + msgUndefined},
		{"unknown path", "GET", "/nodes/pve/nonsense", nil, 501, "Method 'GET /nodes/pve/nonsense' not implemented", "", ""},
		{"no local-lvm", "GET", "/storage/local-lvm", nil, 500, "storage 'local-lvm' does not exist", "", ""},
	} {
		status, reason, body := r.do(tc.method, tc.path, tc.params)
		if status != tc.status || reason != tc.reason {
			t.Errorf("%s: got %d %q, want %d %q (%s)", tc.name, status, reason, tc.status, tc.reason, body)
			continue
		}
		var env struct {
			Data   any               `json:"data"`
			Errors map[string]string `json:"errors"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Data != nil {
			t.Errorf("%s: body %s is not PVE's error envelope", tc.name, body)
		}
		if tc.param != "" && !strings.Contains(env.Errors[tc.param], tc.msg) {
			t.Errorf("%s: errors[%s] = %q, want it to contain %q", tc.name, tc.param, env.Errors[tc.param], tc.msg)
		}
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	r := newRaw(t, Options{})
	csrf := r.csrf
	r.csrf = "forged"
	if status, reason, _ := r.do("PUT", "/cluster/firewall/options", url.Values{"enable": {"1"}}); status != 401 || !strings.Contains(reason, "csrf") {
		t.Errorf("write without the CSRF token: %d %s", status, reason)
	}
	r.csrf = csrf
	if status, _, _ := r.do("GET", "/version", nil); status != 200 {
		t.Errorf("read with ticket: %d", status)
	}
	r.ticket = ""
	if status, reason, _ := r.do("GET", "/version", nil); status != 401 || reason != "No ticket" {
		t.Errorf("no credentials: %d %s", status, reason)
	}
	r.token = "root@pam!nope=00000000-0000-0000-0000-000000000000"
	if status, _, _ := r.do("GET", "/version", nil); status != 401 {
		t.Errorf("unknown token: %d", status)
	}
}

func TestVMFromImportedImageWithCloudInitDrive(t *testing.T) {
	t.Parallel()
	r := newRaw(t, Options{Delays: Delays{Download: 10 * time.Millisecond}})
	if status, _, b := r.do("PUT", "/storage/local", url.Values{"content": {"iso,vztmpl,backup,import,images,snippets"}}); status != 200 {
		t.Fatalf("content: %d %s", status, b)
	}
	// Compressed images are only decompressed into ISO storage.
	status, _, b := r.do("POST", "/nodes/pve/storage/local/download-url", url.Values{"content": {"import"},
		"filename": {"talos.raw"}, "url": {"https://factory.talos.dev/image/x/v1.12.4/nocloud-amd64.raw.xz"}, "compression": {"xz"}})
	if status != 400 {
		t.Fatalf("compressed import download: %d %s", status, b)
	}
	status, _, b = r.do("POST", "/nodes/pve/storage/local/download-url", url.Values{"content": {"import"},
		"filename": {"debian-12.qcow2"}, "url": {"https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"}})
	if status != 200 {
		t.Fatalf("download: %d %s", status, b)
	}
	if st := r.waitTask(b); st["exitstatus"] != "OK" || st["type"] != "download" {
		t.Fatalf("download task: %v", st)
	}
	// Upload a cidata ISO (multipart, as the API takes it).
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("content", "iso")
	fw, _ := w.CreateFormFile("filename", "vm-100-cidata.iso")
	_, _ = fw.Write([]byte("CD001"))
	_ = w.Close()
	req, _ := http.NewRequest("POST", r.e.URL()+"/nodes/pve/storage/local/upload", &mp)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: r.ticket})
	req.Header.Set("CSRFPreventionToken", r.csrf)
	res, err := r.e.HTTPClient().Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("upload: %v %v", res, err)
	}
	ub, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r.waitTask(ub)

	status, reason, _ := r.do("POST", "/nodes/pve/qemu", url.Values{"vmid": {"100"}, "ide2": {"local-lvm:cloudinit"}})
	if status != 500 || reason != "storage 'local-lvm' does not exist" {
		t.Fatalf("cloud-init drive on local-lvm: %d %s", status, reason)
	}
	status, _, b = r.do("POST", "/nodes/pve/qemu", url.Values{"vmid": {"100"}, "name": {"haproxy"}, "memory": {"2048"},
		"scsi0": {"local-zfs:0,import-from=local:import/debian-12.qcow2,discard=on,iothread=1"},
		"ide2":  {"local:iso/vm-100-cidata.iso,media=cdrom"}, "ide0": {"local:cloudinit"}, "tags": {"rawkode-cloud;cluster-demo"},
		"net0": {"virtio,bridge=vmbr0"}, "cpu": {"host"}})
	if status != 200 {
		t.Fatalf("create VM: %d %s", status, b)
	}
	r.waitTask(b)
	status, _, b = r.do("PUT", "/nodes/pve/qemu/100/resize", url.Values{"disk": {"scsi0"}, "size": {"8G"}})
	if status != 200 {
		t.Fatalf("resize: %d %s", status, b)
	}
	status, _, b = r.do("POST", "/nodes/pve/qemu/100/status/start", nil)
	if status != 200 {
		t.Fatalf("start: %d %s", status, b)
	}
	r.waitTask(b)
	snap := r.e.Snapshot()
	if len(snap.VMs) != 1 || !snap.VMs[0].Running || snap.VMs[0].Name != "haproxy" || strings.Join(snap.VMs[0].Tags, ",") != "rawkode-cloud,cluster-demo" {
		t.Fatalf("VMs: %+v", snap.VMs)
	}
	if status, reason, _ := r.do("DELETE", "/nodes/pve/qemu/100", nil); status != 500 || !strings.Contains(reason, "running") {
		t.Fatalf("destroying a running VM: %d %s", status, reason)
	}
}
