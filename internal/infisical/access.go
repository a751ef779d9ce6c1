package infisical

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	sdk "github.com/infisical/go-sdk"
	"github.com/infisical/go-sdk/packages/models"
)

// ErrNoWrite means the machine identity may read but not write (or not
// delete) secrets where a run keeps the cluster's credentials.
var ErrNoWrite = errors.New("Infisical identity may not write there")

// ProbePrefix starts the name of the secret CheckWrite writes and removes
// at once; a leftover one is safe to delete.
const ProbePrefix = "RAWKODE_CLOUD_WRITE_CHECK_"

// ProbeName names a write check's secret: unique, and recognisable.
func ProbeName() string {
	raw := make([]byte, 6)
	_, _ = rand.Read(raw) // never fails: see crypto/rand.Read
	return ProbePrefix + strings.ToUpper(hex.EncodeToString(raw))
}

// CheckWrite proves that the identity may create and delete secrets under
// secretPath, creating the folder first when it does not exist, as Write
// does. probe (ProbeName) is the secret it writes. mayExist says that the
// probe may still be there (its delete failed, or the create's answer was
// lost): the caller then owes its removal. Infisical offers machine identities no way to ask for their own
// permissions (the go-sdk has none, and project roles can carry conditions
// on the environment and the secret path), so it is tried: one probe secret
// is created and deleted, and a folder the probe created is removed again,
// leaving the project as it was. A refusal (HTTP 403) is ErrNoWrite, naming
// what was refused; any other failure is returned as it is.
func (c *Client) CheckWrite(ctx context.Context, secretPath, probe string) (mayExist bool, err error) {
	p := c.resolve(secretPath)
	const value = "written by rawkode-cloud to check its permissions; deleted at once"

	err = c.create(ctx, p, probe, value)
	var madeFolder string
	if errors.Is(err, ErrNotFound) {
		// Infisical refuses secrets in a missing folder: create it as Write
		// would, remembering the outermost folder that did not exist.
		if madeFolder, err = c.missingAncestor(ctx, p); err != nil {
			return false, fmt.Errorf("check write access in %s: %w", c.where(p), err)
		}
		if err := c.mkdir(ctx, p); err != nil {
			return false, errors.Join(c.refused(p, "create folders", err), c.removeFolder(ctx, madeFolder))
		}
		err = c.create(ctx, p, probe, value)
	}
	if err != nil {
		// An answer that says no proves nothing was written; a lost one
		// (an outage, a timeout) does not.
		var he *HTTPError
		landed := !errors.As(err, &he) || he.Status >= 500
		if !landed {
			err = errors.Join(err, c.removeFolder(ctx, madeFolder))
		}
		return landed, c.refused(p, "create secrets", err)
	}
	if err := c.deleteOne(ctx, p, probe); err != nil && !errors.Is(err, ErrNotFound) {
		return true, c.refused(p, "delete secrets", err)
	}
	return false, c.removeFolder(ctx, madeFolder)
}

// refused names what the identity may not do, for a 403; other errors pass.
func (c *Client) refused(p, what string, err error) error {
	if !errors.Is(err, ErrUnauthorized) {
		return fmt.Errorf("check write access in %s: %w", c.where(p), err)
	}
	return noWrite{fmt.Errorf("Infisical machine identity %s may not %s in %s: %w", c.cfg.ClientID, what, c.where(p), err)}
}

// noWrite is ErrNoWrite without repeating its text in the message.
type noWrite struct{ error }

func (e noWrite) Unwrap() error      { return e.error }
func (noWrite) Is(target error) bool { return target == ErrNoWrite }

// missingAncestor returns the outermost folder of p that does not exist
// ("" when p exists).
func (c *Client) missingAncestor(ctx context.Context, p string) (string, error) {
	var chain []string
	for q := p; q != "/"; q = path.Dir(q) {
		chain = append([]string{q}, chain...)
	}
	for _, q := range chain {
		names, err := c.Folders(ctx, path.Dir(q))
		if err != nil {
			return "", err
		}
		if !slices.Contains(names, path.Base(q)) {
			return q, nil
		}
	}
	return "", nil
}

// removeFolder deletes folder p (and what is under it), if p is set.
func (c *Client) removeFolder(ctx context.Context, p string) error {
	if p == "" {
		return nil
	}
	_, err := call(ctx, c, "delete-folder", nil, func() (models.Folder, error) {
		return c.sdk.Folders().Delete(sdk.DeleteFolderOptions{
			FolderName: path.Base(p), ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, Path: path.Dir(p),
		})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove the folder %s the write check created (delete it by hand: `infisical` web UI, %s): %w", p, c.where(path.Dir(p)), err)
	}
	return nil
}
