package haproxy_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/haproxy"
)

func productionConfig() haproxy.Config {
	return haproxy.Config{
		Domain:       "example.com",
		Teleport:     netip.MustParseAddrPort("10.10.0.2:3080"),
		GatewayHTTPS: netip.MustParseAddrPort("10.10.0.30:443"),
		GatewayHTTP:  netip.MustParseAddrPort("10.10.0.30:80"),
	}
}

func requireHAProxy(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (CI installs it: apt-get install -y haproxy)")
	}
	return bin
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	got, err := haproxy.Render(productionConfig())
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/haproxy.cfg", got)
}

func TestRenderRefusesBadInput(t *testing.T) {
	t.Parallel()
	c := productionConfig()
	c.Domain = "Example.com"
	if _, err := haproxy.Render(c); err == nil || !strings.Contains(err.Error(), "set `domain`") {
		t.Errorf("upper-case domain: %v", err)
	}
	c = productionConfig()
	c.Teleport = netip.AddrPort{}
	if _, err := haproxy.Render(c); err == nil {
		t.Error("missing Teleport address accepted")
	}
}

// The production file, exactly as the VM gets it, passes HAProxy's own check.
func TestHAProxyAcceptsConfig(t *testing.T) {
	t.Parallel()
	bin := requireHAProxy(t)
	got, err := haproxy.Render(productionConfig())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, got, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-c", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c rejected the config: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "WARNING") {
		t.Errorf("haproxy -c warns:\n%s", out)
	}
}

// TestHAProxyRoutesBySNI runs the real HAProxy with the rendered routes on
// loopback: the backends are TLS servers whose certificates name them, so a
// client that completes a handshake knows exactly where HAProxy sent it (the
// TLS passes through untouched). HAProxy gets its listening sockets from this
// test (bind fd@N), so every port is kernel-chosen and nothing races.
func TestHAProxyRoutesBySNI(t *testing.T) {
	t.Parallel()
	bin := requireHAProxy(t)

	teleport := tlsBackend(t, "teleport")
	apps := tlsBackend(t, "gateway-https")
	plain := plainBackend(t, "gateway-http")

	https, httpsFile := listener(t)
	plainHTTP, httpFile := listener(t)

	c := productionConfig()
	c.Teleport, c.GatewayHTTPS, c.GatewayHTTP = teleport, apps, plain
	c.ListenHTTPS, c.ListenHTTP = "fd@3", "fd@4"
	c.Unprivileged, c.Log = true, "stderr format raw"
	cfg, err := haproxy.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", file)
	cmd.ExtraFiles = []*os.File{httpsFile, httpFile}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", logs.String())
		}
	})
	// HAProxy now owns the sockets; connections queue in the kernel until
	// it accepts them, so there is nothing to wait for.
	httpsFile.Close()
	httpFile.Close()

	for _, tc := range []struct {
		sni  string
		want string // backend name, or "" for dropped
	}{
		{"teleport.example.com", "teleport"},
		{"TELEPORT.example.com", "teleport"},
		{"proxmox.example.com", "teleport"},
		{"grafana.apps.example.com", "gateway-https"},
		{"a.b.apps.example.com", "gateway-https"},
		{"apps.example.com", ""},
		{"example.com", ""},
		{"teleport.example.com.evil.test", ""},
		{"grafana.apps.example.com.evil.test", ""},
		{"", ""}, // no SNI at all
	} {
		got := handshake(t, https, tc.sni, exited)
		if got != tc.want {
			t.Errorf("SNI %q reached %q, want %q", tc.sni, got, orDropped(tc.want))
		}
	}

	// Port 80 is passed through to the gateway as is.
	conn, err := net.DialTimeout("tcp", plainHTTP.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if strings.TrimSpace(line) != "gateway-http" {
		t.Errorf("port 80 reached %q (%v), want gateway-http", line, err)
	}
}

func orDropped(s string) string {
	if s == "" {
		return "dropped"
	}
	return s
}

// handshake connects with sni and returns the name in the certificate the
// backend presented, or "" when the connection was dropped.
func handshake(t *testing.T, addr netip.AddrPort, sni string, exited <-chan error) string {
	t.Helper()
	select {
	case err := <-exited:
		t.Fatalf("haproxy exited: %v", err)
	default:
	}
	raw, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Client(raw, &tls.Config{ServerName: sni, InsecureSkipVerify: true}) //nolint:gosec // the backends are this test's own
	if err := conn.Handshake(); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("SNI %q: no answer within the deadline: %v", sni, err)
		}
		return ""
	}
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func listener(t *testing.T) (netip.AddrPort, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // the duplicate in f keeps the socket listening
	return netip.MustParseAddrPort(ln.Addr().String()), f
}

func tlsBackend(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve(ln, func(c net.Conn) { _ = c.(*tls.Conn).Handshake() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

func plainBackend(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve(ln, func(c net.Conn) { _, _ = c.Write([]byte(name + "\n")) })
	return netip.MustParseAddrPort(ln.Addr().String())
}

func serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			handle(c)
		}()
	}
}
