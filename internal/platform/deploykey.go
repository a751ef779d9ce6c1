package platform

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// DeployKey is the SSH key Flux reads the platform repository with.
type DeployKey struct {
	// Private is the OpenSSH private key (PEM). Secret.
	Private []byte
	// Public is the authorized_keys line to register as a read-only deploy
	// key on the repository.
	Public string
}

// String never shows the private half.
func (k DeployKey) String() string { return "DeployKey(" + k.Public + ")" }

// GenerateDeployKey makes a new ed25519 key pair.
func GenerateDeployKey(comment string) (*DeployKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate deploy key: %w", err)
	}

	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encode deploy key: %w", err)
	}

	return ParseDeployKey(pem.EncodeToMemory(block))
}

// ParseDeployKey reads an unencrypted OpenSSH (or PEM) private key, as the
// secret store holds it, and derives its public half. Errors never quote
// the key.
func ParseDeployKey(private []byte) (*DeployKey, error) {
	signer, err := ssh.ParsePrivateKey(private)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("deploy key is protected by a passphrase: Flux needs it unencrypted")
		}

		return nil, errors.New("deploy key is not an SSH private key")
	}

	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))

	return &DeployKey{Private: append([]byte(nil), private...), Public: pub}, nil
}

// Fingerprint is the key's SHA256 fingerprint, as GitHub shows it.
func (k DeployKey) Fingerprint() string {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Public))
	if err != nil {
		return ""
	}

	return ssh.FingerprintSHA256(pub)
}
