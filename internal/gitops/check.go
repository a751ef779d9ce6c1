package gitops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Problem is one thing wrong in a repository, reported as
// "file: object: what is wrong".
type Problem struct {
	File    string `json:"file"`    // slash-separated, relative to the repository root
	Object  string `json:"object"`  // "Kind namespace/name", or what was being read
	Message string `json:"message"` // what is wrong
}

func (p Problem) String() string { return p.File + ": " + p.Object + ": " + p.Message }

// Result is what Check found.
type Result struct {
	Problems []Problem `json:"problems"`
	// Unchecked lists objects no schema is known for, and paths of other
	// sources that cannot be built offline: not failures, but not proven.
	Unchecked []Problem `json:"unchecked"`
	// Built is every path built with kustomize.
	Built []string `json:"built"`
	// Objects counts the distinct objects validated.
	Objects int `json:"objects"`
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// SourceName is the Flux source that syncs this repository: Kustomizations
	// whose sourceRef names it are built from here. Default flux-system.
	SourceName string
}

// DefaultSourceName is the GitRepository that Flux bootstrap and the Flux
// Operator's FluxInstance both create for the repository they sync.
const DefaultSourceName = "flux-system"

const (
	fluxKustomizeGroup = "kustomize.toolkit.fluxcd.io"
	fluxHelmGroup      = "helm.toolkit.fluxcd.io"
	fluxSourceGroup    = "source.toolkit.fluxcd.io"
)

// kustomizationFiles are the names kustomize recognises, in its order.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// repo is a repository read into memory, so builds cannot reach outside it
// (as Flux's own builds cannot) and generated kustomizations never touch disk.
type repo struct {
	files map[string][]byte // rel path → content
	// objects in each YAML file, for attributing built objects to files.
	objects map[string][]map[string]any
	// kustomizeDirs maps a directory holding a kustomization file to it.
	kustomizeDirs map[string]string
}

func readRepo(root string) (*repo, []Problem, error) {
	r := &repo{files: map[string][]byte{}, objects: map[string][]map[string]any{}, kustomizeDirs: map[string]string{}}
	var probs []Problem
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // .git, .github: not Flux's business
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		r.files[rel] = data
		dir, base := path.Split(rel)
		dir = path.Clean(dir)
		for _, k := range kustomizationFiles {
			if base == k {
				if _, seen := r.kustomizeDirs[dir]; !seen {
					r.kustomizeDirs[dir] = rel
				}
				return nil
			}
		}
		if ext := path.Ext(base); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		objs, err := decodeObjects(data)
		if err != nil {
			probs = append(probs, Problem{File: rel, Object: "file", Message: "not valid YAML: " + err.Error()})
			return nil
		}
		r.objects[rel] = objs
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return r, probs, nil
}

// fs returns a fresh in-memory copy of the repository rooted at "/", plus a
// Flux-style generated kustomization for dir when it has none.
func (r *repo) fs(dir string) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	for rel, data := range r.files {
		if err := mem.WriteFile("/"+rel, data); err != nil {
			return nil, err
		}
	}
	if _, ok := r.kustomizeDirs[dir]; !ok {
		if err := mem.WriteFile(path.Join("/", dir, "kustomization.yaml"), r.generateKustomization(dir)); err != nil {
			return nil, err
		}
	}
	return mem, nil
}

// generateKustomization does what Flux's kustomize-controller does for a path
// without a kustomization file: every YAML file holding Kubernetes objects,
// recursively, with subdirectories that have their own kustomization taken
// as a whole.
func (r *repo) generateKustomization(dir string) []byte {
	var resources []string
	seenDirs := map[string]bool{}
	var rels []string
	for rel := range r.files {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		sub, ok := within(dir, rel)
		if !ok {
			continue
		}
		if kd := r.kustomizeAncestor(dir, path.Dir(rel)); kd != "" {
			if !seenDirs[kd] {
				seenDirs[kd] = true
				s, _ := within(dir, kd+"/x")
				resources = append(resources, path.Dir(s))
			}
			continue
		}
		objs, ok := r.objects[rel]
		if !ok || len(objs) == 0 {
			continue
		}
		allObjects := true
		for _, o := range objs {
			if str(o, "apiVersion") == "" || str(o, "kind") == "" {
				allObjects = false
			}
		}
		if allObjects {
			resources = append(resources, sub)
		}
	}
	out, _ := json.Marshal(map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources,
	})
	return out
}

// kustomizeAncestor returns the highest directory strictly below dir and at
// or above d that has a kustomization file.
func (r *repo) kustomizeAncestor(dir, d string) string {
	var chain []string
	for cur := d; cur != dir && cur != "." && cur != "/"; cur = path.Dir(cur) {
		chain = append(chain, cur)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if _, ok := r.kustomizeDirs[chain[i]]; ok {
			return chain[i]
		}
	}
	return ""
}

