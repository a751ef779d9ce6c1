package platform_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/rawkode/rawkode-cloud/internal/platform"
)

func TestGenerateDeployKey(t *testing.T) {
	t.Parallel()

	k, err := platform.GenerateDeployKey("flux@demo")
	if err != nil {
		t.Fatal(err)
	}

	if !strings.HasPrefix(k.Public, "ssh-ed25519 ") {
		t.Errorf("public key %q is not ed25519", k.Public)
	}

	again, err := platform.ParseDeployKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}

	if again.Public != k.Public || again.Fingerprint() != k.Fingerprint() || !strings.HasPrefix(k.Fingerprint(), "SHA256:") {
		t.Errorf("reparsed key differs: %s vs %s", again.Public, k.Public)
	}

	if strings.Contains(k.String(), "PRIVATE") {
		t.Errorf("String() shows the private key")
	}
}

func TestParseDeployKeyErrorsNeverQuoteTheKey(t *testing.T) {
	t.Parallel()

	for _, bad := range []string{"not a key", "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END OPENSSH PRIVATE KEY-----\n"} {
		_, err := platform.ParseDeployKey([]byte(bad))
		if err == nil {
			t.Fatalf("%q parsed", bad)
		}

		if strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "not a key") {
			t.Errorf("error quotes the input: %v", err)
		}
	}
}

// The built-in known hosts must be GitHub's published keys: a typo would make
// Flux refuse github.com. The fingerprints are the ones GitHub publishes.
func TestGitHubKnownHostsFingerprints(t *testing.T) {
	t.Parallel()

	want := map[string]string{
		"ssh-ed25519":         "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
		"ecdsa-sha2-nistp256": "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
	}

	rest := []byte(platform.GitHubKnownHosts)
	for len(rest) > 0 {
		_, hosts, pub, _, r, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			t.Fatal(err)
		}

		rest = r

		if len(hosts) != 1 || hosts[0] != "github.com" {
			t.Errorf("hosts = %v", hosts)
		}

		if got := ssh.FingerprintSHA256(pub); got != want[pub.Type()] {
			t.Errorf("%s fingerprint = %s, want %s", pub.Type(), got, want[pub.Type()])
		}

		delete(want, pub.Type())
	}

	if len(want) > 0 {
		t.Errorf("missing keys: %v", want)
	}
}
