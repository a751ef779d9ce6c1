package inside_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/types"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/inside"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// world is a Teleport emulator whose kube cluster "c1" is a kube
// emulator with one node, cp-1, whose port 50000 echoes.
type world struct {
	tp    *teleport.Emulator
	kube  *kubeemulator.Server
	mu    sync.Mutex
	impGr []string
}

func newWorld(t *testing.T, roles []types.Role) *world {
	t.Helper()
	w := &world{}
	w.kube = kubeemulator.New(kubeemulator.Options{DialNode: func(ctx context.Context, node string, port int) (net.Conn, error) {
		if node != "cp-1" || port != 50000 {
			return nil, fmt.Errorf("dial tcp 127.0.0.1:%d: connect: connection refused", port)
		}
		a, b := net.Pipe()
		go func() {
			defer b.Close()
			sc := bufio.NewScanner(b)
			for sc.Scan() {
				fmt.Fprintf(b, "apid on %s: %s\n", node, sc.Text())
			}
		}()
		return a, nil
	}})
	t.Cleanup(w.kube.Close)
	// The agent reaches its cluster's API as its service account, which
	// its chart's ClusterRole lets impersonate users and groups.
	asAgent := w.kube.As(kubeemulator.ServiceAccount("teleport", "teleport-kube-agent"))
	backend := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.impGr = r.Header.Values("Impersonate-Group")
		w.mu.Unlock()
		asAgent.ServeHTTP(rw, r)
	})
	w.admin(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "teleport-kube-agent"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}}}})
	w.admin(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "teleport-kube-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "teleport-kube-agent"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "teleport", Name: "teleport-kube-agent"}}})
	// What provisioning binds for the route's group.
	for _, o := range machineconfig.InsideRouteObjects() {
		w.admin(t, o)
	}
	tp, err := teleport.NewEmulator(teleport.EmulatorOptions{Roles: roles, KubeBackend: func(c string) http.Handler {
		if c == "c1" {
			return backend
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Close)
	w.tp = tp
	if err := w.kube.AddNode("cp-1", true); err != nil {
		t.Fatal(err)
	}
	return w
}

// admin creates RBAC objects with the cluster's admin credentials.
func (w *world) admin(t *testing.T, obj any) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(kubeemulator.InProcessConfig(w.kube))
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		t.Fatalf("admin: %T", obj)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) client(t *testing.T) *teleport.Client {
	t.Helper()
	id, err := w.tp.IdentityFile()
	if err != nil {
		t.Fatal(err)
	}
	c, err := teleport.Connect(context.Background(), teleport.Config{Proxy: w.tp.Addr(), IdentityContent: id, DialTimeout: 10 * time.Second,
		Retry: retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Budget: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (w *world) route(t *testing.T, c *teleport.Client) (*inside.Route, error) {
	t.Helper()
	return inside.New(context.Background(), inside.Options{
		Credentials: func(ctx context.Context) (teleport.KubeCredentials, error) {
			return c.KubeCredentials(ctx, "c1", 10*time.Minute)
		},
		Wait:            wait.Options{Interval: 5 * time.Millisecond},
		PodStartTimeout: 30 * time.Second,
	})
}

func say(t *testing.T, r *inside.Route, msg string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := r.Dial(ctx, "192.0.2.10:50000")
	if err != nil {
		return "", err
	}
	defer c.Close()
	fmt.Fprintln(c, msg)
	return bufio.NewReader(c).ReadString('\n')
}

func TestRouteReachesTheNodesApidThroughTeleportAndAPod(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	c := w.client(t)

	// No agent serves c1 yet: Teleport does not know the cluster.
	if _, err := w.route(t, c); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("credentials for an unregistered kube cluster: %v", err)
	}
	if err := w.tp.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	r, err := w.route(t, c)
	if err != nil {
		t.Fatal(err)
	}
	r.AddNode("192.0.2.10", "cp-1")

	got, err := say(t, r, "hello")
	if err != nil || got != "apid on cp-1: hello\n" {
		t.Fatalf("through the route: %q, %v", got, err)
	}
	w.mu.Lock()
	imp := w.impGr
	w.mu.Unlock()
	if strings.Join(imp, ",") != strings.Join(teleport.KubeAccessGroups, ",") {
		t.Errorf("the cluster's API saw Impersonate-Group %v, want the role's kubernetes_groups %v", imp, teleport.KubeAccessGroups)
	}
	first := r.Pods()
	if len(first) != 1 {
		t.Fatalf("pods after the first dial: %v", first)
	}
	// A second dial reuses the pod and its forward.
	if _, err := say(t, r, "again"); err != nil {
		t.Fatal(err)
	}
	if got := r.Pods(); len(got) != 1 || got[0] != first[0] {
		t.Fatalf("pods after the second dial: %v, want %v", got, first)
	}

	// The node reboots: its pod is terminated; the next dial makes a new
	// one (once the kubelet is back) and deletes the old one.
	w.kube.SetKubeletRunning("cp-1", false)
	w.kube.SetKubeletRunning("cp-1", true)
	if _, err := say(t, r, "after reboot"); err != nil {
		t.Fatal(err)
	}
	if got := r.Pods(); len(got) != 1 || got[0] == first[0] {
		t.Fatalf("pods after the reboot: %v (before %v)", got, first)
	}
	if ph := w.kube.PodPhase(inside.Namespace, first[0]); ph != "" {
		t.Errorf("the terminated pod is still there (%s)", ph)
	}

	if _, err := r.Dial(context.Background(), "192.0.2.99:50000"); !errors.Is(err, inside.ErrNoSuchNode) {
		t.Errorf("dial of an unknown node: %v", err)
	}

	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Pods(); len(got) != 0 {
		t.Fatalf("pods left after Close: %v", got)
	}
	for _, o := range w.kube.Inventory().Objects {
		if strings.HasPrefix(o, "Pod/") {
			t.Errorf("left in the cluster after Close: %s", o)
		}
	}
}

func TestRouteIsRefusedWithoutKubernetesAccess(t *testing.T) {
	t.Parallel()
	auditor, _ := types.NewRole("auditor", types.RoleSpecV6{Allow: types.RoleConditions{Rules: []types.Rule{
		types.NewRule(types.KindKubeServer, []string{types.VerbList, types.VerbRead})}}})
	w := newWorld(t, []types.Role{auditor})
	if err := w.tp.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.route(t, w.client(t)); !errors.Is(err, teleport.ErrKubeAccessDenied) {
		t.Fatalf("credentials without kube access: %v", err)
	}
}

func TestKubeProxyFaults(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	if err := w.tp.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	r, err := w.route(t, w.client(t))
	if err != nil {
		t.Fatal(err)
	}
	r.AddNode("192.0.2.10", "cp-1")
	w.tp.Faults().Set(teleport.FaultKubeProxy, emulator.Fault{Kind: emulator.Deny})
	if _, err := say(t, r, "x"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("dial with the kube proxy denying: %v", err)
	}
	w.tp.Faults().Clear()
	if _, err := say(t, r, "x"); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
	// The roles change under a certificate already issued: the proxy
	// checks them on every request, not only when issuing.
	w.tp.Faults().Set(teleport.FaultPermissions, emulator.Fault{Kind: emulator.Deny})
	if _, err := say(t, r, "x"); err == nil || !strings.Contains(err.Error(), "do not allow Kubernetes access") {
		t.Fatalf("a role without Kubernetes access, with a certificate issued before: %v", err)
	}
	w.tp.Faults().Clear()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// kubeRole maps Kubernetes access on every cluster to groups.
func kubeRole(t *testing.T, groups ...string) types.Role {
	t.Helper()
	r, err := types.NewRole("kube-"+strings.Join(groups, "-"), types.RoleSpecV6{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{types.Wildcard: {types.Wildcard}}, KubeGroups: groups}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouteNamesTheGroupRBACRefuses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []types.Role{kubeRole(t, "developers")})
	if err := w.tp.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	c := w.client(t)

	// Teleport lets the group through; the cluster binds nothing to it:
	// the route stops at its first request, before any pod.
	_, err := w.route(t, c)
	var fe *inside.ForbiddenError
	if !errors.As(err, &fe) || !slices.Equal(fe.KubeGroups, []string{"developers"}) {
		t.Fatalf("route for an unbound group: %v", err)
	}
	for _, want := range []string{
		`pods is forbidden: User "rawkode-cloud" cannot list resource "pods" in API group "" in the namespace "kube-system"`,
		"Kubernetes group(s) developers", "create on pods/portforward in kube-system",
		"kubernetes_groups: [" + machineconfig.InsideRouteGroup + "]",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}

	t.Logf("refusal: %v", err)

	// The group may read and make pods, not port-forward to them: the
	// refusal names the subresource, and the pod made is deleted on Close.
	w.admin(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "pods"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "create", "delete"}}}})
	w.admin(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "developers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "developers"}}})
	r, err := w.route(t, c)
	if err != nil {
		t.Fatal(err)
	}
	r.AddNode("192.0.2.10", "cp-1")
	_, err = say(t, r, "x")
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), `cannot create resource "pods/portforward"`) {
		t.Fatalf("dial without pods/portforward: %v", err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, o := range w.kube.Inventory().Objects {
		if strings.HasPrefix(o, "Pod/") {
			t.Errorf("left in the cluster: %s", o)
		}
	}

	// Mapped to the group provisioning binds, the route works.
	w2 := newWorld(t, []types.Role{kubeRole(t, machineconfig.InsideRouteGroup)})
	if err := w2.tp.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	r, err = w2.route(t, w2.client(t))
	if err != nil {
		t.Fatal(err)
	}
	r.AddNode("192.0.2.10", "cp-1")
	if got, err := say(t, r, "hi"); err != nil || got != "apid on cp-1: hi\n" {
		t.Fatalf("with the inside-route group: %q, %v", got, err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
