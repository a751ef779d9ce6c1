package gitops

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

//go:embed templates
var templates embed.FS

// Secret stores the scaffold can point the External Secrets Operator at.
const (
	StoreOnePassword = "onepassword"
	StoreInfisical   = "infisical"
)

// Params are the scaffold's inputs (the settings of the platform section).
type Params struct {
	Cluster        string
	Domain         string
	ACMEEmail      string
	BackupBucket   string
	BackupEndpoint string
	SecretStore    string // StoreOnePassword or StoreInfisical
	// Restore makes the PostgreSQL cluster bootstrap by recovery from the
	// object-storage backup instead of an empty database.
	Restore bool
	// OnePasswordVault holds the platform's items; default the cluster name.
	OnePasswordVault string
	Infisical        InfisicalScope
}

// InfisicalScope is where the platform's secrets live in Infisical.
type InfisicalScope struct {
	Host        string // API base URL
	ProjectSlug string
	Environment string
	Path        string
}

// kustomization is one Flux Kustomization of the cluster's entry point.
type kustomization struct {
	Name, Path string
	DependsOn  []string
}

// remoteSecret is one value in the secret store: an item and field in
// 1Password, a secret name in Infisical.
type remoteSecret struct {
	Key, Property string
	Purpose       string
}

// The values the platform reads from the secret store, by logical name.
var remoteSecrets = map[string]map[string]remoteSecret{
	StoreOnePassword: {
		"cloudflare-api-token":     {Key: "cloudflare", Property: "api-token", Purpose: "Cloudflare API token with DNS edit rights on the zone (cert-manager DNS-01, external-dns)"},
		"postgres-password":        {Key: "spicedb", Property: "postgres-password", Purpose: "password of the spicedb database user (letters and digits)"},
		"spicedb-preshared-key":    {Key: "spicedb", Property: "preshared-key", Purpose: "the key every SpiceDB API call must present"},
		"backup-access-key-id":     {Key: "backup-s3", Property: "access-key-id", Purpose: "access key of the backup bucket"},
		"backup-secret-access-key": {Key: "backup-s3", Property: "secret-access-key", Purpose: "secret key of the backup bucket"},
	},
	StoreInfisical: {
		"cloudflare-api-token":     {Key: "CLOUDFLARE_API_TOKEN", Purpose: "Cloudflare API token with DNS edit rights on the zone (the one provision reads too)"},
		"postgres-password":        {Key: "SPICEDB_POSTGRES_PASSWORD", Purpose: "password of the spicedb database user (letters and digits)"},
		"spicedb-preshared-key":    {Key: "SPICEDB_PRESHARED_KEY", Purpose: "the key every SpiceDB API call must present"},
		"backup-access-key-id":     {Key: "BACKUP_ACCESS_KEY_ID", Purpose: "access key of the backup bucket"},
		"backup-secret-access-key": {Key: "BACKUP_SECRET_ACCESS_KEY", Purpose: "secret key of the backup bucket"},
	},
}

// externalSecret is what the "externalsecret" template renders.
type externalSecret struct {
	Name, Namespace string
	Template        string
	Data            []externalSecretData
}

type externalSecretData struct {
	SecretKey, Key, Property string
}

// externalSecrets describes each ExternalSecret: which remote values it
// reads (secretKey → logical name) and how it shapes the Secret. Templates
// here are External Secrets' own (engine v2), not ours.
var externalSecrets = map[string]struct {
	data     [][2]string
	template string
}{
	"cloudflare-api-token": {data: [][2]string{{"api-token", "cloudflare-api-token"}}},
	"spicedb-pg-credentials": {data: [][2]string{{"password", "postgres-password"}}, template: `      type: kubernetes.io/basic-auth
      engineVersion: v2
      data:
        username: spicedb
        password: "{{ .password }}"`},
	"spicedb-backup-credentials": {data: [][2]string{{"ACCESS_KEY_ID", "backup-access-key-id"}, {"SECRET_ACCESS_KEY", "backup-secret-access-key"}}},
	// The SpiceDB operator reads datastore_uri and preshared_key from one Secret.
	"spicedb": {data: [][2]string{{"password", "postgres-password"}, {"presharedKey", "spicedb-preshared-key"}}, template: `      engineVersion: v2
      data:
        datastore_uri: "postgresql://spicedb:{{ .password | urlquery }}@spicedb-pg-rw.spicedb.svc:5432/spicedb?sslmode=require"
        preshared_key: "{{ .presharedKey }}"`},
}

