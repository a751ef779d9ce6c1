package gitops

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/rawkode/rawkode-cloud/third_party/cilium"
	"github.com/rawkode/rawkode-cloud/third_party/crds"
	gatewayapi "github.com/rawkode/rawkode-cloud/third_party/gateway-api"
)

// Schemas knows the real schema of every kind it can check: the built-in
// Kubernetes types (k8s.io/api, decoded strictly) and custom resources (the
// structural schema of their CRD, validated the way the API server does:
// unknown fields, OpenAPI value validation, list types and CEL rules).
type Schemas struct {
	builtin runtime.Decoder
	scheme  *runtime.Scheme
	custom  map[schema.GroupVersionKind]*crdVersion
}

type crdVersion struct {
	crd        string // the CRD's name, for messages
	namespaced bool
	schema     *apiextensionsv1.JSONSchemaProps

	// Compiled on first use: CEL rules especially are costly, and a
	// repository uses only some of the kinds there are schemas for.
	once       sync.Once
	err        error
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	cel        *cel.Validator
}

func (cv *crdVersion) compile() error {
	cv.once.Do(func() {
		internal := &apiextensions.JSONSchemaProps{}
		if cv.err = apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(cv.schema, internal, nil); cv.err != nil {
			return
		}
		if cv.structural, cv.err = structuralschema.NewStructural(internal); cv.err != nil {
			cv.err = fmt.Errorf("not a structural schema: %w", cv.err)
			return
		}
		if cv.validator, _, cv.err = validation.NewSchemaValidator(internal); cv.err != nil {
			return
		}
		cv.cel = cel.NewValidator(cv.structural, true, celconfig.PerCallLimit)
	})
	return cv.err
}

// NewSchemas loads the built-in types and the embedded third-party CRDs.
func NewSchemas() (*Schemas, error) {
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(sch); err != nil {
		return nil, err
	}
	s := &Schemas{
		scheme:  sch,
		builtin: serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer(),
		custom:  map[schema.GroupVersionKind]*crdVersion{},
	}
	// Cilium's and the Gateway API's CRDs are the very files the platform
	// layer installs at first boot; the other components' are ours.
	for _, fsys := range []embed.FS{crds.FS, cilium.CRDs, gatewayapi.CRDs} {
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := fsys.ReadFile(p)
			if err != nil {
				return err
			}
			if err := s.AddCRDs(data); err != nil {
				return fmt.Errorf("embedded CRD %s: %w", p, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddCRDs adds every CustomResourceDefinition in a (multi-document) YAML
// file, e.g. CRDs a repository ships itself.
func (s *Schemas) AddCRDs(data []byte) error {
	docs, err := splitDocuments(data)
	if err != nil {
		return err
	}
	for _, doc := range docs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(doc, &crd); err != nil {
			return err
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		if err := s.addCRD(&crd); err != nil {
			return fmt.Errorf("%s: %w", crd.Name, err)
		}
	}
	return nil
}

func (s *Schemas) addCRD(crd *apiextensionsv1.CustomResourceDefinition) error {
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		s.custom[gvk] = &crdVersion{
			crd:        crd.Name,
			namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			schema:     v.Schema.OpenAPIV3Schema,
		}
	}
	return nil
}

// Knows reports whether there is a schema for gvk.
func (s *Schemas) Knows(gvk schema.GroupVersionKind) bool {
	if _, ok := s.custom[gvk]; ok {
		return true
	}
	return s.scheme.Recognizes(gvk)
}

// errNoSchema means neither k8s.io/api nor a known CRD describes the kind.
var errNoSchema = errors.New("no schema known for this kind")

// Validate checks one object and returns what is wrong with it, one message
// per problem, each naming the field.
func (s *Schemas) Validate(ctx context.Context, obj map[string]any) ([]string, error) {
	gvk := gvkOf(obj)
	if cv, ok := s.custom[gvk]; ok {
		if err := cv.compile(); err != nil {
			return nil, fmt.Errorf("the schema of CRD %s version %s cannot be used: %w", cv.crd, gvk.Version, err)
		}
		return cv.validate(ctx, obj), nil
	}
	if !s.scheme.Recognizes(gvk) {
		return nil, errNoSchema
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	_, _, err = s.builtin.Decode(data, nil, nil)
	if err == nil {
		return nil, nil
	}
	if runtime.IsStrictDecodingError(err) {
		var se interface{ Errors() []error }
		if errors.As(err, &se) {
			var out []string
			for _, e := range se.Errors() {
				out = append(out, e.Error())
			}
			return out, nil
		}
	}
	return []string{strings.TrimPrefix(err.Error(), "strict decoding error: ")}, nil
}

func (cv *crdVersion) validate(ctx context.Context, obj map[string]any) []string {
	var out []string
	// Metadata is ObjectMeta for every custom resource: decode it strictly.
	if md, ok := obj["metadata"]; ok {
		if err := strictInto(md, &metav1.ObjectMeta{}); err != nil {
			out = append(out, "metadata: "+err.Error())
		}
	}
	// Pruning is what the API server silently does to fields the schema does
	// not know; in Git that is almost always a typo or a field of another
	// version, so each one is a problem here.
	obj = runtime.DeepCopyJSONValue(obj).(map[string]any)
	for _, p := range pruning.PruneWithOptions(obj, cv.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		out = append(out, fmt.Sprintf("unknown field %q (not in the schema of CRD %s)", p, cv.crd))
	}
	// The API server defaults before it validates, and CEL rules rely on
	// defaulted fields being present.
	defaulting.Default(obj, cv.structural)
	for _, e := range validation.ValidateCustomResource(nil, obj, cv.validator) {
		out = append(out, e.Error())
	}
	for _, e := range listtype.ValidateListSetsAndMaps(nil, cv.structural, obj) {
		out = append(out, e.Error())
	}
	if cv.cel != nil {
		errs, _ := cv.cel.Validate(ctx, nil, cv.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range errs {
			if e.Type == field.ErrorTypeInvalid && strings.Contains(e.Detail, "oldSelf") {
				continue // transition rules need the object's previous state
			}
			out = append(out, e.Error())
		}
	}
	sort.Strings(out)
	return out
}

// strictInto decodes v into out, failing on unknown or duplicate fields.
func strictInto(v any, out any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(data, out)
}

func gvkOf(obj map[string]any) schema.GroupVersionKind {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	return schema.FromAPIVersionAndKind(apiVersion, kind)
}

// clone returns a copy that CRDs found in one repository can be added to
// without leaking into the next check.
func (s *Schemas) clone() *Schemas {
	c := *s
	c.custom = make(map[schema.GroupVersionKind]*crdVersion, len(s.custom))
	for k, v := range s.custom {
		c.custom[k] = v
	}
	return &c
}
