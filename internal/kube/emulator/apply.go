package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// This file reproduces how Talos applies a cluster's manifests (bootstrap,
// inline and extra manifests), so that the sandbox gets the order of things
// right. Source: Talos v1.12,
// internal/app/machined/pkg/controllers/k8s/manifest_apply.go, with the
// controller runtime's restart backoff (cosi-project/runtime: exponential,
// 0.5 s initial, ×1.5, at most 60 s, no limit on attempts).

// ManifestObjects splits manifests into objects in Talos's apply order:
// Namespaces first, then CRDs, then everything else in manifest order.
func ManifestObjects(manifests []string) ([]*unstructured.Unstructured, error) {
	var objects []*unstructured.Unstructured

	for i, m := range manifests {
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(m), 4096)

		for {
			obj := &unstructured.Unstructured{}
			if err := dec.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}

				return nil, fmt.Errorf("manifest %d: %w", i, err)
			}

			if len(obj.Object) == 0 {
				continue
			}

			objects = append(objects, obj)
		}
	}

	rank := func(o *unstructured.Unstructured) int {
		gvk := o.GroupVersionKind()

		switch {
		case gvk.Kind == "Namespace" && gvk.Version == "v1":
			return 0
		case gvk.Kind == "CustomResourceDefinition" && gvk.Group == "apiextensions.k8s.io":
			return 1
		default:
			return 2
		}
	}

	sort.SliceStable(objects, func(i, j int) bool {
		ri, rj := rank(objects[i]), rank(objects[j])
		if ri != rj || ri == 2 {
			return ri < rj
		}

		return objects[i].GetName() < objects[j].GetName()
	})

	return objects, nil
}

// ApplyOnce is one run of Talos's apply: discovery is fresh and then cached
// for the whole run; an object whose kind is unknown, or that the server
// rejects as malformed, is skipped with an error and the others are still
// created; any other error stops the run. Objects that exist are left alone.
// It returns the objects it created.
func ApplyOnce(ctx context.Context, cfg *rest.Config, objects []*unstructured.Unstructured) ([]string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}

	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	var (
		created []string
		errs    []error
	)

	for _, orig := range objects {
		obj := orig.DeepCopy()
		gvk := obj.GroupVersionKind()
		name := fmt.Sprintf("%s/%s/%s/%s", gvk.Group, gvk.Version, gvk.Kind, obj.GetName())

		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || meta.IsNoMatchError(err) {
				errs = append(errs, fmt.Errorf("error creating mapping for object %s: %w", name, err))
				continue
			}

			return created, fmt.Errorf("error creating mapping for object %s: %w", name, err)
		}

		var dr dynamic.ResourceInterface

		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace("default")
			}

			dr = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		} else {
			dr = dyn.Resource(mapping.Resource)
		}

		if _, err := dr.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return created, fmt.Errorf("error checking resource existence: %w", err)
		}

		if _, err := dr.Create(ctx, obj, metav1.CreateOptions{FieldManager: "talos"}); err != nil {
			switch {
			case apierrors.IsAlreadyExists(err):
			case apierrors.IsMethodNotSupported(err), apierrors.IsBadRequest(err), apierrors.IsInvalid(err):
				errs = append(errs, fmt.Errorf("error creating %s: %w", name, err))
			default:
				return created, fmt.Errorf("error creating %s: %w", name, err)
			}

			continue
		}

		created = append(created, name)
	}

	return created, errors.Join(errs...)
}

// Backoff is the controller runtime's restart backoff, scaled for a sandbox.
type Backoff struct {
	Initial, Max time.Duration
}

// TalosBackoff is the real one (without its randomisation).
var TalosBackoff = Backoff{Initial: 500 * time.Millisecond, Max: time.Minute}

// Scaled divides every interval by factor.
func (b Backoff) Scaled(factor float64) Backoff {
	if factor <= 0 {
		return b
	}

	return Backoff{Initial: time.Duration(float64(b.Initial) / factor), Max: time.Duration(float64(b.Max) / factor)}
}

// ApplyUntilDone runs ApplyOnce until it succeeds or ctx ends, waiting the
// backoff between failed runs, as the Talos controller is restarted. report
// (optional) is told the outcome of every run.
func ApplyUntilDone(ctx context.Context, cfg *rest.Config, objects []*unstructured.Unstructured, b Backoff, report func(created []string, err error)) error {
	wait := b.Initial

	for {
		created, err := ApplyOnce(ctx, cfg, objects)
		if report != nil {
			report(created, err)
		}

		if err == nil {
			return nil
		}

		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}

		wait = min(time.Duration(float64(wait)*1.5), b.Max)
	}
}

// InProcessConfig is a client config that reaches h without a network, for
// Talos's own apply (it talks to the API server over localhost).
func InProcessConfig(h http.Handler) *rest.Config {
	return &rest.Config{
		Host:      "http://kube-apiserver.local",
		Transport: handlerTransport{h},
		QPS:       -1,
	}
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()

	if req.Body == nil {
		req.Body = io.NopCloser(bytes.NewReader(nil))
	}

	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req

	return resp, nil
}
