package emulator

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

var realms = map[string]bool{"pam": true, "pve": true}

func (e *Emulator) userOr500(id, what string) (*user, *pveError) {
	u := e.st.users[id]
	if u == nil {
		return nil, errf(http.StatusInternalServerError, "%sno such user ('%s')", what, id)
	}
	return u, nil
}

func userJSON(u *user, withTokens bool) map[string]any {
	out := map[string]any{"userid": u.id, "enable": b2i(u.enabled), "expire": u.expire, "realm-type": realmOf(u.id)}
	if u.comment != "" {
		out["comment"] = u.comment
	}
	if withTokens {
		toks := map[string]any{}
		for _, id := range sortedKeys(u.tokens) {
			toks[id] = tokenJSON(id, u.tokens[id])
		}
		out["tokens"] = toks
	}
	return out
}

func tokenJSON(id string, t *token) map[string]any {
	out := map[string]any{"tokenid": id, "privsep": b2i(t.privsep), "expire": t.expire}
	if t.comment != "" {
		out["comment"] = t.comment
	}
	return out
}

func realmOf(userid string) string { return userid[strings.LastIndex(userid, "@")+1:] }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func init() {
	handlers["GET /version"] = func(e *Emulator, q *request) (any, *pveError) {
		release := e.st.version
		if i := strings.LastIndex(release, "."); strings.Count(release, ".") > 1 {
			release = release[:i]
		}
		return map[string]any{"version": e.st.version, "release": release, "repoid": "2a1d5c3b9e0f4d27"}, nil
	}
	handlers["GET /access/users"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		for _, id := range sortedKeys(e.st.users) {
			out = append(out, userJSON(e.st.users[id], q.flag("full", false)))
		}
		return out, nil
	}
	handlers["POST /access/users"] = func(e *Emulator, q *request) (any, *pveError) {
		id := q.p("userid")
		if !realms[realmOf(id)] {
			return nil, errf(http.StatusInternalServerError, "create user failed: domain '%s' does not exist", realmOf(id))
		}
		if e.st.users[id] != nil {
			return nil, errf(http.StatusInternalServerError, "create user failed: user '%s' already exists", id)
		}
		u := &user{id: id, comment: q.p("comment"), enabled: q.flag("enable", true), tokens: map[string]*token{}}
		if pw := q.p("password"); pw != "" && realmOf(id) == "pve" {
			h, _ := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
			u.hash = string(h)
		}
		e.st.users[id] = u
		return nil, nil
	}
	handlers["GET /access/users/{userid}"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "")
		if perr != nil {
			return nil, perr
		}
		return userJSON(u, true), nil
	}
	handlers["PUT /access/users/{userid}"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "update user failed: ")
		if perr != nil {
			return nil, perr
		}
		if q.has("comment") {
			u.comment = q.p("comment")
		}
		if q.has("enable") {
			u.enabled = q.flag("enable", true)
		}
		return nil, nil
	}
	handlers["DELETE /access/users/{userid}"] = func(e *Emulator, q *request) (any, *pveError) {
		id := q.p("userid")
		if _, perr := e.userOr500(id, "delete user failed: "); perr != nil {
			return nil, perr
		}
		delete(e.st.users, id)
		kept := e.st.acls[:0]
		for _, a := range e.st.acls {
			if a.ugid == id || strings.HasPrefix(a.ugid, id+"!") {
				continue
			}
			kept = append(kept, a)
		}
		e.st.acls = kept
		return nil, nil
	}
	handlers["GET /access/users/{userid}/token"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "")
		if perr != nil {
			return nil, perr
		}
		out := []any{}
		for _, id := range sortedKeys(u.tokens) {
			out = append(out, tokenJSON(id, u.tokens[id]))
		}
		return out, nil
	}
	handlers["GET /access/users/{userid}/token/{tokenid}"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "")
		if perr != nil {
			return nil, perr
		}
		t := u.tokens[q.p("tokenid")]
		if t == nil {
			return nil, errf(http.StatusInternalServerError, "no such token '%s' for user '%s'", q.p("tokenid"), u.id)
		}
		return tokenJSON(q.p("tokenid"), t), nil
	}
	handlers["POST /access/users/{userid}/token/{tokenid}"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "")
		if perr != nil {
			return nil, perr
		}
		id := q.p("tokenid")
		if u.tokens[id] != nil {
			return nil, errf(http.StatusInternalServerError, "Token already exists.")
		}
		t := &token{secret: newUUID(), comment: q.p("comment"), privsep: q.flag("privsep", true), expire: int64(atoi(q.p("expire")))}
		u.tokens[id] = t
		return map[string]any{"full-tokenid": u.id + "!" + id, "info": tokenJSON(id, t), "value": t.secret}, nil
	}
	handlers["DELETE /access/users/{userid}/token/{tokenid}"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "")
		if perr != nil {
			return nil, perr
		}
		id := q.p("tokenid")
		if u.tokens[id] == nil {
			return nil, errf(http.StatusInternalServerError, "no such token '%s' for user '%s'", id, u.id)
		}
		delete(u.tokens, id)
		full := u.id + "!" + id
		kept := e.st.acls[:0]
		for _, a := range e.st.acls {
			if a.ugid != full {
				kept = append(kept, a)
			}
		}
		e.st.acls = kept
		return nil, nil
	}
	handlers["GET /access/acl"] = func(e *Emulator, q *request) (any, *pveError) {
		out := []any{}
		for _, a := range e.st.acls {
			out = append(out, map[string]any{"path": a.path, "type": a.kind, "ugid": a.ugid, "roleid": a.role, "propagate": b2i(a.propagate)})
		}
		return out, nil
	}
	handlers["PUT /access/acl"] = putACL
	handlers["PUT /access/password"] = func(e *Emulator, q *request) (any, *pveError) {
		u, perr := e.userOr500(q.p("userid"), "change password failed: ")
		if perr != nil {
			return nil, perr
		}
		h, err := bcrypt.GenerateFromPassword([]byte(q.p("password")), bcrypt.MinCost)
		if err != nil {
			return nil, errf(http.StatusInternalServerError, "change password failed: %v", err)
		}
		u.hash = string(h)
		// pam realm: the password is /etc/shadow's; existing tickets stay valid.
		return nil, nil
	}
}

