package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	crvalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// FieldValidation is the fieldValidation query parameter of a write: what
// kube-apiserver does with fields the type does not know.
type FieldValidation string

// The modes kube-apiserver accepts. Warn is its default (Kubernetes 1.27+):
// unknown fields are dropped and reported in a Warning header.
const (
	FieldValidationStrict FieldValidation = "Strict"
	FieldValidationWarn   FieldValidation = "Warn"
	FieldValidationIgnore FieldValidation = "Ignore"
)

// builtinScheme knows every built-in type, as kube-apiserver does, plus the
// CRD type itself.
func builtinScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	apiextensionsinstall.Install(s)

	return s
}

// Decoder decodes objects the way kube-apiserver does on create: built-in
// kinds strictly into their k8s.io/api types, custom resources against the
// structural schema of their CRD (pruning, defaulting, OpenAPI and CEL
// validation). It is not safe for concurrent use; the Server serialises.
type Decoder struct {
	scheme   *runtime.Scheme
	strict   runtime.Decoder
	proto    runtime.Decoder
	crds     map[schema.GroupKind]*compiledCRD
	byPlural map[schema.GroupResource]*compiledCRD
}

type compiledCRD struct {
	crd      *apiextensionsv1.CustomResourceDefinition
	versions map[string]*compiledVersion
}

type compiledVersion struct {
	structural *structuralschema.Structural
	validator  crvalidation.SchemaValidator
	cel        *cel.Validator
}

// NewDecoder returns a decoder that knows the built-in kinds and no CRD.
func NewDecoder() *Decoder {
	s := builtinScheme()

	return &Decoder{
		scheme:   s,
		strict:   serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer(),
		proto:    serializer.NewCodecFactory(s).UniversalDeserializer(),
		crds:     map[schema.GroupKind]*compiledCRD{},
		byPlural: map[schema.GroupResource]*compiledCRD{},
	}
}

// protobufToJSON decodes a protobuf-encoded built-in object and re-encodes
// it as JSON with its type information.
func (d *Decoder) protobufToJSON(body []byte) ([]byte, error) {
	obj, gvk, err := d.proto.Decode(body, nil, nil)
	if err != nil {
		return nil, err
	}

	obj.GetObjectKind().SetGroupVersionKind(*gvk)

	return json.Marshal(obj)
}

// Decoded is an object as it would be stored, with the warnings a client
// would see.
type Decoded struct {
	GVK      schema.GroupVersionKind
	Object   map[string]any
	Warnings []string
}

// errBadRequest and errInvalid classify decoding failures as the API server's
// 400 and 422 answers.
var (
	errBadRequest = errors.New("bad request")
	errInvalid    = errors.New("invalid")
)

// Decode decodes one JSON object. Unknown fields are an error with
// FieldValidationStrict, warnings otherwise; type errors and schema
// violations are always errors.
func (d *Decoder) Decode(data []byte, mode FieldValidation) (*Decoded, error) {
	var u map[string]any
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("%w: the object is not JSON: %v", errBadRequest, err)
	}

	apiVersion, _ := u["apiVersion"].(string)
	kind, _ := u["kind"].(string)
	if apiVersion == "" || kind == "" {
		return nil, fmt.Errorf("%w: Object 'Kind' or 'apiVersion' is missing", errBadRequest)
	}

	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: apiVersion %q: %v", errBadRequest, apiVersion, err)
	}

	gvk := gv.WithKind(kind)

	if crd, ok := d.crds[gvk.GroupKind()]; ok {
		return d.decodeCustom(crd, gvk, u, mode)
	}

	if d.scheme.Recognizes(gvk) {
		return d.decodeBuiltin(gvk, data, mode)
	}

	return nil, &NoKindError{GVK: gvk}
}

// NoKindError is what a client's REST mapper reports for a kind the server
// does not serve (a CRD that does not exist yet).
type NoKindError struct{ GVK schema.GroupVersionKind }

func (e *NoKindError) Error() string {
	return fmt.Sprintf("no matches for kind %q in version %q", e.GVK.Kind, e.GVK.GroupVersion().String())
}

func (d *Decoder) decodeBuiltin(gvk schema.GroupVersionKind, data []byte, mode FieldValidation) (*Decoded, error) {
	obj, _, err := d.strict.Decode(data, &gvk, nil)

	var warnings []string

	if err != nil {
		if !runtime.IsStrictDecodingError(err) || obj == nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, err)
		}

		if strictErr, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range strictErr.Errors() {
				warnings = append(warnings, e.Error())
			}
		}

		if mode == FieldValidationStrict {
			return nil, fmt.Errorf("%w: strict decoding error: %s", errBadRequest, strings.Join(warnings, ", "))
		}
	}

	if errs := validateBuiltin(obj); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", errInvalid, errs.ToAggregate().Error())
	}

	if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
		if errs := d.validateCRD(crd); len(errs) > 0 {
			return nil, fmt.Errorf("%w: %s", errInvalid, errs.ToAggregate().Error())
		}
	}

	// Stored as the typed object re-encoded: unknown fields are gone.
	clean, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}

	var m map[string]any
	if err := json.Unmarshal(clean, &m); err != nil {
		return nil, err
	}

	m["apiVersion"], m["kind"] = gvk.GroupVersion().String(), gvk.Kind
	if mode == FieldValidationIgnore {
		warnings = nil
	}

	return &Decoded{GVK: gvk, Object: m, Warnings: warnings}, nil
}

