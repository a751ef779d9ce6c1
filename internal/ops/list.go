package ops

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// ClusterLine is one cluster in the list.
type ClusterLine struct {
	Name    string   `json:"name"`
	Servers []string `json:"servers"` // "name ip status"
	// Teleport is registered, not registered or unknown (not configured).
	Teleport string `json:"teleport"`
	// Secrets says whether the secret store holds the cluster's bundle.
	Secrets bool `json:"secrets"`
}

// folderLister is the secret store's folder listing (Infisical has it).
type folderLister interface {
	Folders(ctx context.Context, path string) ([]string, error)
}

// List finds every cluster the credentials can see: servers tagged by
// rawkode-cloud, and clusters whose credentials the secret store keeps
// (whose servers may be gone: those are the ones to rebuild).
func List(ctx context.Context, e *Env) ([]ClusterLine, error) {
	byName := map[string]*ClusterLine{}
	get := func(name string) *ClusterLine {
		if byName[name] == nil {
			byName[name] = &ClusterLine{Name: name, Servers: []string{}, Teleport: "unknown"}
		}
		return byName[name]
	}
	servers, err := e.Servers.FindServers(ctx, scaleway.ToolTag)
	if err != nil {
		return nil, fmt.Errorf("find rawkode-cloud servers: %w", err)
	}
	for _, s := range servers {
		name := clusterOf(s.Tags)
		if name == "" {
			continue
		}
		l := get(name)
		l.Servers = append(l.Servers, strings.Join([]string{s.Name, orNone(s.IPv4), s.Status}, " "))
	}
	if fl, ok := e.Store.(folderLister); ok && e.Store != nil {
		names, err := fl.Folders(ctx, strings.TrimSuffix(provision.SecretsPath(""), "/"))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			bundle, err := e.secret(ctx, n, provision.SecretTalosBundle)
			if err != nil {
				return nil, err
			}
			if bundle != "" {
				get(n).Secrets = true
			}
		}
	}
	for name, l := range byName {
		if e.Store != nil && !l.Secrets {
			// Found by its servers: say whether the store has it too.
			bundle, err := e.secret(ctx, name, provision.SecretTalosBundle)
			if err != nil {
				return nil, err
			}
			l.Secrets = bundle != ""
		}
	}
	if e.Teleport != nil {
		kube, err := e.Teleport.KubeClusters(ctx)
		if err != nil {
			return nil, err
		}
		for _, l := range byName {
			l.Teleport = "not registered"
			if slices.Contains(kube, l.Name) {
				l.Teleport = "registered"
			}
		}
	}
	out := make([]ClusterLine, 0, len(byName))
	for _, l := range byName {
		sort.Strings(l.Servers)
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func clusterOf(tags []string) string {
	for _, t := range tags {
		if n, ok := strings.CutPrefix(t, "cluster="); ok {
			return n
		}
	}
	return ""
}
