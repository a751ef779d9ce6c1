package emulator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Who a request is, and what it may do, as kube-apiserver decides it in its
// filter chain (authentication → impersonation → authorization, before the
// request reaches its handler, so an unauthorized request for a resource
// that does not exist is answered 403, not 404):
//
//   - authentication: a client certificate from the cluster CA is the user
//     named by its CommonName in the groups of its Organization (the x509
//     authenticator; Talos's admin kubeconfig is CN admin, O
//     system:masters); a handler from As stands for a credential the
//     emulator does not model (a pod's service account token); a request
//     with neither comes from the emulator's own in-process callers
//     (Talos's manifest apply, tests), which hold the admin kubeconfig.
//   - impersonation (k8s.io/apiserver endpoints/filters/impersonation.go,
//     "User impersonation" in the Kubernetes authentication docs): the
//     Impersonate-User, -Group, -Uid and -Extra-* headers each need the
//     "impersonate" verb on users / serviceaccounts / groups / uids /
//     userextras for the requester; the request then acts as the
//     impersonated user, with system:authenticated added.
//   - authorization: members of system:masters may do anything (the
//     privileged-group authorizer kube-apiserver puts before RBAC); anyone
//     else needs a rule of a ClusterRole bound by a ClusterRoleBinding, or
//     of a Role or ClusterRole bound by a RoleBinding in the request's
//     namespace ("Using RBAC Authorization" in the Kubernetes docs). Rules
//     are allow-only; there are no deny rules. Aggregated ClusterRoles and
//     the default bootstrap roles other than the superuser group are not
//     modelled; discovery and /version are open to every caller, as the
//     bootstrap system:discovery and system:public-info-viewer bindings
//     make them.

// Well-known groups (k8s.io/apiserver/pkg/authentication/user).
const (
	GroupMasters         = "system:masters"
	GroupAuthenticated   = "system:authenticated"
	GroupUnauthenticated = "system:unauthenticated"
	userAnonymous        = "system:anonymous"
	serviceAccountPrefix = "system:serviceaccount:"
)

// UserInfo is who a request acts as.
type UserInfo struct {
	Name   string
	Groups []string
}

// Admin is the identity of the emulator's in-process callers: the user of
// Talos's admin kubeconfig.
var Admin = UserInfo{Name: "admin", Groups: []string{GroupMasters, GroupAuthenticated}}

// ServiceAccount is the user a service account's token authenticates as,
// with the groups kube-apiserver gives it.
func ServiceAccount(namespace, name string) UserInfo {
	return UserInfo{Name: serviceAccountPrefix + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, GroupAuthenticated}}
}

type userKey struct{}

// As serves the API to callers authenticated as u, by a credential the
// emulator does not model (a pod's service account token: a Teleport kube
// agent reaches its cluster's API this way).
func (s *Server) As(u UserInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

func authenticate(r *http.Request) UserInfo {
	if u, ok := r.Context().Value(userKey{}).(UserInfo); ok {
		return u
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		return UserInfo{Name: c.Subject.CommonName, Groups: append(slices.Clone(c.Subject.Organization), GroupAuthenticated)}
	}
	return Admin
}

// attributes are what authorization looks at, as kube-apiserver's
// RequestInfoFactory derives them from the path and method.
type attributes struct {
	user        UserInfo
	verb        string
	group       string
	resource    string
	subresource string
	namespace   string
	name        string
	isResource  bool // a resource request (not discovery or /version)
}

func requestAttributes(r *http.Request, u UserInfo) attributes {
	a := attributes{user: u}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var rest []string
	switch {
	case parts[0] == "api" && len(parts) >= 3:
		rest = parts[2:]
	case parts[0] == "apis" && len(parts) >= 4:
		a.group, rest = parts[1], parts[3:]
	default:
		return a
	}
	a.isResource = true
	if rest[0] == "namespaces" && len(rest) >= 2 {
		a.namespace = rest[1]
		if len(rest) == 2 {
			// The namespace itself: its name is also its namespace.
			a.resource, a.name = "namespaces", rest[1]
		} else {
			rest = rest[2:]
		}
	}
	if a.resource == "" {
		a.resource = rest[0]
		if len(rest) > 1 {
			a.name = rest[1]
		}
		if len(rest) > 2 {
			a.subresource = rest[2]
		}
	}
	q := r.URL.Query().Get("watch")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.verb = "get"
		if a.name == "" {
			a.verb = "list"
		}
		if q == "true" || q == "1" {
			a.verb = "watch"
		}
	case http.MethodPost:
		a.verb = "create"
	case http.MethodPut:
		a.verb = "update"
	case http.MethodPatch:
		a.verb = "patch"
	case http.MethodDelete:
		a.verb = "delete"
		if a.name == "" {
			a.verb = "deletecollection"
		}
	default:
		a.verb = strings.ToLower(r.Method)
	}
	// Connecting to a pod (port-forward, exec, attach) is "create" on the
	// subresource, also over a websocket GET (kube-apiserver 1.35's
	// AuthorizePodWebsocketUpgradeCreatePermission).
	if a.resource == "pods" && (a.subresource == "portforward" || a.subresource == "exec" || a.subresource == "attach") {
		a.verb = "create"
	}
	return a
}

