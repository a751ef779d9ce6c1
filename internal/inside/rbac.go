package inside

import (
	"errors"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
)

// ForbiddenError is the cluster's RBAC refusing a request of the route:
// Teleport let it through, impersonating the Kubernetes groups (and users)
// of the identity's Teleport role, and no binding in the cluster gives
// them the right. It names who the cluster saw, what the route needs and
// what to set.
type ForbiddenError struct {
	TeleportUser string
	KubeUsers    []string
	KubeGroups   []string
	Err          error // the API's 403
}

func (e *ForbiddenError) Error() string {
	who := fmt.Sprintf("Teleport user %q", e.TeleportUser)
	if len(e.KubeUsers) > 0 {
		who = fmt.Sprintf("Kubernetes user(s) %s of Teleport user %q", strings.Join(e.KubeUsers, ", "), e.TeleportUser)
	}
	groups := "no Kubernetes groups"
	if len(e.KubeGroups) > 0 {
		groups = "Kubernetes group(s) " + strings.Join(e.KubeGroups, ", ")
	}
	return fmt.Sprintf("the cluster's Kubernetes RBAC refused the inside route: %v; Teleport impersonates %s with %s "+
		"(the Teleport role's kubernetes_users / kubernetes_groups), and no RoleBinding or ClusterRoleBinding gives them this right. "+
		"The route needs %s. Set kubernetes_groups: [%s] in the identity's Teleport role (tctl edit role/<name>, spec.allow; "+
		"provisioning binds that group to exactly these rights) or [system:masters], or bind one of its groups to a Role and ClusterRole with these rights",
		e.Err, who, groups, RequiredRights(), machineconfig.InsideRouteGroup)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// RequiredRights describes the rights the route needs, for messages.
func RequiredRights() string {
	describe := func(rules []rbacv1.PolicyRule, where string) []string {
		var out []string
		for _, r := range rules {
			out = append(out, fmt.Sprintf("%s on %s%s", strings.Join(r.Verbs, "/"), strings.Join(r.Resources, ", "), where))
		}
		return out
	}
	parts := append(describe(machineconfig.InsideRouteRules.Namespaced, " in "+machineconfig.InsideRouteNamespace),
		describe(machineconfig.InsideRouteRules.Cluster, "")...)
	return strings.Join(parts, ", ")
}

// explain turns the cluster's RBAC refusal into a ForbiddenError. A 403
// of Teleport's proxy (a role without Kubernetes access) stays as it is:
// only kube-apiserver says "is forbidden: User … cannot …". The
// port-forward's upgrade error carries the message only as text.
func (r *Route) explain(err error) error {
	var fe *ForbiddenError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, `is forbidden: User "`) || !strings.Contains(msg, " cannot ") {
		return err
	}
	r.mu.Lock()
	c := r.creds
	r.mu.Unlock()
	return &ForbiddenError{TeleportUser: c.User, KubeUsers: c.KubeUsers, KubeGroups: c.KubeGroups, Err: err}
}