func putACL(e *Emulator, q *request) (any, *pveError) {
	path := q.p("path")
	if path != "/" && !strings.HasPrefix(path, "/") {
		return nil, errf(http.StatusInternalServerError, "invalid ACL path '%s'", path)
	}
	var roleIDs []string
	for _, r := range splitList(q.p("roles")) {
		if _, ok := roles[r]; !ok {
			return nil, errf(http.StatusInternalServerError, "role '%s' does not exist", r)
		}
		roleIDs = append(roleIDs, r)
	}
	type who struct{ kind, id string }
	var whos []who
	for _, u := range splitList(q.p("users")) {
		if e.st.users[u] == nil {
			return nil, errf(http.StatusInternalServerError, "user '%s' does not exist", u)
		}
		whos = append(whos, who{"user", u})
	}
	for _, t := range splitList(q.p("tokens")) {
		uid, tid, _ := strings.Cut(t, "!")
		if u := e.st.users[uid]; u == nil || u.tokens[tid] == nil {
			return nil, errf(http.StatusInternalServerError, "no such token '%s' for user '%s'", tid, uid)
		}
		whos = append(whos, who{"token", t})
	}
	if len(whos) == 0 && !q.has("groups") {
		return nil, errf(http.StatusInternalServerError, "either 'users', 'groups' or 'tokens' is required")
	}
	propagate := q.flag("propagate", true)
	for _, w := range whos {
		for _, r := range roleIDs {
			kept := e.st.acls[:0]
			for _, a := range e.st.acls {
				if !(a.path == path && a.kind == w.kind && a.ugid == w.id && a.role == r) {
					kept = append(kept, a)
				}
			}
			e.st.acls = kept
			if !q.flag("delete", false) {
				e.st.acls = append(e.st.acls, acl{path: path, ugid: w.id, kind: w.kind, role: r, propagate: propagate})
			}
		}
	}
	return nil, nil
}
