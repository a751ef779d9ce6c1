package gitops

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// splitDocuments splits a multi-document YAML stream, dropping empty
// documents (a leading "---", comments only).
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if isEmptyDocument(doc) {
			continue
		}
		out = append(out, doc)
	}
}

func isEmptyDocument(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && t != "---" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// decodeObjects parses every document of a file into a JSON-like map;
// documents that are not mappings yield an error.
func decodeObjects(data []byte) ([]map[string]any, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, doc := range docs {
		obj, err := toJSONObject(doc)
		if err != nil {
			return nil, err
		}
		if obj == nil {
			continue
		}
		out = append(out, obj)
	}
	return out, nil
}

// toJSONObject turns YAML into the JSON-like map the API machinery expects
// (integers as int64, other numbers as float64).
func toJSONObject(doc []byte) (map[string]any, error) {
	data, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// normalize re-encodes a map through JSON, for the same number types.
func normalize(m map[string]any) (map[string]any, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// str reads a string at a path of keys in a decoded object.
func str(obj map[string]any, path ...string) string {
	var cur any = obj
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[k]
	}
	s, _ := cur.(string)
	return s
}

// field reads any value at a path of keys.
func fieldOf(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}