// forbidden is kube-apiserver's 403 (endpoints/handlers/responsewriters
// Forbidden): "<resource> [\"name\"] is forbidden: User \"u\" cannot
// <verb> resource \"<resource[/sub]>\" in API group \"g\" in the namespace
// \"ns\"" (or "at the cluster scope"), then RBAC's reason when it has one.
func forbidden(a attributes, reason string) error {
	res := a.resource
	if a.subresource != "" {
		res += "/" + a.subresource
	}
	msg := fmt.Sprintf("User %q cannot %s resource %q in API group %q", a.user.Name, a.verb, res, a.group)
	if a.namespace != "" {
		msg += fmt.Sprintf(" in the namespace %q", a.namespace)
	} else {
		msg += " at the cluster scope"
	}
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.group, Resource: a.resource}, a.name, errors.New(msg))
}

// admit authenticates r, applies its impersonation headers and authorizes
// it. It returns the request's attributes, or the Status error to answer.
func (s *Server) admit(r *http.Request) (attributes, error) {
	requester := authenticate(r)
	actAs, err := s.impersonate(r, requester)
	if err != nil {
		return attributes{}, err
	}
	a := requestAttributes(r, actAs)
	if !a.isResource {
		return a, nil
	}
	if ok, reason := s.authorize(a); !ok {
		return a, forbidden(a, reason)
	}
	return a, nil
}

// impersonate applies the Impersonate-* headers of r for requester.
func (s *Server) impersonate(r *http.Request, requester UserInfo) (UserInfo, error) {
	h := r.Header
	userName := h.Get("Impersonate-User")
	groups := h.Values("Impersonate-Group")
	uid := h.Get("Impersonate-Uid")
	var extras []string
	for k := range h {
		if strings.HasPrefix(k, "Impersonate-Extra-") {
			extras = append(extras, k)
		}
	}
	if userName == "" {
		if len(groups) > 0 || uid != "" || len(extras) > 0 {
			return UserInfo{}, apierrors.NewInternalError(fmt.Errorf("requested %v without impersonating a user", append(groups, extras...)))
		}
		return requester, nil
	}
	check := func(a attributes) error {
		a.user, a.verb, a.isResource = requester, "impersonate", true
		if ok, reason := s.authorize(a); !ok {
			return forbidden(a, reason)
		}
		return nil
	}
	if ns, name, ok := strings.Cut(strings.TrimPrefix(userName, serviceAccountPrefix), ":"); ok && strings.HasPrefix(userName, serviceAccountPrefix) {
		if err := check(attributes{resource: "serviceaccounts", namespace: ns, name: name}); err != nil {
			return UserInfo{}, err
		}
		if len(groups) == 0 {
			groups = slices.Clone(ServiceAccount(ns, name).Groups[:2])
		}
	} else if err := check(attributes{resource: "users", name: userName}); err != nil {
		return UserInfo{}, err
	}
	for _, g := range groups {
		if err := check(attributes{resource: "groups", name: g}); err != nil {
			return UserInfo{}, err
		}
	}
	for _, k := range extras {
		for _, v := range h.Values(k) {
			if err := check(attributes{group: "authentication.k8s.io", resource: "userextras", subresource: strings.ToLower(strings.TrimPrefix(k, "Impersonate-Extra-")), name: v}); err != nil {
				return UserInfo{}, err
			}
		}
	}
	if uid != "" {
		if err := check(attributes{group: "authentication.k8s.io", resource: "uids", name: uid}); err != nil {
			return UserInfo{}, err
		}
	}
	groups = slices.Clone(groups)
	switch {
	case userName == userAnonymous && !slices.Contains(groups, GroupUnauthenticated):
		groups = append(groups, GroupUnauthenticated)
	case userName != userAnonymous && !slices.Contains(groups, GroupAuthenticated) && !slices.Contains(groups, GroupUnauthenticated):
		groups = append(groups, GroupAuthenticated)
	}
	return UserInfo{Name: userName, Groups: groups}, nil
}

