package haproxy_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/haproxy"
)

func TestVMUserData(t *testing.T) {
	t.Parallel()
	vm, err := haproxy.VM(productionConfig(), cloudinit.VM{
		Hostname: "haproxy", AdminUser: "deploy",
		Network: cloudinit.Interface{MAC: "02:00:0a:0a:00:03", Address: netip.MustParsePrefix("10.10.0.3/24"),
			Gateway: netip.MustParseAddr("10.10.0.1"), Nameservers: []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("8.8.8.8")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := cloudinit.UserData(vm)
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/haproxy-user-data.yaml", data)

	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init is not installed (CI installs it: apt-get install -y cloud-init)")
	}
	file := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "schema", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("cloud-init schema rejected the HAProxy VM's user data: %v\n%s", err, out)
	}
}
