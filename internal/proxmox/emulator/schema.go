package emulator

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// schemaJSON is the extract of the published PVE 9.2 API description for the
// operations this emulator serves (see apischema/README.md).
//
//go:embed apischema/pve-9.2-params.json
var schemaJSON []byte

// param is what the API description says about one parameter.
type param struct {
	Type       string           `json:"type"`
	Format     json.RawMessage  `json:"format"`
	Enum       []any            `json:"enum"`
	Optional   flexBool         `json:"optional"`
	Pattern    string           `json:"pattern"`
	Minimum    any              `json:"minimum"`
	Maximum    any              `json:"maximum"`
	MaxLength  *int             `json:"maxLength"`
	MinLength  *int             `json:"minLength"`
	Requires   string           `json:"requires"`
	Alias      string           `json:"alias"`
	KeyAlias   string           `json:"keyAlias"`
	DefaultKey flexBool         `json:"default_key"`
	formatName string           // Format when it is a name
	formatKeys map[string]param // Format when it is a property string
}

// operation is one method on one path.
type operation struct {
	Op          string           `json:"op"`
	Params      map[string]param `json:"params"`
	Additional  flexBool         `json:"additional"`
	Permissions *permissions     `json:"permissions"`
	AllowToken  flexBool         `json:"allowtoken"`
	Protected   flexBool         `json:"protected"`
	method      string
	segments    []string
}

// permissions is the description's permission check for an operation.
type permissions struct {
	Check []any  `json:"check"`
	User  string `json:"user"`
}

// flexBool reads the description's 0/1 numbers, strings and booleans.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	*f = flexBool(s == "1" || s == "true" || s == "yes")
	return nil
}

// schema is the parsed extract: every served operation, matched by method and path.
type schema struct {
	ops []*operation
}

func loadSchema() (*schema, error) {
	var ops []*operation
	if err := json.Unmarshal(schemaJSON, &ops); err != nil {
		return nil, fmt.Errorf("parse embedded API schema: %w", err)
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op.Op, " ")
		op.method = method
		op.segments = strings.Split(strings.Trim(path, "/"), "/")
		for name, p := range op.Params {
			if err := p.resolveFormat(); err != nil {
				return nil, fmt.Errorf("%s %s: %w", op.Op, name, err)
			}
			op.Params[name] = p
		}
	}
	return &schema{ops: ops}, nil
}

func (p *param) resolveFormat() error {
	if len(p.Format) == 0 {
		return nil
	}
	if p.Format[0] == '"' {
		return json.Unmarshal(p.Format, &p.formatName)
	}
	var keys map[string]param
	if err := json.Unmarshal(p.Format, &keys); err != nil {
		return err
	}
	for k, sub := range keys {
		if err := sub.resolveFormat(); err != nil {
			return err
		}
		keys[k] = sub
	}
	p.formatKeys = keys
	return nil
}

// match finds the operation for method and path and returns the path's
// parameters. known reports whether the path exists with another method.
func (s *schema) match(method, path string) (op *operation, pathParams map[string]string, known bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		if u, err := url.PathUnescape(seg); err == nil {
			segs[i] = u
		}
	}
	for _, cand := range s.ops {
		vals, ok := matchSegments(cand.segments, segs)
		if !ok {
			continue
		}
		known = true
		if cand.method == method {
			return cand, vals, true
		}
	}
	return nil, nil, known
}

func matchSegments(tmpl, segs []string) (map[string]string, bool) {
	if len(tmpl) != len(segs) {
		return nil, false
	}
	vals := map[string]string{}
	for i, t := range tmpl {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			if segs[i] == "" {
				return nil, false
			}
			vals[t[1:len(t)-1]] = segs[i]
			continue
		}
		if t != segs[i] {
			return nil, false
		}
	}
	return vals, true
}

// lookup finds a parameter by name, including the description's indexed
// families such as "net[n]" for net0, net1, ….
func (op *operation) lookup(name string) (param, bool) {
	if p, ok := op.Params[name]; ok {
		return p, true
	}
	base := strings.TrimRight(name, "0123456789")
	if base != name && base != "" {
		if p, ok := op.Params[base+"[n]"]; ok {
			return p, true
		}
	}
	return param{}, false
}
