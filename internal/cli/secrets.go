package cli

import (
	"context"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/infisical"
	"github.com/rawkode/rawkode-cloud/internal/provision"
)

// SecretLister fetches the settings stored in Infisical (name → value).
// It is a seam for tests; nil means the real Infisical through the SDK.
type SecretLister func(ctx context.Context, cfg *config.Config) (map[string]string, error)

// listerStore adapts a SecretLister to a read-only secret store.
type listerStore struct {
	list SecretLister
	cfg  *config.Config
}

func (l listerStore) List(ctx context.Context) (map[string]string, error) { return l.list(ctx, l.cfg) }
func (l listerStore) Get(context.Context, string, string) (string, error) {
	return "", infisical.ErrNotFound
}
func (l listerStore) Write(context.Context, string, map[string]string) error   { return nil }
func (l listerStore) Delete(context.Context, string, []string) error           { return nil }
func (l listerStore) CheckWrite(context.Context, string, string) (bool, error) { return false, nil }
func (l listerStore) Close()                                                   {}

// factory is the production adapter factory, with the test seam applied.
func (a *app) factory() provision.Factory {
	f := provision.Factory{}
	if a.env.Secrets != nil {
		list := a.env.Secrets
		f.SecretStore = func(_ context.Context, cfg *config.Config) (provision.SecretStore, error) {
			return listerStore{list: list, cfg: cfg}, nil
		}
	}
	return f
}

// resolveSecrets fills unset settings from Infisical for commands that only
// read (config show): the same code phase 0 of provision runs.
func (a *app) resolveSecrets(ctx context.Context, f provision.Factory, cfg *config.Config) error {
	store, _, err := provision.FillFromInfisical(ctx, f, cfg, a.redactor.Add)
	if store != nil {
		store.Close()
	}
	return err
}
