package emulator

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Messages are PVE's own (PVE::JSONSchema), so a test that greps for them
// sees what a real node answers.
const (
	msgUndefined = "property is not defined in schema and the schema does not allow additional properties"
	msgMissing   = "property is missing and it is not optional"
)

// validate checks every parameter against the operation's description and
// returns PVE's per-parameter error map (nil when all is well).
func (op *operation) validate(params map[string]string) map[string]string {
	errs := map[string]string{}
	for name, v := range params {
		p, ok := op.lookup(name)
		if !ok {
			if !bool(op.Additional) {
				errs[name] = msgUndefined
			}
			continue
		}
		if msg := p.check(name, v); msg != "" {
			errs[name] = msg
		}
		if p.Requires != "" {
			if _, ok := params[p.Requires]; !ok {
				errs[p.Requires] = fmt.Sprintf("missing property - '%s' requires this property", name)
			}
		}
	}
	for name, p := range op.Params {
		if bool(p.Optional) || strings.HasSuffix(name, "[n]") {
			continue
		}
		if _, ok := params[name]; !ok {
			errs[name] = msgMissing
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

var (
	boolRe = regexp.MustCompile(`(?i)^(1|0|true|false|yes|no|on|off)$`)
	intRe  = regexp.MustCompile(`^[+-]?\d+$`)
)

// check validates one value; "" means valid.
func (p param) check(name, v string) string {
	switch p.Type {
	case "boolean":
		if !boolRe.MatchString(v) {
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", v)
		}
	case "integer":
		if !intRe.MatchString(v) {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", v)
		}
	case "number":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return fmt.Sprintf("type check ('number') failed - got '%s'", v)
		}
	}
	if p.Type == "integer" || p.Type == "number" {
		f, _ := strconv.ParseFloat(v, 64)
		if lo, ok := number(p.Minimum); ok && f < lo {
			return fmt.Sprintf("value must have a minimum value of %v", p.Minimum)
		}
		if hi, ok := number(p.Maximum); ok && f > hi {
			return fmt.Sprintf("value must have a maximum value of %v", p.Maximum)
		}
	}
	if len(p.Enum) > 0 {
		allowed := make([]string, len(p.Enum))
		hit := false
		for i, e := range p.Enum {
			allowed[i] = fmt.Sprint(e)
			hit = hit || allowed[i] == v
		}
		if !hit {
			return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", v, strings.Join(allowed, ", "))
		}
	}
	if p.MaxLength != nil && len(v) > *p.MaxLength {
		return fmt.Sprintf("value may only be %d characters long", *p.MaxLength)
	}
	if p.MinLength != nil && len(v) < *p.MinLength {
		return fmt.Sprintf("value must be at least %d characters long", *p.MinLength)
	}
	if p.Pattern != "" && !patternMatch(p.Pattern, v) {
		return "value does not match the regex pattern"
	}
	if p.formatKeys != nil {
		if msg := checkPropertyString(name, p.formatKeys, v); msg != "" {
			return "invalid format - format error\n" + msg
		}
	}
	if p.formatName != "" {
		if msg := checkFormat(p.formatName, v); msg != "" {
			return "invalid format - " + msg
		}
	}
	return ""
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

var (
	patternMu    sync.Mutex
	patternCache = map[string]*regexp.Regexp{}
)

// patternMatch applies a Perl pattern from the description, anchored as
// PVE anchors it. Perl's "(?^:" flag group has no Go spelling; it means "no
// flags", which Go's "(?:" is.
func patternMatch(pattern, v string) bool {
	patternMu.Lock()
	re, ok := patternCache[pattern]
	if !ok {
		re, _ = regexp.Compile("^(?:" + strings.ReplaceAll(pattern, "(?^:", "(?:") + ")$")
		patternCache[pattern] = re
	}
	patternMu.Unlock()
	return re == nil || re.MatchString(v)
}

// checkPropertyString validates "key=value,key=value" strings such as a
// disk's "local:0,import-from=local:import/x.qcow2" against their keys.
func checkPropertyString(name string, keys map[string]param, v string) string {
	var defaultKey string
	for k, p := range keys {
		if bool(p.DefaultKey) {
			defaultKey = k
		}
	}
	seen := map[string]bool{}
	var msgs []string
	for _, part := range strings.Split(v, ",") {
		if part == "" {
			continue
		}
		k, val, hasEq := strings.Cut(part, "=")
		if !hasEq {
			if defaultKey == "" {
				msgs = append(msgs, fmt.Sprintf("%s: value without key, but schema does not define a default key", name))
				continue
			}
			k, val = defaultKey, part
		}
		p, ok := keys[k]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("%s.%s: %s", name, k, msgUndefined))
			continue
		}
		if p.KeyAlias != "" {
			// "virtio=AA:BB:…" means model=virtio, macaddr=AA:BB:….
			seen[p.KeyAlias], seen[p.Alias] = true, true
			continue
		}
		if p.Alias != "" {
			k, p = p.Alias, keys[p.Alias]
		}
		seen[k] = true
		if msg := p.check(name+"."+k, val); msg != "" {
			msgs = append(msgs, fmt.Sprintf("%s.%s: %s", name, k, msg))
		}
	}
	for k, p := range keys {
		if !bool(p.Optional) && p.Alias == "" && p.KeyAlias == "" && !seen[k] {
			msgs = append(msgs, fmt.Sprintf("%s.%s: %s", name, k, msgMissing))
		}
	}
	sort.Strings(msgs)
	return strings.Join(msgs, "\n")
}

var formatRes = map[string]*regexp.Regexp{
	"pve-node":       regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`),
	"pve-iface":      regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{1,20}([:.]\d+)?$`),
	"pve-storage-id": regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]$`),
	"pve-configid":   regexp.MustCompile(`^[a-z][a-z0-9_-]+$`),
	"pve-userid":     regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$`),
	"pve-tokenid":    regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`),
	"pve-roleid":     regexp.MustCompile(`^[A-Za-z0-9.\-_]+$`),
	"pve-tag":        regexp.MustCompile(`^(?i)[a-z0-9_][a-z0-9_\-+.]*$`),
	"pve-volume-id":  regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$`),
	"mac-addr":       regexp.MustCompile(`^(?i)[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$`),
	"pve-fw-port":    regexp.MustCompile(`^(\d+(:\d+)?|[a-z][a-z0-9-]*)$`),
	"pve-fw-proto":   regexp.MustCompile(`^([a-z][a-z0-9-]*|\d+)$`),
	"pve-fw-alias":   regexp.MustCompile(`^((dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+$`),
}

