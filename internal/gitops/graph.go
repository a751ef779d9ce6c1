package gitops

import (
	"fmt"
	"sort"
	"strings"
)

// fluxNamespace is where Flux objects without a namespace end up: the
// namespace of the sync Kustomization that applies them.
const fluxNamespace = "flux-system"

type refProblem struct {
	Problem
	from built
}

type node struct {
	key  string // Kind namespace/name
	b    built
	deps []string
}

// checkReferences checks what Flux resolves by name at run time: dependsOn
// between Kustomizations and between HelmReleases (each must exist; together
// they must form an acyclic graph) and the sources they are built from.
func checkReferences(objects []built, opts CheckOptions) []refProblem {
	exists := map[string]bool{}
	for _, b := range objects {
		exists[key(str(b.obj, "kind"), nsOf(b.obj), str(b.obj, "metadata", "name"))] = true
	}
	var out []refProblem
	add := func(b built, format string, args ...any) {
		out = append(out, refProblem{Problem: Problem{Object: objectName(b.obj), Message: fmt.Sprintf(format, args...)}, from: b})
	}
	graphs := map[string][]*node{}
	for _, b := range objects {
		kind, group := str(b.obj, "kind"), groupOf(str(b.obj, "apiVersion"))
		isKustomization := kind == "Kustomization" && group == fluxKustomizeGroup
		isHelmRelease := kind == "HelmRelease" && group == fluxHelmGroup
		if !isKustomization && !isHelmRelease {
			continue
		}
		ns := nsOf(b.obj)
		n := &node{key: key(kind, ns, str(b.obj, "metadata", "name")), b: b}
		deps, _ := fieldOf(b.obj, "spec", "dependsOn").([]any)
		for _, d := range deps {
			dm, _ := d.(map[string]any)
			name, dns := str(dm, "name"), str(dm, "namespace")
			if dns == "" {
				dns = ns
			}
			dk := key(kind, dns, name)
			if !exists[dk] {
				add(b, "spec.dependsOn: %s does not exist in this repository", strings.TrimPrefix(dk, kind+" "))
				continue
			}
			n.deps = append(n.deps, dk)
		}
		graphs[kind] = append(graphs[kind], n)

		var refKind, refName, refNS, where string
		if isKustomization {
			where = "spec.sourceRef"
			refKind, refName, refNS = str(b.obj, "spec", "sourceRef", "kind"), str(b.obj, "spec", "sourceRef", "name"), str(b.obj, "spec", "sourceRef", "namespace")
			if refName == opts.SourceName {
				refName = "" // the repository itself, created by the Flux bootstrap
			}
		} else if ref := fieldOf(b.obj, "spec", "chartRef"); ref != nil {
			where = "spec.chartRef"
			refKind, refName, refNS = str(b.obj, "spec", "chartRef", "kind"), str(b.obj, "spec", "chartRef", "name"), str(b.obj, "spec", "chartRef", "namespace")
		} else {
			where = "spec.chart.spec.sourceRef"
			refKind, refName, refNS = str(b.obj, "spec", "chart", "spec", "sourceRef", "kind"), str(b.obj, "spec", "chart", "spec", "sourceRef", "name"), str(b.obj, "spec", "chart", "spec", "sourceRef", "namespace")
		}
		if refNS == "" {
			refNS = ns
		}
		if refName != "" && refKind != "" && !exists[key(refKind, refNS, refName)] {
			add(b, "%s: %s %s/%s does not exist in this repository", where, refKind, refNS, refName)
		}
	}
	kinds := make([]string, 0, len(graphs))
	for k := range graphs {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		for _, c := range cycles(graphs[k]) {
			names := make([]string, len(c))
			for i, n := range c {
				names[i] = strings.TrimPrefix(n.key, k+" ")
			}
			add(c[0].b, "spec.dependsOn forms a cycle: %s → %s", strings.Join(names, " → "), names[0])
		}
	}
	return out
}

// cycles returns each elementary cycle found by a depth-first search, once,
// starting at its smallest member.
func cycles(nodes []*node) [][]*node {
	byKey := map[string]*node{}
	for _, n := range nodes {
		byKey[n.key] = n
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].key < nodes[j].key })
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []*node
	seen := map[string]bool{}
	var out [][]*node
	var visit func(n *node)
	visit = func(n *node) {
		color[n.key] = grey
		stack = append(stack, n)
		deps := append([]string(nil), n.deps...)
		sort.Strings(deps)
		for _, d := range deps {
			m := byKey[d]
			switch color[d] {
			case white:
				visit(m)
			case grey:
				var c []*node
				for i := len(stack) - 1; i >= 0; i-- {
					c = append([]*node{stack[i]}, c...)
					if stack[i] == m {
						break
					}
				}
				min := 0
				for i := range c {
					if c[i].key < c[min].key {
						min = i
					}
				}
				c = append(c[min:], c[:min]...)
				id := ""
				for _, x := range c {
					id += x.key + "|"
				}
				if !seen[id] {
					seen[id] = true
					out = append(out, c)
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n.key] = black
	}
	for _, n := range nodes {
		if color[n.key] == white {
			visit(n)
		}
	}
	return out
}

func key(kind, ns, name string) string { return kind + " " + ns + "/" + name }

func nsOf(o map[string]any) string {
	if ns := str(o, "metadata", "namespace"); ns != "" {
		return ns
	}
	return fluxNamespace
}

func groupOf(apiVersion string) string {
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}