// tplData is what every template sees.
type tplData struct {
	Params
	Versions       any
	CloudflareIPs  any
	Infrastructure []kustomization
	Apps           []kustomization
	StoreDir       string
	StoreSecrets   []storeSecretDoc
}

type storeSecretDoc struct {
	Key, Property, Purpose string
}

// Secret builds the ExternalSecret called name in namespace ns.
func (d tplData) Secret(name, ns string) (externalSecret, error) {
	es, ok := externalSecrets[name]
	if !ok {
		return externalSecret{}, fmt.Errorf("no ExternalSecret %q", name)
	}
	out := externalSecret{Name: name, Namespace: ns, Template: es.template}
	for _, kv := range es.data {
		r := remoteSecrets[d.SecretStore][kv[1]]
		out.Data = append(out.Data, externalSecretData{SecretKey: kv[0], Key: r.Key, Property: r.Property})
	}
	return out, nil
}

// Validate says what is wrong with p, if anything.
func (p Params) Validate() error {
	var missing []string
	for name, v := range map[string]string{"cluster": p.Cluster, "domain": p.Domain, "ACME email": p.ACMEEmail,
		"backup bucket": p.BackupBucket, "backup endpoint": p.BackupEndpoint} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return fmt.Errorf("missing parameters: %s", strings.Join(missing, ", "))
	}
	switch p.SecretStore {
	case StoreOnePassword:
	case StoreInfisical:
		if p.Infisical.ProjectSlug == "" || p.Infisical.Environment == "" || p.Infisical.Path == "" || p.Infisical.Host == "" {
			return errors.New("the infisical secret store needs the project slug, environment, path and host")
		}
	default:
		return fmt.Errorf("unknown secret store %q", p.SecretStore)
	}
	return nil
}

func (p Params) data() tplData {
	storeDir := "onepassword-connect"
	if p.SecretStore == StoreInfisical {
		storeDir = "infisical"
	}
	if p.OnePasswordVault == "" {
		p.OnePasswordVault = p.Cluster
	}
	// The dependency chain of the design document: the secret store first,
	// then everything that needs a secret or an operator, routes after
	// cert-manager.
	infra := []kustomization{
		{Name: "external-secrets-operator", Path: "infrastructure/external-secrets-operator"},
		{Name: storeDir, Path: "infrastructure/" + storeDir, DependsOn: []string{"external-secrets-operator"}},
		{Name: "cert-manager", Path: "infrastructure/cert-manager", DependsOn: []string{storeDir}},
		{Name: "cert-manager-issuer", Path: "infrastructure/cert-manager/issuer", DependsOn: []string{"cert-manager"}},
		{Name: "external-dns", Path: "infrastructure/external-dns", DependsOn: []string{storeDir}},
		{Name: "cloudnative-pg", Path: "infrastructure/cloudnative-pg", DependsOn: []string{storeDir}},
		{Name: "spicedb-operator", Path: "infrastructure/spicedb-operator", DependsOn: []string{storeDir}},
		{Name: "cilium-gateway", Path: "infrastructure/cilium-gateway", DependsOn: []string{"cert-manager-issuer"}},
	}
	apps := []kustomization{
		{Name: "spicedb", Path: "apps/spicedb", DependsOn: []string{"spicedb-operator", "cloudnative-pg", "cilium-gateway"}},
	}
	var docs []storeSecretDoc
	seen := map[string]bool{}
	names := make([]string, 0, len(remoteSecrets[p.SecretStore]))
	for n := range remoteSecrets[p.SecretStore] {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := remoteSecrets[p.SecretStore][n]
		if !seen[r.Key+"/"+r.Property] {
			seen[r.Key+"/"+r.Property] = true
			docs = append(docs, storeSecretDoc{Key: r.Key, Property: r.Property, Purpose: r.Purpose})
		}
	}
	return tplData{Params: p, Versions: Versions, CloudflareIPs: CloudflareIPs, Infrastructure: infra, Apps: apps,
		StoreDir: storeDir, StoreSecrets: docs}
}

