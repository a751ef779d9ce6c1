package cli

import (
	"context"
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
)

// SecretLister fetches the settings stored in Infisical (name → value).
// It is a seam: production uses the Infisical SDK, tests a fake.
type SecretLister func(ctx context.Context, cfg *config.Config) (map[string]string, error)

// resolveSecrets is phase 0's first half: when Infisical is configured, ask
// it for the settings that are still unset. Nothing else is contacted.
func (a *app) resolveSecrets(ctx context.Context, cfg *config.Config, report func(filled []string)) error {
	if !infisicalConfigured(cfg) {
		return nil
	}
	// Infisical's own settings must be well formed before we dial it.
	if err := cfg.Validate(config.Requirements{}); err != nil {
		return fail.UsageError(err)
	}
	list := a.env.Secrets
	if list == nil {
		list = listInfisical
	}
	secrets, err := list(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read settings from Infisical: %w", err)
	}
	public := map[string]bool{}
	for _, s := range config.Schema {
		if s.Infisical != "" && !s.Secret {
			public[s.Infisical] = true
		}
	}
	for name, v := range secrets {
		// Whatever the store holds that is not a known plain setting is
		// treated as secret: over-redaction is safe, the reverse is not.
		if !public[name] {
			a.redactor.Add(v)
		}
	}
	filled := cfg.FillFromInfisical(secrets)
	a.redactor.Add(cfg.Secrets()...)
	if report != nil {
		report(filled)
	}
	return nil
}

func infisicalConfigured(cfg *config.Config) bool {
	for _, name := range []string{config.InfisicalURL, config.InfisicalClientID, config.InfisicalClientSecret, config.InfisicalProjectID} {
		if cfg.IsSet(name) {
			return true
		}
	}
	return false
}