var (
	clusterRolesGR        = schema.GroupResource{Group: rbacv1.GroupName, Resource: "clusterroles"}
	clusterRoleBindingsGR = schema.GroupResource{Group: rbacv1.GroupName, Resource: "clusterrolebindings"}
	rolesGR               = schema.GroupResource{Group: rbacv1.GroupName, Resource: "roles"}
	roleBindingsGR        = schema.GroupResource{Group: rbacv1.GroupName, Resource: "rolebindings"}
)

// authorize is the privileged-group authorizer, then RBAC over the
// (Cluster)Roles and bindings the cluster holds. reason is RBAC's, naming
// roles that bindings refer to but that do not exist.
func (s *Server) authorize(a attributes) (bool, string) {
	if slices.Contains(a.user.Groups, GroupMasters) {
		return true, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	rulesOf := func(kind, namespace, name string) []rbacv1.PolicyRule {
		gr, k := clusterRolesGR, key("", name)
		if kind == "Role" {
			gr, k = rolesGR, key(namespace, name)
		}
		obj, ok := s.store[gr][k]
		if !ok {
			missing = append(missing, fmt.Sprintf("%s.%s %q not found", strings.ToLower(kind), rbacv1.GroupName, name))
			return nil
		}
		if kind == "Role" {
			role, err := fromMap[rbacv1.Role](obj)
			if err != nil {
				return nil
			}
			return role.Rules
		}
		role, err := fromMap[rbacv1.ClusterRole](obj)
		if err != nil {
			return nil
		}
		return role.Rules
	}
	for _, k := range s.sortedKeysLocked(clusterRoleBindingsGR) {
		b, err := fromMap[rbacv1.ClusterRoleBinding](s.store[clusterRoleBindingsGR][k])
		if err != nil || !subjectsInclude(b.Subjects, "", a.user) {
			continue
		}
		if rulesAllow(rulesOf("ClusterRole", "", b.RoleRef.Name), a) {
			return true, ""
		}
	}
	if a.namespace != "" {
		for _, k := range s.sortedKeysLocked(roleBindingsGR) {
			if ns, _, _ := strings.Cut(k, "/"); ns != a.namespace {
				continue
			}
			b, err := fromMap[rbacv1.RoleBinding](s.store[roleBindingsGR][k])
			if err != nil || !subjectsInclude(b.Subjects, a.namespace, a.user) {
				continue
			}
			if rulesAllow(rulesOf(b.RoleRef.Kind, a.namespace, b.RoleRef.Name), a) {
				return true, ""
			}
		}
	}
	if len(missing) > 0 {
		return false, "RBAC: [" + strings.Join(missing, ", ") + "]"
	}
	return false, ""
}

// subjectsInclude is RBAC's appliesTo: a User by name, a Group by
// membership, a ServiceAccount by its username (a RoleBinding's subject
// without a namespace is in the binding's).
func subjectsInclude(subjects []rbacv1.Subject, bindingNamespace string, u UserInfo) bool {
	for _, sub := range subjects {
		switch sub.Kind {
		case rbacv1.UserKind:
			if sub.Name == u.Name {
				return true
			}
		case rbacv1.GroupKind:
			if slices.Contains(u.Groups, sub.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := sub.Namespace
			if ns == "" {
				ns = bindingNamespace
			}
			if ns != "" && serviceAccountPrefix+ns+":"+sub.Name == u.Name {
				return true
			}
		}
	}
	return false
}

// rulesAllow is RBAC's RuleAllows for resource requests: verb, API group,
// resource ("pods/portforward" for a subresource; "*" and "*/sub" match
// too) and, when the rule names any, the resource name.
func rulesAllow(rules []rbacv1.PolicyRule, a attributes) bool {
	res := a.resource
	if a.subresource != "" {
		res += "/" + a.subresource
	}
	for _, r := range rules {
		if !matchesAny(r.Verbs, a.verb) || !matchesAny(r.APIGroups, a.group) {
			continue
		}
		resOK := false
		for _, rr := range r.Resources {
			if rr == rbacv1.ResourceAll || rr == res || (a.subresource != "" && rr == "*/"+a.subresource) {
				resOK = true
			}
		}
		if !resOK {
			continue
		}
		if len(r.ResourceNames) > 0 && !slices.Contains(r.ResourceNames, a.name) {
			continue
		}
		return true
	}
	return false
}

func matchesAny(list []string, v string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, v)
}
