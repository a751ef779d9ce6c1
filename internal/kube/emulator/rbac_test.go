package emulator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
)

// agent is the Teleport kube agent's service account: it authenticates
// with its token and impersonates the Teleport user.
var agent = kubeemulator.ServiceAccount("teleport", "teleport-kube-agent")

// asAgent is a client of srv authenticated as the agent, impersonating
// user in groups.
func asAgent(t *testing.T, srv *kubeemulator.Server, user string, groups ...string) *kubernetes.Clientset {
	t.Helper()
	cfg := kubeemulator.InProcessConfig(srv.As(agent))
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func mustCreate[T any](t *testing.T, create func(context.Context, T, metav1.CreateOptions) (T, error), obj T) {
	t.Helper()
	if _, err := create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func wantForbidden(t *testing.T, err error, msg string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || err.Error() != msg {
		t.Fatalf("got %v\nwant 403 %s", err, msg)
	}
}

var pausePod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}

func TestImpersonatedRequestsAreAuthorizedByRBAC(t *testing.T) {
	t.Parallel()
	srv := kubeemulator.New(kubeemulator.Options{})
	t.Cleanup(srv.Close)
	admin := kubernetes.NewForConfigOrDie(kubeemulator.InProcessConfig(srv))
	ctx := context.Background()

	// The agent may not impersonate before its ClusterRole is bound.
	_, err := asAgent(t, srv, "alice", "developers").CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `users "alice" is forbidden: User "system:serviceaccount:teleport:teleport-kube-agent" cannot impersonate resource "users" in API group "" at the cluster scope`)

	// The teleport-kube-agent chart's impersonation rights.
	mustCreate(t, admin.RbacV1().ClusterRoles().Create, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "impersonator"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}}}})
	mustCreate(t, admin.RbacV1().ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "impersonator"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "impersonator"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "teleport", Name: "teleport-kube-agent"}}})

	// A group without a binding may do nothing.
	dev := asAgent(t, srv, "alice", "developers")
	_, err = dev.CoreV1().Pods("kube-system").Create(ctx, pausePod, metav1.CreateOptions{})
	wantForbidden(t, err, `pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace "kube-system"`)
	_, err = dev.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope`)
	// Authorization comes before the handler: a missing object is 403 too.
	_, err = dev.CoreV1().Pods("kube-system").Get(ctx, "nothing", metav1.GetOptions{})
	wantForbidden(t, err, `pods "nothing" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "kube-system"`)

	// system:masters may do anything, through impersonation too.
	if _, err := asAgent(t, srv, "alice", kubeemulator.GroupMasters).CoreV1().Pods("kube-system").Create(ctx, pausePod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("system:masters: %v", err)
	}

	// A Role bound to the group in kube-system: pods there, nothing else;
	// a binding to a role that does not exist is named in RBAC's reason.
	mustCreate(t, admin.RbacV1().Roles("kube-system").Create, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "create", "delete"}}}})
	mustCreate(t, admin.RbacV1().RoleBindings("kube-system").Create, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "developers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "developers"}}})
	mustCreate(t, admin.RbacV1().RoleBindings("kube-system").Create, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dangling"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "gone"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "developers"}}})
	if _, err := dev.CoreV1().Pods("kube-system").Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Fatalf("get a pod with the Role: %v", err)
	}
	_, err = dev.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"`)

	// The subresource is its own resource: pods does not grant pods/portforward.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/namespaces/kube-system/pods/p/portforward", nil)
	req.Header.Set("Impersonate-User", "alice")
	req.Header.Set("Impersonate-Group", "developers")
	srv.As(agent).ServeHTTP(rec, req)
	var st map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != http.StatusForbidden {
		t.Fatalf("portforward: %d %s", rec.Code, rec.Body)
	}
	want := map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": float64(403),
		"message": `pods "p" is forbidden: User "alice" cannot create resource "pods/portforward" in API group "" in the namespace "kube-system": RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found]`,
		"details": map[string]any{"name": "p", "kind": "pods"}}
	for k, v := range want {
		got, _ := json.Marshal(st[k])
		w, _ := json.Marshal(v)
		if string(got) != string(w) {
			t.Errorf("Status %s = %s, want %s", k, got, w)
		}
	}

	// Impersonating groups without a user is refused outright.
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodGet, "/api/v1/nodes", nil)
	req.Header.Set("Impersonate-Group", kubeemulator.GroupMasters)
	srv.As(agent).ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "without impersonating a user") {
		t.Errorf("groups without a user: %d %s", rec.Code, rec.Body)
	}

	// Without impersonation the agent is itself: no rights on pods.
	_, err = kubernetes.NewForConfigOrDie(kubeemulator.InProcessConfig(srv.As(agent))).CoreV1().Pods("kube-system").Create(ctx, pausePod, metav1.CreateOptions{})
	wantForbidden(t, err, `pods is forbidden: User "system:serviceaccount:teleport:teleport-kube-agent" cannot create resource "pods" in API group "" in the namespace "kube-system"`)
}

// BenchmarkImpersonatedGet measures one impersonated request through the
// impersonation checks and RBAC (the route's group bound by a Role), next
// to the same request as the admin.
func BenchmarkImpersonatedGet(b *testing.B) {
	srv := kubeemulator.New(kubeemulator.Options{})
	b.Cleanup(srv.Close)
	admin := kubernetes.NewForConfigOrDie(kubeemulator.InProcessConfig(srv))
	ctx := context.Background()
	for _, err := range []error{
		func() error {
			_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "impersonator"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}}}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "impersonator"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "impersonator"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "teleport", Name: "teleport-kube-agent"}}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := admin.RbacV1().Roles("kube-system").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := admin.RbacV1().RoleBindings("kube-system").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ops"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "ops"}}}, metav1.CreateOptions{})
			return err
		}(),
	} {
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
		imp  bool
	}{{"admin", srv, false}, {"impersonated", srv.As(agent), true}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/kube-system/pods/none", nil)
				if bc.imp {
					req.Header.Set("Impersonate-User", "alice")
					req.Header.Set("Impersonate-Group", "ops")
				}
				bc.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNotFound {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
