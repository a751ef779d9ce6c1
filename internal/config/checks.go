package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	baremetal "github.com/scaleway/scaleway-sdk-go/api/baremetal/v1"
	"golang.org/x/crypto/ssh"

	"github.com/rawkode/rawkode-cloud/internal/ipdetect"
)

var (
	reDNSLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reUUID         = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	reAccessKey    = regexp.MustCompile(`^SCW[A-Z0-9]{17}$`)
	reTalosVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$`)
	reKubeVersion  = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	reSchematic    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	reDisk         = regexp.MustCompile(`^/dev/[A-Za-z0-9/_.-]+$`)
	reHex32        = regexp.MustCompile(`^[0-9a-f]{32}$`)
	reSlug         = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

func checkDNSLabel(v string) error {
	if !reDNSLabel.MatchString(v) {
		return errors.New("must be a DNS label: lowercase letters, digits and '-', at most 63 characters, not starting or ending with '-'")
	}
	return nil
}

// MaxWorkers bounds the workers setting: a typo (100 for 10) must not
// order a hundred servers.
const MaxWorkers = 50

func checkControlPlanes(v string) error {
	switch v {
	case "1", "3", "5":
		return nil
	}
	return errors.New("must be 1, 3 or 5: etcd keeps a quorum only with an odd number of members (2 survive no more failures than 1, 4 no more than 3), and more than 5 slows every write")
}

func checkWorkers(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > MaxWorkers {
		return fmt.Errorf("must be a whole number from 0 to %d", MaxWorkers)
	}
	return nil
}

func checkUUID(v string) error {
	if !reUUID.MatchString(v) {
		return errors.New("must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
	}
	return nil
}

func checkScalewayAccessKey(v string) error {
	if !reAccessKey.MatchString(v) {
		return errors.New("must be a Scaleway access key: SCW followed by 17 uppercase letters or digits")
	}
	return nil
}

func checkZone(v string) error {
	for _, z := range ElasticMetalZones() {
		if z == v {
			return nil
		}
	}
	// Ordering in a zone without Elastic Metal fails only at the order:
	// say so before anything is spent.
	return fmt.Errorf("is not a Scaleway zone with Elastic Metal (one of %s)", strings.Join(ElasticMetalZones(), ", "))
}

// ElasticMetalZones are the zones the Elastic Metal API serves, as the
// Scaleway SDK lists them.
func ElasticMetalZones() []string {
	zones := (&baremetal.API{}).Zones()
	out := make([]string, len(zones))
	for i, z := range zones {
		out[i] = string(z)
	}
	return out
}

func checkTalosVersion(v string) error {
	if !reTalosVersion.MatchString(v) {
		return errors.New("must be a Talos version such as v1.12.4")
	}
	return nil
}

func checkKubernetesVersion(v string) error {
	if !reKubeVersion.MatchString(v) {
		return errors.New("must be a Kubernetes version such as 1.35.1 (no leading v)")
	}
	return nil
}

func checkSchematic(v string) error {
	if !reSchematic.MatchString(v) {
		return errors.New("must be an Image Factory schematic ID: 64 lowercase hex characters")
	}
	return nil
}

func checkDisk(v string) error {
	if !reDisk.MatchString(v) {
		return errors.New("must be a device path such as /dev/nvme0n1")
	}
	return nil
}

func checkHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("must be an http(s) URL such as https://example.com")
	}
	return nil
}

// checkLoopbackURL keeps a served sandbox on this machine: the address
// routes the Talos API, so it must never name another host.
func checkLoopbackURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" && u.Path != "/" {
		return errors.New("must be http://127.0.0.1:PORT, as 'rawkode-cloud sandbox serve' writes it")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
		return errors.New("must be a loopback address (a served sandbox runs on this machine)")
	}
	return nil
}

func checkHostPort(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return errors.New("must be host:port, e.g. teleport.example.com:443")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("port must be a number between 1 and 65535")
	}
	if _, err := netip.ParseAddr(host); err != nil && checkDNSName(host) != nil {
		return errors.New("host must be a DNS name or an IP address")
	}
	return nil
}

func checkReadableFile(v string) error {
	f, err := os.Open(v)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file %s does not exist", v)
		}
		return fmt.Errorf("file %s cannot be read: %v", v, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("file %s cannot be read", v)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", v)
	}
	// A read of one byte proves permissions where Open alone may not.
	if _, err := f.Read(make([]byte, 1)); err != nil && st.Size() > 0 {
		return fmt.Errorf("file %s cannot be read", v)
	}
	return nil
}

func checkIdentityContent(v string) error {
	if !strings.Contains(v, "-----BEGIN") {
		return errors.New("does not look like a Teleport identity file (no PEM blocks)")
	}
	return nil
}

func checkToken(v string) error {
	if strings.ContainsAny(v, " \t\r\n") {
		return errors.New("must not contain whitespace")
	}
	return nil
}

func checkCloudflareZone(v string) error {
	if !reHex32.MatchString(v) {
		return errors.New("must be a Cloudflare zone ID: 32 lowercase hex characters")
	}
	return nil
}

func checkDNSName(v string) error {
	name := strings.TrimSuffix(v, ".")
	if len(name) == 0 || len(name) > 253 || !strings.Contains(name, ".") {
		return errors.New("must be a fully qualified DNS name such as k8s.example.com")
	}
	for _, label := range strings.Split(name, ".") {
		if !reDNSLabel.MatchString(strings.ToLower(label)) {
			return fmt.Errorf("label %q is not a valid DNS label", label)
		}
	}
	return nil
}

var reImageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func checkImageTag(v string) error {
	if !reImageTag.MatchString(v) {
		return errors.New("must be an image tag such as 17.4.2")
	}
	return nil
}

func checkSlug(v string) error {
	if !reSlug.MatchString(v) {
		return errors.New("must be a slug: lowercase letters, digits, '-' and '_'")
	}
	return nil
}

func checkSecretPath(v string) error {
	if !strings.HasPrefix(v, "/") || strings.Contains(v, "//") || strings.ContainsAny(v, " \t\n") {
		return errors.New("must be an absolute folder path such as / or /rawkode-cloud")
	}
	return nil
}

// checkOperatorIP accepts only a public IPv4 address, by the same rules as
// detection: the firewall opening is made for it, and a private or
// documentation address would open nothing useful.
func checkOperatorIP(v string) error {
	if _, err := ipdetect.ParseOperatorIP(v); err != nil {
		// The caller already names the value and its source.
		if inner := errors.Unwrap(err); inner != nil {
			return inner
		}
		return err
	}
	return nil
}

func checkPositiveDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("must be a duration such as 90s, 10m or 1h30m")
	}
	if d <= 0 {
		return errors.New("must be greater than zero")
	}
	return nil
}

func checkDirPath(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must be a directory path")
	}
	if st, err := os.Stat(v); err == nil && !st.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", v)
	}
	return nil
}

// CheckPublicIPv4 validates an address the firewall would open for.
func CheckPublicIPv4(v string) error { return checkOperatorIP(v) }

var reEmail = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)

func checkEmail(v string) error {
	if !reEmail.MatchString(v) {
		return errors.New("must be an email address such as ops@example.com")
	}
	return checkDNSName(v[strings.LastIndex(v, "@")+1:])
}

// S3 bucket naming rules (the strictest of AWS's and Scaleway's): 3–63
// characters, lowercase letters, digits, dots and hyphens, starting and
// ending with a letter or digit.
var reBucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func checkBucket(v string) error {
	if !reBucket.MatchString(v) || strings.Contains(v, "..") {
		return errors.New("must be an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-'")
	}
	return nil
}

func checkSecretStore(v string) error {
	switch v {
	case SecretStoreOnePassword, SecretStoreInfisical:
		return nil
	}
	return fmt.Errorf("must be %s or %s", SecretStoreOnePassword, SecretStoreInfisical)
}

func checkDelivery(v string) error {
	switch v {
	case DeliveryMaintenance, DeliveryInstall:
		return nil
	}
	return fmt.Errorf("must be %s or %s", DeliveryMaintenance, DeliveryInstall)
}

func checkCNI(v string) error {
	switch v {
	case CNIFlannel, CNICilium:
		return nil
	}
	return fmt.Errorf("must be %s or %s", CNIFlannel, CNICilium)
}

// ParsePool reads the load-balancer-pool setting: IPs (taken as single
// addresses) and CIDRs, comma-separated.
func ParsePool(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if ip, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", f)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%q has host bits set (did you mean %s?)", f, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func checkPool(v string) error {
	p, err := ParsePool(v)
	if err == nil && len(p) == 0 {
		err = errors.New("lists no address")
	}
	return err
}

func checkGitURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "ssh" && u.Scheme != "https") || len(u.Path) < 2 {
		return errors.New("must be ssh://git@host/org/repo.git or https://host/org/repo.git (scp-style git@host:org/repo is not accepted)")
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return errors.New("must not carry a password: use an ssh:// URL and a deploy key")
	}
	return nil
}

func checkGitBranch(v string) error {
	if strings.ContainsAny(v, " ~^:?*[\\") || strings.Contains(v, "..") || strings.HasPrefix(v, "-") || strings.HasSuffix(v, "/") {
		return errors.New("must be a git branch name")
	}
	return nil
}

func checkRelativePath(v string) error {
	if strings.HasPrefix(v, "/") || v == ".." || strings.HasPrefix(v, "../") || strings.Contains(v, "/../") {
		return errors.New("must be a path inside the repository (relative, without ..)")
	}
	return nil
}

func checkKnownHosts(v string) error {
	rest := []byte(v)
	n := 0
	for len(strings.TrimSpace(string(rest))) > 0 {
		_, _, _, _, r, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			return errors.New("must be lines in SSH known_hosts format (host keytype key)")
		}
		rest = r
		n++
	}
	if n == 0 {
		return errors.New("holds no host key")
	}
	return nil
}

func checkDeployKey(v string) error {
	if _, err := ssh.ParsePrivateKey([]byte(v)); err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return errors.New("is protected by a passphrase: Flux needs it unencrypted")
		}
		return errors.New("is not an SSH private key (OpenSSH or PEM)")
	}
	return nil
}

// GitHub organisation names: letters, digits and single hyphens, at most 39.
var reGitHubOrg = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)

func checkGitHubOrg(v string) error {
	if !reGitHubOrg.MatchString(v) {
		return errors.New("must be a GitHub organisation name: letters, digits and single hyphens, at most 39 characters")
	}
	return nil
}
