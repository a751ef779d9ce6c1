package emulator

import (
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
)

// supported is what each storage type can hold (PVE::Storage plugins).
var supported = map[string]map[string]bool{
	"dir":     set("images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"),
	"zfspool": set("images", "rootdir"),
}

// contentDir is where a directory storage keeps each content type.
var contentDir = map[string]string{"iso": "iso", "vztmpl": "vztmpl", "import": "import", "snippets": "snippets", "backup": "dump"}

func paramErr(name, msg string) *pveError {
	return &pveError{status: http.StatusBadRequest, reason: "Parameter verification failed.", errors: map[string]string{name: msg}}
}

func (e *Emulator) storageOr500(id string) (*storage, *pveError) {
	s := e.st.storages[id]
	if s == nil {
		return nil, errf(http.StatusInternalServerError, "storage '%s' does not exist", id)
	}
	return s, nil
}

func storageJSON(s *storage) map[string]any {
	out := map[string]any{"storage": s.id, "type": s.typ, "content": strings.Join(sortedKeys(s.content), ","), "digest": digest(s.content)}
	if s.path != "" {
		out["path"] = s.path
	}
	if s.typ == "zfspool" {
		out["pool"], out["sparse"] = "rpool/data", 1
	}
	return out
}

func init() {
	handlers["GET /storage"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		for _, id := range sortedKeys(e.st.storages) {
			out = append(out, storageJSON(e.st.storages[id]))
		}
		return out, nil
	}
	handlers["GET /storage/{storage}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.storageOr500(q.p("storage"))
		if perr != nil {
			return nil, perr
		}
		return storageJSON(s), nil
	}
	handlers["PUT /storage/{storage}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.storageOr500(q.p("storage"))
		if perr != nil {
			return nil, perr
		}
		if perr := checkDigest(q, digest(s.content)); perr != nil {
			return nil, perr
		}
		if q.has("content") {
			next := map[string]bool{}
			for _, c := range splitList(q.p("content")) {
				if c == "import" && !e.st.versionAtLeast(8, 4) {
					return nil, paramErr("content", fmt.Sprintf("invalid format - invalid content type '%s'", c))
				}
				if !supported[s.typ][c] {
					return nil, paramErr("content", fmt.Sprintf("storage does not support content type '%s'", c))
				}
				next[c] = true
			}
			s.content = next
		}
		return map[string]any{"storage": s.id, "type": s.typ}, nil
	}
	handlers["GET /nodes/{node}/storage"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		for _, id := range sortedKeys(e.st.storages) {
			s := e.st.storages[id]
			if c := q.p("content"); c != "" && !s.content[c] {
				continue
			}
			m := storageJSON(s)
			m["active"], m["enabled"], m["shared"] = 1, 1, 0
			m["total"], m["used"], m["avail"] = int64(100)<<30, int64(3)<<30, int64(97)<<30
			out = append(out, m)
		}
		return out, nil
	}
	handlers["GET /nodes/{node}/storage/{storage}/status"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.storageOr500(q.p("storage"))
		if perr != nil {
			return nil, perr
		}
		m := storageJSON(s)
		m["active"], m["enabled"], m["shared"] = 1, 1, 0
		m["total"], m["used"], m["avail"] = int64(100)<<30, int64(3)<<30, int64(97)<<30
		return m, nil
	}
	handlers["GET /nodes/{node}/storage/{storage}/content"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.storageOr500(q.p("storage"))
		if perr != nil {
			return nil, perr
		}
		out := []any{}
		for _, id := range sortedKeys(s.volumes) {
			v := s.volumes[id]
			if c := q.p("content"); c != "" && v.content != c {
				continue
			}
			if vmid := q.p("vmid"); vmid != "" && !strings.Contains(v.volid, "vm-"+vmid+"-") {
				continue
			}
			out = append(out, map[string]any{"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": v.ctime})
		}
		return out, nil
	}
	handlers["DELETE /nodes/{node}/storage/{storage}/content/{volume}"] = func(e *Emulator, q *request) (any, *pveError) {
		s, perr := e.storageOr500(q.p("storage"))
		if perr != nil {
			return nil, perr
		}
		volid := q.p("volume")
		if !strings.Contains(volid, ":") {
			volid = s.id + ":" + volid
		}
		if s.volumes[volid] == nil {
			return nil, errf(http.StatusInternalServerError, "volume '%s' does not exist", volid)
		}
		return e.startTask(q, volid, 0, func() (string, []string) {
			delete(s.volumes, volid)
			return "OK", nil
		}), nil
	}
	handlers["POST /nodes/{node}/storage/{storage}/download-url"] = func(e *Emulator, q *request) (any, *pveError) {
		return e.addVolume(q, e.opts.Delays.Download, nil)
	}
	handlers["POST /nodes/{node}/storage/{storage}/upload"] = func(e *Emulator, q *request) (any, *pveError) {
		if q.upload == nil {
			return nil, errf(http.StatusInternalServerError, "upload 'filename' is not a file")
		}
		return e.addVolume(q, 0, q.upload)
	}
}

// formats maps a file name to its volume format per content type, and says
// which extensions PVE accepts for it.
func volumeFormat(content, name string) (string, bool) {
	ext := strings.TrimPrefix(path.Ext(name), ".")
	switch content {
	case "iso":
		return "iso", ext == "iso" || ext == "img"
	case "vztmpl":
		return "tgz", strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tar.xz") || strings.HasSuffix(name, ".tar.zst")
	case "import":
		return ext, ext == "qcow2" || ext == "raw" || ext == "vmdk" || ext == "ova" || ext == "img"
	}
	return "", false
}

// addVolume is download-url's and upload's shared core: the storage must be
// configured for the content type, the name must fit it, and compressed
// downloads are only decompressed into ISO storage.
func (e *Emulator) addVolume(q *request, d time.Duration, data []byte) (any, *pveError) {
	s, perr := e.storageOr500(q.p("storage"))
	if perr != nil {
		return nil, perr
	}
	content, name := q.p("content"), path.Base(q.p("filename"))
	if !s.content[content] {
		return nil, errf(http.StatusInternalServerError, "storage '%s' is not configured for content-type '%s'", s.id, content)
	}
	format, ok := volumeFormat(content, name)
	if !ok {
		return nil, paramErr("filename", fmt.Sprintf("wrong file extension for content type '%s'", content))
	}
	if q.has("compression") && content != "iso" {
		return nil, paramErr("compression", "decompression is only supported for content type 'iso'")
	}
	volid := fmt.Sprintf("%s:%s/%s", s.id, contentDir[content], name)
	if s.volumes[volid] != nil {
		return nil, errf(http.StatusInternalServerError, "refusing to override existing file '%s/template/%s/%s'", s.path, contentDir[content], name)
	}
	size := int64(len(data))
	if data == nil {
		size = 1 << 30
	}
	created := e.now().Unix()
	return e.startTask(q, s.id, d, func() (string, []string) {
		s.volumes[volid] = &volume{volid: volid, content: content, format: format, size: size, ctime: created, data: data}
		return "OK", []string{fmt.Sprintf("downloading %s to %s", q.p("url"), volid)}
	}), nil
}
