package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The checks below are the validate functions of the settings table. Each
// returns a message that, with the key in front, tells the operator what is
// wrong and what is allowed. None of them echoes database.url.

func checkDataDir(_ *Config, v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty; give the directory for Bulwark's data")
	}
	return nil
}

func checkListen(c *Config, v string) error {
	return checkAddress(c, v, "127.0.0.1:8443")
}

func checkOpsListen(c *Config, v string) error {
	if err := checkAddress(c, v, "127.0.0.1:9443"); err != nil {
		return err
	}
	if v == c.Listen && !strings.HasSuffix(v, ":0") {
		return fmt.Errorf("%s is also the listen address; the ops listener needs its own port", v)
	}
	return nil
}

// checkAddress checks a listener's host:port and refuses plain HTTP beyond
// loopback unless allow_insecure_http is set.
func checkAddress(c *Config, v, example string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port (for example %s)", v, example)
	}
	if !validPort(port) {
		return fmt.Errorf("port %q in %q is not a number in 0..65535", port, v)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return fmt.Errorf("host %q in %q is not an IP address or host name", host, v)
		}
	}
	if c.TLS.Mode == TLSOff && !loopbackHost(host) && !c.AllowInsecureHTTP {
		return fmt.Errorf("plain HTTP on non-loopback address %s is insecure; set allow_insecure_http: true to allow it", v)
	}
	return nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, r := range p {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int(r-'0')
	}
	return n <= 65535
}

// loopbackHost reports whether host is localhost or a loopback address. The
// empty host means every interface and is not loopback.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && a.Unmap().IsLoopback()
}

// validHostname reports whether h is a DNS name: dot-separated labels of
// letters, digits and inner hyphens.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// privateNets are the networks an ops allowlist may name without
// allow_insecure_ops_allowlist.
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
}

func checkOpsAllowlist(c *Config, ps []netip.Prefix) error {
	const hint = "set allow_insecure_ops_allowlist: true to allow it"
	if len(ps) == 0 && !c.AllowInsecureOpsAllowlist {
		return errors.New("an empty list leaves the ops listener without an allowlist; list the private networks that may reach it, or " + hint)
	}
	for i, p := range ps {
		if !p.IsValid() {
			return fmt.Errorf("item %d is not a valid CIDR prefix", i+1)
		}
		if p != p.Masked() {
			return fmt.Errorf("%s has bits set beyond its prefix length; did you mean %s?", p, p.Masked())
		}
		if c.AllowInsecureOpsAllowlist {
			continue
		}
		if p.Bits() == 0 {
			return fmt.Errorf("%s matches every address, which is insecure; %s", p, hint)
		}
		if !private(p) {
			return fmt.Errorf("%s is not a private or loopback network, which is insecure; %s", p, hint)
		}
	}
	return nil
}

// private reports whether every address in p is private or loopback.
func private(p netip.Prefix) bool {
	for _, n := range privateNets {
		if n.Bits() <= p.Bits() && n.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func checkCertFile(c *Config, v string) error { return checkFilesModePath(c, v, "certificate") }
func checkKeyFile(c *Config, v string) error  { return checkFilesModePath(c, v, "private key") }

// checkFilesModePath requires a path with tls.mode files and refuses one
// otherwise, so nobody believes a certificate is in use when it is not.
func checkFilesModePath(c *Config, v, what string) error {
	switch {
	case c.TLS.Mode == TLSFiles && strings.TrimSpace(v) == "":
		return fmt.Errorf("required with tls.mode files; give the path of the PEM %s", what)
	case c.TLS.Mode != TLSFiles && v != "":
		return fmt.Errorf("is set but tls.mode is %q; it is used only with tls.mode files", c.TLS.Mode)
	}
	return nil
}

func checkACMEDomains(c *Config, ds []string) error {
	if c.TLS.Mode != TLSACME {
		if len(ds) > 0 {
			return fmt.Errorf("is set but tls.mode is %q; it is used only with tls.mode acme", c.TLS.Mode)
		}
		return nil
	}
	if len(ds) == 0 {
		return errors.New("required with tls.mode acme; list the domain names to get certificates for")
	}
	for _, d := range ds {
		if _, err := netip.ParseAddr(d); err == nil || !validHostname(d) || !strings.Contains(d, ".") {
			return fmt.Errorf("%q is not a public DNS name such as bulwark.example.com (no wildcards, no IP addresses)", d)
		}
	}
	return nil
}

func checkACMEEmail(_ *Config, v string) error {
	if v == "" {
		return nil
	}
	if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
		return fmt.Errorf("%q is not an e-mail address such as ops@example.com", v)
	}
	return nil
}

func checkACMEDirectory(_ *Config, v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an https URL such as %s", v, letsEncryptProduction)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !loopbackHost(u.Hostname())) {
		return fmt.Errorf("%q must use https (http only to a loopback host)", v)
	}
	return nil
}

func checkHSTS(c *Config, d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s is negative; give a duration >= 0", formatDuration(d))
	case d == 0 && c.TLS.Mode != TLSOff:
		return errors.New("0 turns HSTS off, which is allowed only with tls.mode off; the default is 17520h (2 years)")
	}
	return nil
}

func positive(_ *Config, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s must be greater than 0", formatDuration(d))
	}
	return nil
}