// validateBuiltin checks the rules of kube-apiserver's validation that
// matter for what rawkode-cloud renders: object names, and workloads whose
// selector must select their own pod template and whose pods need
// containers with images.
func validateBuiltin(obj runtime.Object) field.ErrorList {
	var errs field.ErrorList

	accessor, ok := obj.(metav1.Object)
	if ok {
		if accessor.GetName() == "" && accessor.GetGenerateName() == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "name"), "name or generateName is required"))
		} else if accessor.GetName() != "" {
			for _, msg := range validation.NameIsDNSSubdomain(accessor.GetName(), false) {
				if isRBAC(obj) {
					break // RBAC names are path segments: colons (system:...) are fine
				}
				errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), accessor.GetName(), msg))
			}
		}
	}

	checkPodSpec := func(p *field.Path, selector *metav1.LabelSelector, tmpl corev1.PodTemplateSpec) {
		if selector == nil {
			errs = append(errs, field.Required(p.Child("selector"), ""))
		} else if sel, err := metav1.LabelSelectorAsSelector(selector); err != nil {
			errs = append(errs, field.Invalid(p.Child("selector"), selector, err.Error()))
		} else if !sel.Matches(labelsSet(tmpl.Labels)) {
			errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
		}

		if len(tmpl.Spec.Containers) == 0 {
			errs = append(errs, field.Required(p.Child("template", "spec", "containers"), ""))
		}

		for i, c := range tmpl.Spec.Containers {
			if c.Image == "" {
				errs = append(errs, field.Required(p.Child("template", "spec", "containers").Index(i).Child("image"), ""))
			}
		}
	}

	switch o := obj.(type) {
	case *appsv1.Deployment:
		checkPodSpec(field.NewPath("spec"), o.Spec.Selector, o.Spec.Template)
	case *appsv1.DaemonSet:
		checkPodSpec(field.NewPath("spec"), o.Spec.Selector, o.Spec.Template)
	case *appsv1.StatefulSet:
		checkPodSpec(field.NewPath("spec"), o.Spec.Selector, o.Spec.Template)
	}

	return errs
}

func isRBAC(obj runtime.Object) bool {
	switch obj.(type) {
	case *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *rbacv1.Role, *rbacv1.RoleBinding:
		return true
	}

	return false
}

type labelsSet map[string]string

func (l labelsSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelsSet) Get(k string) string { return l[k] }
func (l labelsSet) Lookup(k string) (string, bool) {
	v, ok := l[k]
	return v, ok
}

// validateCRD runs kube-apiserver's own CRD validation (structural schema,
// names, versions) on the internal form of the CRD.
func (d *Decoder) validateCRD(crd *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	v1 := crd.DeepCopy()
	d.scheme.Default(v1)

	var internal apiextensions.CustomResourceDefinition
	if err := d.scheme.Convert(v1, &internal, nil); err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("spec"), err)}
	}

	return crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal)
}

// AddCRD makes the decoder serve a CRD's kinds, as kube-apiserver does once
// the CRD is established.
func (d *Decoder) AddCRD(crd *apiextensionsv1.CustomResourceDefinition) error {
	compiled, err := compileCRD(crd)
	if err != nil {
		return err
	}

	d.addCompiled(compiled)

	return nil
}

func (d *Decoder) addCompiled(compiled *compiledCRD) {
	crd := compiled.crd
	d.crds[schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}] = compiled
	d.byPlural[schema.GroupResource{Group: crd.Spec.Group, Resource: crd.Spec.Names.Plural}] = compiled
}

// compileCRD builds the structural schema and validators of every served
// version; the result is read-only and may be shared.
func compileCRD(crd *apiextensionsv1.CustomResourceDefinition) (*compiledCRD, error) {
	compiled := &compiledCRD{crd: crd.DeepCopy(), versions: map[string]*compiledVersion{}}

	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}

		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, v.Name, err)
		}

		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return nil, fmt.Errorf("CRD %s version %s: schema is not structural: %w", crd.Name, v.Name, err)
		}

		validator, _, err := crvalidation.NewSchemaValidator(&internal)
		if err != nil {
			return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, v.Name, err)
		}

		compiled.versions[v.Name] = &compiledVersion{
			structural: s,
			validator:  validator,
			cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
		}
	}

	return compiled, nil
}

// RemoveCRD stops serving a CRD's kinds.
func (d *Decoder) RemoveCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	delete(d.crds, schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind})
	delete(d.byPlural, schema.GroupResource{Group: crd.Spec.Group, Resource: crd.Spec.Names.Plural})
}

func (d *Decoder) decodeCustom(crd *compiledCRD, gvk schema.GroupVersionKind, u map[string]any, mode FieldValidation) (*Decoded, error) {
	v, ok := crd.versions[gvk.Version]
	if !ok {
		return nil, &NoKindError{GVK: gvk}
	}

	var warnings []string

	pruned := pruning.PruneWithOptions(u, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range pruned {
		warnings = append(warnings, fmt.Sprintf("unknown field %q", p))
	}

	if len(warnings) > 0 && mode == FieldValidationStrict {
		return nil, fmt.Errorf("%w: strict decoding error: %s", errBadRequest, strings.Join(warnings, ", "))
	}

	defaulting.Default(u, v.structural)

	var errs field.ErrorList
	errs = append(errs, objectmeta.Validate(context.Background(), nil, u, v.structural, true)...)
	errs = append(errs, crvalidation.ValidateCustomResource(nil, u, v.validator)...)

	celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, u, nil, celconfig.RuntimeCELCostBudget)
	errs = append(errs, celErrs...)

	if meta, ok := u["metadata"].(map[string]any); ok {
		name, _ := meta["name"].(string)
		if name == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "name"), "name or generateName is required"))
		}
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", errInvalid, errs.ToAggregate().Error())
	}

	if mode == FieldValidationIgnore {
		warnings = nil
	}

	return &Decoded{GVK: gvk, Object: u, Warnings: warnings}, nil
}