// Render returns the repository's files (slash-separated relative path →
// content) for p. Nothing in them is secret: only references.
func Render(p Params) (map[string][]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	d := p.data()
	shared, err := template.New("shared").Option("missingkey=error").ParseFS(templates, "templates/shared.tmpl")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err = fs.WalkDir(templates, "templates", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasSuffix(p, ".tmpl") {
			return err
		}
		rel := strings.TrimPrefix(p, "templates/")
		for _, store := range []string{"onepassword-connect", "infisical"} {
			if strings.HasPrefix(rel, "infrastructure/"+store+"/") && store != d.StoreDir {
				return nil
			}
		}
		rel = strings.ReplaceAll(rel, "CLUSTER", d.Cluster)
		src, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := shared.Clone()
		if err == nil {
			t, err = t.New(rel).Parse(string(src))
		}
		if err != nil {
			return fmt.Errorf("template %s: %w", rel, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return fmt.Errorf("template %s: %w", rel, err)
		}
		out[rel] = tidy(b.Bytes())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// tidy trims the blank lines templates leave at the start and makes the
// file end in exactly one newline.
func tidy(b []byte) []byte {
	s := strings.TrimLeft(string(b), "\n")
	s = strings.TrimRight(s, "\n") + "\n"
	return []byte(s)
}

// Action says what Write does with one file.
type Action string

const (
	Create    Action = "create"
	Unchanged Action = "unchanged"
	Overwrite Action = "overwrite" // differs, replaced because of Force
	Conflict  Action = "conflict"  // differs, left alone
)

// FileAction is one file's fate.
type FileAction struct {
	Path   string `json:"path"`
	Action Action `json:"action"`
}

// WriteOptions tunes Write.
type WriteOptions struct {
	Force  bool // overwrite files that differ from what the scaffold writes
	DryRun bool // decide, but write nothing
}

// ErrConflicts means files differ from what the scaffold would write and
// Force was not given: nothing was written.
var ErrConflicts = errors.New("files differ from what the scaffold would write")

// Write puts files under dir. A file already holding exactly the content is
// left alone; one holding anything else (edited by the user, or written for
// other settings) is only replaced with Force — without it nothing at all is
// written, so a re-run never leaves a half-updated tree.
func Write(dir string, files map[string][]byte, opts WriteOptions) ([]FileAction, error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var actions []FileAction
	conflicts := 0
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		cur, err := os.ReadFile(full)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			actions = append(actions, FileAction{p, Create})
		case err != nil:
			return nil, err
		case bytes.Equal(cur, files[p]):
			actions = append(actions, FileAction{p, Unchanged})
		case opts.Force:
			actions = append(actions, FileAction{p, Overwrite})
		default:
			actions = append(actions, FileAction{p, Conflict})
			conflicts++
		}
	}
	if conflicts > 0 {
		return actions, ErrConflicts
	}
	if opts.DryRun {
		return actions, nil
	}
	for _, a := range actions {
		if a.Action == Unchanged {
			continue
		}
		full := filepath.Join(dir, filepath.FromSlash(a.Path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return actions, err
		}
		if err := os.WriteFile(full, files[a.Path], 0o644); err != nil {
			return actions, err
		}
	}
	return actions, nil
}

// Dirs returns the Flux Kustomization paths of a rendered tree, for tests
// and for the check's summary.
func Dirs(files map[string][]byte) []string {
	set := map[string]bool{}
	for p := range files {
		if path.Base(p) == "kustomization.yaml" {
			set[path.Dir(p)] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