// within reports whether rel lies under dir and returns it relative to dir.
func within(dir, rel string) (string, bool) {
	if dir == "." {
		return rel, true
	}
	if strings.HasPrefix(rel, dir+"/") {
		return strings.TrimPrefix(rel, dir+"/"), true
	}
	return "", false
}

// target is one path to build.
type target struct {
	dir  string
	file string // where build problems are reported
	post *postBuild
}

// built is one object produced by a build.
type built struct {
	obj    map[string]any
	target target
	// unresolved are variables only spec.postBuild.substituteFrom could
	// fill: their values live in the cluster, so the object is not checked.
	unresolved []string
}

// Check validates the repository at root offline: every path that Flux would
// build (kustomize's Go API, as kustomize-controller does), every resulting
// object against its real schema, every Flux dependsOn and source reference,
// and that no Secret carries data.
func Check(ctx context.Context, root string, schemas *Schemas, opts CheckOptions) (*Result, error) {
	if opts.SourceName == "" {
		opts.SourceName = DefaultSourceName
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", root)
	}
	r, probs, err := readRepo(root)
	if err != nil {
		return nil, err
	}
	res := &Result{Problems: append([]Problem{}, probs...), Unchecked: []Problem{}, Built: []string{}}
	targets := r.targets(opts, res)
	var objects []built
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		objs, err := r.build(t.dir)
		if err != nil {
			res.Problems = append(res.Problems, Problem{File: t.file, Object: "kustomize build " + displayDir(t.dir), Message: err.Error()})
			continue
		}
		res.Built = append(res.Built, displayDir(t.dir))
		for _, o := range objs {
			b := built{obj: o, target: t}
			if t.post != nil {
				if b.obj, b.unresolved, err = t.post.apply(o); err != nil {
					res.Problems = append(res.Problems, Problem{File: t.file, Object: objectName(o), Message: "spec.postBuild substitution: " + err.Error()})
					continue
				}
			}
			objects = append(objects, b)
		}
	}
	objects = dedupe(objects)
	res.Objects = len(objects)

	local := schemas.clone()
	for _, b := range objects {
		if str(b.obj, "kind") == "CustomResourceDefinition" {
			data, _ := json.Marshal(b.obj)
			if err := local.AddCRDs(data); err != nil {
				res.Problems = append(res.Problems, Problem{File: r.fileOf(b), Object: objectName(b.obj), Message: "unusable CRD: " + err.Error()})
			}
		}
	}
	for _, b := range objects {
		file, name := r.fileOf(b), objectName(b.obj)
		if len(b.unresolved) > 0 {
			res.Unchecked = append(res.Unchecked, Problem{File: file, Object: name,
				Message: fmt.Sprintf("uses ${%s} from spec.postBuild.substituteFrom, which only the cluster knows", strings.Join(b.unresolved, "}, ${"))})
			continue
		}
		msgs, err := local.Validate(ctx, b.obj)
		switch {
		case errors.Is(err, errNoSchema):
			res.Unchecked = append(res.Unchecked, Problem{File: file, Object: name,
				Message: fmt.Sprintf("no schema known for apiVersion %s (its CRD is neither built in nor in the repository)", str(b.obj, "apiVersion"))})
		case err != nil:
			res.Problems = append(res.Problems, Problem{File: file, Object: name, Message: err.Error()})
		}
		for _, m := range msgs {
			res.Problems = append(res.Problems, Problem{File: file, Object: name, Message: m})
		}
		if m := secretData(b.obj); m != "" {
			res.Problems = append(res.Problems, Problem{File: file, Object: name, Message: m})
		}
	}
	for _, p := range checkReferences(objects, opts) {
		p.File = r.fileOf(p.from)
		res.Problems = append(res.Problems, p.Problem)
	}
	res.Problems = sortProblems(res.Problems)
	res.Unchecked = sortProblems(res.Unchecked)
	sort.Strings(res.Built)
	return res, nil
}

func displayDir(dir string) string {
	if dir == "." {
		return "./"
	}
	return "./" + dir
}

