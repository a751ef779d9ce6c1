package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/secretfile"
)

// fileNames maps stored secrets to file names under --secrets-out.
var fileNames = map[string]string{
	SecretTalosBundle:  "secrets.yaml",
	SecretTalosconfig:  "talosconfig",
	SecretKubeconfig:   "kubeconfig",
	SecretProxmoxToken: "proxmox-api-token",
	SecretProxmoxRoot:  "proxmox-root-password",
}

// keep stores cluster credentials where the user said: Infisical when it is
// configured, otherwise the --secrets-out directory (files 0600). Never
// anywhere else. Each write pushes its own undo: credentials of a cluster
// that was rolled back are useless, and stale ones are a liability.
func (p *Provisioner) keep(ctx context.Context, r *pipeline.Run, items map[string][]byte) error {
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	sort.Strings(names)
	if p.store != nil {
		path := p.secretsPath()
		values := make(map[string]string, len(items))
		for n, v := range items {
			values[n] = string(v)
		}
		err := p.store.Write(ctx, path, values)
		// Pushed even when the write failed: it writes one secret after
		// the other, and a lost answer may hide a write that landed, so
		// part of the set may exist. Deleting a missing secret is no error.
		// A rebuild or a resume writes the cluster's own credentials again
		// (from the bundle it was given): they must survive its failure.
		if p.reusedBundle() == nil {
			r.Undo(pipeline.UndoStep{
				Resource: fmt.Sprintf("Infisical secrets %s in %s", strings.Join(names, ", "), path),
				Command:  fmt.Sprintf("infisical secrets delete %s --path %s --env %s", strings.Join(names, " "), path, p.cfg.Get(config.InfisicalEnvironment)),
				Do:       func(ctx context.Context) error { return p.store.Delete(ctx, path, names) },
			})
		}
		if err != nil {
			return fmt.Errorf("store %s in Infisical at %s: %w", strings.Join(names, ", "), path, err)
		}
		p.stored = "Infisical " + path
		r.Info("credentials stored in Infisical", map[string]any{"path": path, "secrets": names})
		return nil
	}
	dir := p.cfg.Get(config.SecretsOut)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create --secrets-out directory %s: %w", dir, err)
	}
	for _, n := range names {
		path := filepath.Join(dir, fileNames[n])
		if err := secretfile.Write(path, items[n], 0o600); err != nil {
			return err
		}
		r.Undo(pipeline.UndoStep{
			Resource: "file " + path,
			Command:  "rm " + path,
			Do: func(context.Context) error {
				if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				return nil
			},
		})
	}
	p.stored = dir
	r.Info("credentials written (mode 0600)", map[string]any{"dir": dir, "secrets": names})
	return nil
}