func checkReadHeaderTimeout(c *Config, d time.Duration) error {
	if err := positive(c, d); err != nil {
		return err
	}
	if c.HTTP.ReadTimeout > 0 && d > c.HTTP.ReadTimeout {
		return fmt.Errorf("%s is longer than http.read_timeout (%s)", formatDuration(d), formatDuration(c.HTTP.ReadTimeout))
	}
	return nil
}

// sslModes are libpq's sslmode values; weakSSLModes may send data unencrypted.
var (
	sslModes     = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
	weakSSLModes = map[string]bool{"": true, "disable": true, "allow": true, "prefer": true}
)

// checkDatabaseURL checks database.url without ever putting it, or any
// part that may hold the password, into the message.
func checkDatabaseURL(c *Config, v string) error {
	switch c.Database.Driver {
	case DriverSQLite:
		if v != "" {
			return errors.New("is set but database.driver is sqlite; remove it, or set database.driver: postgres")
		}
		return nil
	case DriverPostgres:
		if v == "" {
			return errors.New("required with database.driver postgres, e.g. postgres://bulwark:PASSWORD@db:5432/bulwark?sslmode=verify-full")
		}
	default:
		return nil // database.driver reports its own problem
	}
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" {
		return errors.New("is not a URL such as postgres://bulwark:PASSWORD@db:5432/bulwark?sslmode=verify-full (value not shown: it may hold a password)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return errors.New("must start with postgres:// or postgresql:// (value not shown: it may hold a password)")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return errors.New("has a malformed query string (value not shown: it may hold a password)")
	}
	mode := q.Get("sslmode")
	if mode != "" && !weakSSLModes[mode] && !slices.Contains(sslModes, mode) {
		return fmt.Errorf("sslmode %q is not one of %s", mode, strings.Join(sslModes, ", "))
	}
	if !weakSSLModes[mode] || c.AllowInsecureDatabaseTLS {
		return nil
	}
	for _, h := range databaseHosts(u, q) {
		if !loopbackHost(h) {
			setting := "no sslmode"
			if mode != "" {
				setting = "sslmode=" + mode
			}
			return fmt.Errorf("connecting to non-loopback host %q with %s may send data unencrypted; add sslmode=verify-full (or require), or set allow_insecure_database_tls: true to allow it", h, setting)
		}
	}
	return nil
}

// databaseHosts lists the TCP hosts a PostgreSQL URL connects to; Unix
// socket directories and the implicit local default are left out.
func databaseHosts(u *url.URL, q url.Values) []string {
	var raw []string
	if u.Host != "" {
		raw = append(raw, strings.Split(u.Host, ",")...)
	}
	for _, h := range q["host"] {
		raw = append(raw, strings.Split(h, ",")...)
	}
	var hosts []string
	for _, h := range raw {
		if h == "" || strings.HasPrefix(h, "/") {
			continue
		}
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		hosts = append(hosts, strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	}
	return hosts
}

// requiredFor requires a value when keys.provider is provider.
func requiredFor(provider, what string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if c.Keys.Provider == provider && strings.TrimSpace(v) == "" {
			return fmt.Errorf("required with keys.provider %s; give %s", provider, what)
		}
		return nil
	}
}

func checkVaultAddress(c *Config, v string) error {
	if v == "" {
		return requiredFor(KEKVault, "the https URL of the Vault server")(c, v)
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not a URL such as https://vault.internal:8200", v)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !loopbackHost(u.Hostname())) {
		return fmt.Errorf("%q must use https (http only to a loopback host)", v)
	}
	return nil
}

func checkVaultKeyPath(c *Config, v string) error {
	if v == "" {
		return requiredFor(KEKVault, "the transit key path, e.g. transit/keys/bulwark")(c, v)
	}
	parts := strings.Split(v, "/")
	if len(parts) < 3 || parts[len(parts)-2] != "keys" || parts[len(parts)-1] == "" {
		return fmt.Errorf("%q is not a transit key path such as transit/keys/bulwark", v)
	}
	return nil
}

func checkKMSKeyURI(c *Config, v string) error {
	prefix := map[string]string{KEKAWSKMS: "aws-kms://", KEKGCPKMS: "gcp-kms://"}[c.Keys.Provider]
	switch {
	case prefix == "":
		return nil
	case v == "":
		return fmt.Errorf("required with keys.provider %s; give a key URI starting %s", c.Keys.Provider, prefix)
	case !strings.HasPrefix(v, prefix):
		return fmt.Errorf("%q does not start with %s as keys.provider %s needs", v, prefix, c.Keys.Provider)
	}
	return nil
}

func checkKMSEndpoint(_ *Config, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not a URL such as https://kms.eu-west-1.amazonaws.com", v)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !loopbackHost(u.Hostname())) {
		return fmt.Errorf("%q must use https (http only to a loopback host)", v)
	}
	return nil
}

func checkPublicURL(_ *Config, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not a base URL such as https://api.example.com", v)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !loopbackHost(u.Hostname())) {
		return fmt.Errorf("%q must use https (http only to a loopback host)", v)
	}
	return nil
}

// between checks that a duration lies in [lo, hi].
func between(lo, hi time.Duration) func(*Config, time.Duration) error {
	return func(_ *Config, d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("%s is outside %s to %s", formatDuration(d), formatDuration(lo), formatDuration(hi))
		}
		return nil
	}
}