// contentTypes are the storage content types PVE 9 knows.
var contentTypes = map[string]bool{
	"images": true, "rootdir": true, "vztmpl": true, "iso": true, "backup": true, "snippets": true, "import": true, "none": true,
}

// checkFormat validates a named format; formats this emulator has no rule
// for pass, as the payloads it is sent never use them.
func checkFormat(format, v string) string {
	if base, ok := strings.CutSuffix(format, "-list"); ok && format != "pve-fw-addr-spec" {
		for _, item := range splitList(v) {
			if msg := checkFormat(base, item); msg != "" {
				return msg
			}
		}
		return ""
	}
	bad := func() string {
		return fmt.Sprintf("value does not look like a valid %s", strings.TrimPrefix(format, "pve-"))
	}
	switch format {
	case "ipv4", "ipv6", "ip":
		a, err := netip.ParseAddr(v)
		if err != nil || (format == "ipv4" && !a.Is4()) || (format == "ipv6" && !a.Is6()) {
			return fmt.Sprintf("value does not look like a valid %s address", strings.TrimPrefix(format, "ip"))
		}
	case "CIDRv4", "CIDRv6", "CIDR":
		pfx, err := netip.ParsePrefix(v)
		if err != nil || (format == "CIDRv4" && !pfx.Addr().Is4()) || (format == "CIDRv6" && !pfx.Addr().Is6()) {
			return "value does not look like a valid CIDR network"
		}
	case "IPorCIDRorAlias":
		// pve-firewall's pve_verify_ip_or_cidr_or_alias: an address, a
		// network, or the name of an alias.
		if _, err := netip.ParseAddr(v); err == nil {
			break
		}
		if _, err := netip.ParsePrefix(v); err == nil {
			break
		}
		if !formatRes["pve-fw-alias"].MatchString(v) {
			return "value does not look like a valid IP address or CIDR network"
		}
	case "pve-storage-content":
		if !contentTypes[v] {
			return fmt.Sprintf("invalid content type '%s'", v)
		}
	case "pve-tag":
		if !formatRes[format].MatchString(v) {
			return fmt.Sprintf("invalid tag '%s'", v)
		}
	case "pve-fw-addr-spec":
		for _, item := range strings.Split(v, ",") {
			if _, err := netip.ParsePrefix(item); err == nil {
				continue
			}
			if _, err := netip.ParseAddr(item); err == nil {
				continue
			}
			if strings.HasPrefix(item, "+") || formatRes["pve-configid"].MatchString(item) {
				continue // an IPSet or an alias
			}
			return fmt.Sprintf("invalid IP address '%s'", item)
		}
	case "pve-fw-dport-spec", "pve-fw-sport-spec":
		for _, item := range strings.Split(v, ",") {
			if !formatRes["pve-fw-port"].MatchString(item) {
				return fmt.Sprintf("invalid port '%s'", item)
			}
			for _, n := range strings.Split(item, ":") {
				if p, err := strconv.Atoi(n); err == nil && p > 65535 {
					return fmt.Sprintf("invalid port '%s'", item)
				}
			}
		}
	case "pve-fw-protocol-spec":
		if !formatRes["pve-fw-proto"].MatchString(v) {
			return fmt.Sprintf("unknown protocol '%s'", v)
		}
	default:
		if re, ok := formatRes[format]; ok && !re.MatchString(v) {
			return bad()
		}
	}
	return ""
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' })
}
