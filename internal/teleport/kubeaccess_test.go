package teleport

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/identityfile"
	"github.com/gravitational/teleport/api/profile"
)

// tshProfile writes what `tsh login` leaves in its home directory for the
// identity the emulator issues: the profile and its key, certificate and
// CAs.
func tshProfile(t *testing.T, e *Emulator) (dir, user string) {
	t.Helper()
	content, err := e.IdentityFile()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identityfile.FromString(string(content))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(id.Certs.TLS)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	p := &profile.Profile{WebProxyAddr: e.Addr(), Username: cert.Subject.CommonName, SiteName: e.ClusterName(), Dir: dir}
	files := map[string][]byte{p.TLSCertPath(): id.Certs.TLS, p.UserTLSKeyPath(): id.PrivateKey, p.TLSCAsPath(): slices.Concat(id.CACerts.TLS...),
		p.SSHCertPath(): id.Certs.SSH, p.UserSSHKeyPath(): id.PrivateKey, p.KnownHostsPath(): slices.Concat(id.CACerts.SSH...)}
	for path, data := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SaveToDir(dir, true); err != nil {
		t.Fatal(err)
	}
	return dir, cert.Subject.CommonName
}

func TestKubeCredentialsWithATshProfile(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{User: "alice@example.com"})
	if err := e.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	dir, user := tshProfile(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, Config{Proxy: e.Addr(), ProfileDir: dir, DialTimeout: 10 * time.Second, Retry: fastRetry(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The auth service issues certificates for the caller's own user only:
	// the request must name the profile's user.
	creds, err := c.KubeCredentials(ctx, "c1", 10*time.Minute)
	if err != nil {
		t.Fatalf("Kubernetes credentials with a tsh profile: %v", err)
	}
	if creds.User != user || user != "alice@example.com" {
		t.Errorf("certificate issued to %q, want the profile's user %q", creds.User, user)
	}
	if !slices.Equal(creds.KubeGroups, KubeAccessGroups) {
		t.Errorf("certificate's kubernetes groups %v, want the role's %v", creds.KubeGroups, KubeAccessGroups)
	}
	if !strings.Contains(c.identity, `"alice@example.com" (tsh profile)`) {
		t.Errorf("identity named %s in messages", c.identity)
	}
}

func TestKubeCredentialsNeedTheIdentitysUser(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	if err := e.RegisterForeign("c1", nil); err != nil {
		t.Fatal(err)
	}
	c := connect(t, e, Config{})
	c.user = "" // as if the certificate could not be read
	before := e.Counters().Get(OpGenerateUserCerts)
	_, err := c.KubeCredentials(testCtx(t, 10*time.Second), "c1", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "Teleport user of the identity") || !strings.Contains(err.Error(), "teleport-identity-file") {
		t.Fatalf("credentials without a user: %v", err)
	}
	if n := e.Counters().Get(OpGenerateUserCerts); n != before {
		t.Errorf("asked the auth service anyway (%d requests)", n-before)
	}
}
