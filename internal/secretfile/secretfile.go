// Package secretfile writes the only files rawkode-cloud ever creates, and
// only when the user asked for them (--secrets-out, plan --render, --report).
package secretfile

import (
	"errors"
	"fmt"
	"os"
)

// Write creates path with mode from its first byte on, so a secret is never
// readable by others, not even for a moment, and an existing file does not
// keep a looser mode.
func Write(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(f.Chmod(mode), werr, f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