// targets lists what to build: every directory with a kustomization file
// (except components, which only build inside another), every local Flux
// Kustomization path, and every directory holding Flux Kustomizations that
// has no kustomization file (the path Flux's own sync points at).
func (r *repo) targets(opts CheckOptions, res *Result) []target {
	byDir := map[string]target{}
	for dir, file := range r.kustomizeDirs {
		if isComponent(r.files[file]) {
			continue
		}
		byDir[dir] = target{dir: dir, file: file}
	}
	var files []string
	for f := range r.objects {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		for _, o := range r.objects[f] {
			if !isFluxKustomization(o) {
				continue
			}
			dir := path.Dir(f)
			if _, ok := byDir[dir]; !ok {
				if _, hasKustomization := r.kustomizeDirs[dir]; !hasKustomization {
					byDir[dir] = target{dir: dir, file: dir + "/"}
				}
			}
			p := str(o, "spec", "path")
			ref := str(o, "spec", "sourceRef", "name")
			if ref != opts.SourceName {
				res.Unchecked = append(res.Unchecked, Problem{File: f, Object: objectName(o),
					Message: fmt.Sprintf("spec.path %q is in %s %s, not in this repository: not built", p, str(o, "spec", "sourceRef", "kind"), ref)})
				continue
			}
			clean := path.Clean(strings.TrimPrefix(p, "/"))
			if p == "" {
				clean = "."
			}
			if strings.HasPrefix(clean, "../") || clean == ".." {
				res.Problems = append(res.Problems, Problem{File: f, Object: objectName(o), Message: fmt.Sprintf("spec.path %q leaves the repository", p)})
				continue
			}
			if !r.isDir(clean) {
				res.Problems = append(res.Problems, Problem{File: f, Object: objectName(o), Message: fmt.Sprintf("spec.path %q does not exist in the repository", p)})
				continue
			}
			t, ok := byDir[clean]
			if !ok {
				t = target{dir: clean, file: f}
				if kf, ok := r.kustomizeDirs[clean]; ok {
					t.file = kf
				}
			}
			if t.post == nil {
				t.post = postBuildOf(o)
			}
			byDir[clean] = t
		}
	}
	var out []target
	for _, t := range byDir {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	return out
}

func (r *repo) isDir(dir string) bool {
	if dir == "." {
		return true
	}
	for rel := range r.files {
		if strings.HasPrefix(rel, dir+"/") {
			return true
		}
	}
	return false
}

func isComponent(data []byte) bool {
	objs, err := decodeObjects(data)
	return err == nil && len(objs) == 1 && str(objs[0], "kind") == "Component"
}

func isFluxKustomization(o map[string]any) bool {
	return str(o, "kind") == "Kustomization" && strings.HasPrefix(str(o, "apiVersion"), fluxKustomizeGroup+"/")
}

// build runs kustomize as kustomize-controller does: no load restrictions
// inside the repository, no plugins, nothing outside it.
func (r *repo) build(dir string) ([]map[string]any, error) {
	mem, err := r.fs(dir)
	if err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = kustypes.LoadRestrictionsNone
	opts.PluginConfig = kustypes.DisabledPluginConfig()
	resMap, err := krusty.MakeKustomizer(opts).Run(mem, path.Join("/", dir))
	if err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
	}
	var out []map[string]any
	for _, res := range resMap.Resources() {
		m, err := res.Map()
		if err == nil {
			m, err = normalize(m)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func dedupe(objs []built) []built {
	seen := map[string]bool{}
	var out []built
	for _, b := range objs {
		data, _ := json.Marshal(b.obj)
		if seen[string(data)] {
			continue
		}
		seen[string(data)] = true
		out = append(out, b)
	}
	return out
}

// fileOf finds the file a built object came from: the YAML file in the
// repository defining that kind and name (preferring one under the built
// path), or else the kustomization that produced it.
func (r *repo) fileOf(b built) string {
	kind, name, ns := str(b.obj, "kind"), str(b.obj, "metadata", "name"), str(b.obj, "metadata", "namespace")
	var candidates []string
	for f, objs := range r.objects {
		for _, o := range objs {
			if str(o, "kind") != kind || str(o, "metadata", "name") != name {
				continue
			}
			if ons := str(o, "metadata", "namespace"); ons != "" && ns != "" && ons != ns {
				continue
			}
			candidates = append(candidates, f)
			break
		}
	}
	sort.Strings(candidates)
	for _, c := range candidates {
		if _, ok := within(b.target.dir, c); ok {
			return c
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return b.target.file
}

// objectName is "Kind namespace/name" or "Kind name".
func objectName(o map[string]any) string {
	kind, name, ns := str(o, "kind"), str(o, "metadata", "name"), str(o, "metadata", "namespace")
	if kind == "" {
		kind = "object without kind"
	}
	if name == "" {
		name = "<no name>"
	}
	if ns != "" {
		return kind + " " + ns + "/" + name
	}
	return kind + " " + name
}

// secretData flags a Secret that carries values: in Git they are readable
// by everyone with access to the repository, forever.
func secretData(o map[string]any) string {
	if str(o, "kind") != "Secret" || str(o, "apiVersion") != "v1" {
		return ""
	}
	var keys []string
	for _, f := range []string{"data", "stringData"} {
		if m, ok := o[f].(map[string]any); ok {
			for k := range m {
				keys = append(keys, f+"."+k)
			}
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	return fmt.Sprintf("Secret carries data in Git (%s): keep the value in the secret store and reference it with an ExternalSecret", strings.Join(keys, ", "))
}

func sortProblems(ps []Problem) []Problem {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		if ps[i].Object != ps[j].Object {
			return ps[i].Object < ps[j].Object
		}
		return ps[i].Message < ps[j].Message
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}
