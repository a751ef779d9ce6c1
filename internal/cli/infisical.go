package cli

import (
	"context"
	"errors"

	"github.com/rawkode/rawkode-cloud/internal/config"
)

// listInfisical reads the settings stored in Infisical.
func listInfisical(ctx context.Context, cfg *config.Config) (map[string]string, error) {
	return nil, errors.New("the Infisical adapter is not wired yet")
}
