package gitops

import (
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// postBuild is a Flux Kustomization's variable substitution, applied to
// what kustomize built before anything is validated, as kustomize-controller
// applies it before anything is sent to the cluster.
type postBuild struct {
	vars map[string]string
	// from is set when spec.postBuild.substituteFrom names ConfigMaps or
	// Secrets: their values are unknown offline.
	from bool
}

func postBuildOf(o map[string]any) *postBuild {
	pb, ok := fieldOf(o, "spec", "postBuild").(map[string]any)
	if !ok {
		return nil
	}
	p := &postBuild{vars: map[string]string{}}
	if m, ok := pb["substitute"].(map[string]any); ok {
		for k, v := range m {
			if s, ok := v.(string); ok {
				p.vars[k] = s
			}
		}
	}
	if l, ok := pb["substituteFrom"].([]any); ok && len(l) > 0 {
		p.from = true
	}
	return p
}

// varPattern matches ${name}, ${name:=default} and ${name:-default}; $${…}
// is an escaped literal, as in Flux's envsubst.
var varPattern = regexp.MustCompile(`\$?\$\{([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-=])([^}]*))?\}`)

// apply substitutes the variables in one object. Variables with neither a
// value nor a default become empty, as in Flux (without its strict mode),
// unless substituteFrom may hold them: those are returned as unresolved.
func (p *postBuild) apply(obj map[string]any) (map[string]any, []string, error) {
	if str(obj, "metadata", "annotations", "kustomize.toolkit.fluxcd.io/substitute") == "disabled" {
		return obj, nil, nil
	}
	data, err := yaml.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	unresolved := map[string]bool{}
	out := varPattern.ReplaceAllStringFunc(string(data), func(m string) string {
		if strings.HasPrefix(m, "$$") {
			return m[1:]
		}
		sub := varPattern.FindStringSubmatch(m)
		if v, ok := p.vars[sub[1]]; ok {
			return v
		}
		if sub[2] != "" {
			return sub[3]
		}
		if p.from {
			unresolved[sub[1]] = true
			return m
		}
		return ""
	})
	res, err := toJSONObject([]byte(out))
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(unresolved))
	for n := range unresolved {
		names = append(names, n)
	}
	sort.Strings(names)
	return res, names, nil
}
