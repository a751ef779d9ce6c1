package democraticcsi_test

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/rawkode/rawkode-cloud/internal/democraticcsi"
)

func TestKeyPairAndAuthorizedKey(t *testing.T) {
	t.Parallel()
	kp, err := democraticcsi.GenerateKeyPair("democratic-csi@sandbox")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(kp.PrivateKey)
	if err != nil {
		t.Fatalf("the private key does not parse as OpenSSH: %v", err)
	}
	line, err := democraticcsi.AuthorizedKey(kp.PublicKey, netip.MustParsePrefix("10.10.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	pub, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("sshd could not read %q: %v", line, err)
	}
	if string(pub.Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Error("the authorized key is not the private key's")
	}
	if comment != "democratic-csi@sandbox" {
		t.Errorf("comment %q", comment)
	}
	if got := strings.Join(options, ","); got != `from="10.10.0.0/24",no-agent-forwarding,no-port-forwarding,no-X11-forwarding,no-pty,no-user-rc` {
		t.Errorf("options %s", got)
	}
	if _, err := democraticcsi.AuthorizedKey("not a key", netip.MustParsePrefix("10.10.0.0/24")); err == nil {
		t.Error("garbage accepted as a public key")
	}
}

func input() democraticcsi.Input {
	return democraticcsi.Input{Host: netip.MustParseAddr("10.10.0.1"), PrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n...\n"),
		Pool: "rpool", Volumes: "k8s-csi", Snapshots: "k8s-csi-snaps", IQNBase: "iqn.2003-01.org.linux-iscsi.proxmox"}
}

func TestValuesRefuseWhatTheDriverWould(t *testing.T) {
	t.Parallel()
	if _, err := democraticcsi.Values(input()); err != nil {
		t.Fatal(err)
	}
	nested := input()
	nested.Snapshots = "k8s-csi/snaps"
	if _, err := democraticcsi.Values(nested); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("nested datasets: %v", err)
	}
	noKey := input()
	noKey.PrivateKey = nil
	if _, err := democraticcsi.Values(noKey); err == nil {
		t.Error("no key accepted")
	}
}
