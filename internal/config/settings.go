package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// KeyInfo describes one configuration key for people: docs, `bulwark config
// keys`, error hints.
type KeyInfo struct {
	Key         string // dotted key as written in the file, e.g. "tls.mode"
	Env         string // environment variable, e.g. "BULWARK_TLS_MODE"
	Default     string // default value as it would be written in an env var
	Allowed     string // what values are accepted
	Description string
	Secret      bool // masked whenever the configuration is printed
}

// Keys lists every key in the order WriteEffective prints them.
func Keys() []KeyInfo {
	def := Default()
	out := make([]KeyInfo, 0, len(table))
	for i := range table {
		s := &table[i]
		out = append(out, KeyInfo{
			Key:         s.key,
			Env:         s.env(),
			Default:     s.text(&def),
			Allowed:     s.allowed,
			Description: s.desc,
			Secret:      s.secret,
		})
	}
	return out
}

// setting is one row of the table that the file, environment and flag
// readers, Validate, WriteEffective and Keys all share, so each key is
// parsed, checked and printed by exactly one piece of code.
type setting struct {
	key     string
	flag    string // name of the command-line flag, if it differs from the key
	allowed string
	desc    string
	secret  bool
	list    bool
	// parse stores text into c; it reports only malformed text. Scalar
	// settings get exactly one value, list settings the items.
	parse func(c *Config, vals []string) error
	// show returns the value as a string, []string, bool or int.
	show func(c *Config) any
	// validate reports what is wrong with the value in c (nil: nothing).
	validate func(c *Config) error
	// mask hides a secret value for printing; nil masks all of it.
	mask func(string) string
}

// env returns the environment variable that sets s.
func (s *setting) env() string {
	return "BULWARK_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
}

// flagName describes the flag that sets s, for error messages.
func (s *setting) flagName() string {
	if s.flag != "" {
		return "flag --" + s.flag
	}
	return "flag " + s.key
}

// set parses text from an environment variable or a flag.
func (s *setting) set(c *Config, v string) error {
	if !s.list {
		return s.parse(c, []string{v})
	}
	var items []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return s.parse(c, items)
}

// check runs the setting's validation, if any.
func (s *setting) check(c *Config) error {
	if s.validate == nil {
		return nil
	}
	return s.validate(c)
}

// text prints the value of s in c the way an env var would hold it.
func (s *setting) text(c *Config) string {
	switch v := s.printed(c).(type) {
	case []string:
		return strings.Join(v, ", ")
	default:
		return fmt.Sprint(v)
	}
}

// printed is show with secrets masked.
func (s *setting) printed(c *Config) any {
	v := s.show(c)
	if !s.secret {
		return v
	}
	str, _ := v.(string)
	switch {
	case str == "":
		return ""
	case s.mask != nil:
		return s.mask(str)
	default:
		return "****"
	}
}

// lookup returns the setting for key, or nil.
func lookup(key string) *setting {
	for i := range table {
		if table[i].key == key {
			return &table[i]
		}
	}
	return nil
}

// allKeys returns every key in table order.
func allKeys() []string {
	out := make([]string, len(table))
	for i := range table {
		out[i] = table[i].key
	}
	return out
}

const durationSyntax = "Go syntax such as 30s, 10m or 2h"

// table is every configuration key. It is never modified.
var table = []setting{
	textSetting("data_dir", "path", "Directory for databases, keys and TLS material (created 0700).",
		func(c *Config) *string { return &c.DataDir }, checkDataDir).withFlag("data"),
	textSetting("listen", "host:port; plain HTTP (tls.mode off) only on loopback unless allow_insecure_http",
		"Address of the public HTTPS listener.",
		func(c *Config) *string { return &c.Listen }, checkListen).withFlag("listen"),
	textSetting("ops_listen", "host:port, not the same as listen; plain HTTP only on loopback unless allow_insecure_http",
		"Address of the operations listener (/metrics, /healthz, /readyz).",
		func(c *Config) *string { return &c.OpsListen }, checkOpsListen).withFlag("ops-listen"),
	prefixListSetting("ops_allowlist", "CIDR prefixes, private or loopback only unless allow_insecure_ops_allowlist",
		"Client networks allowed to reach the operations listener.",
		func(c *Config) *[]netip.Prefix { return &c.OpsAllowlist }, checkOpsAllowlist),

	enumSetting("tls.mode", "Where certificates come from: local (a local CA and leaf under DATA/tls), files (tls.cert_file and tls.key_file), acme (automatic, for tls.acme_domains) or off (plain HTTP).",
		func(c *Config) *string { return &c.TLS.Mode }, TLSLocal, TLSFiles, TLSACME, TLSOff),
	textSetting("tls.cert_file", "path; required with tls.mode files, refused otherwise",
		"PEM certificate chain used with tls.mode files; reloaded when it changes.",
		func(c *Config) *string { return &c.TLS.CertFile }, checkCertFile),
	textSetting("tls.key_file", "path; required with tls.mode files, refused otherwise",
		"PEM private key used with tls.mode files; reloaded when it changes.",
		func(c *Config) *string { return &c.TLS.KeyFile }, checkKeyFile),
	textListSetting("tls.acme_domains", "DNS names (no wildcards, no IPs); required with tls.mode acme, refused otherwise",
		"Domains to obtain certificates for with tls.mode acme.",
		func(c *Config) *[]string { return &c.TLS.ACMEDomains }, checkACMEDomains),
	textSetting("tls.acme_email", "e-mail address or empty",
		"Contact address given to the ACME certificate authority.",
		func(c *Config) *string { return &c.TLS.ACMEEmail }, checkACMEEmail),
	textSetting("tls.acme_directory_url", "https URL (http only to a loopback host)",
		"ACME directory; the default is Let's Encrypt production.",
		func(c *Config) *string { return &c.TLS.ACMEDirectoryURL }, checkACMEDirectory),
	durationSetting("tls.hsts_max_age", "duration >= 0; 0 (no HSTS) only with tls.mode off",
		"max-age of the Strict-Transport-Security header (default 2 years).",
		func(c *Config) *time.Duration { return &c.TLS.HSTSMaxAge }, checkHSTS),

	enumSetting("database.driver", "Database engine: sqlite (files under data_dir) or postgres (database.url).",
		func(c *Config) *string { return &c.Database.Driver }, DriverSQLite, DriverPostgres),
	secretURLSetting(),
	intSetting("database.max_open_orgs", "Most organization databases held open at once; the least recently used is closed first.",
		func(c *Config) *int { return &c.Database.MaxOpenOrgs }, 1, 100000),
	durationSetting("database.org_idle_timeout", "duration > 0",
		"An organization database unused this long is closed.",
		func(c *Config) *time.Duration { return &c.Database.OrgIdleTimeout }, positive),
	intSetting("database.max_conns_per_org", "Most connections to one organization database.",
		func(c *Config) *int { return &c.Database.MaxConnsPerOrg }, 1, 1000),
	durationSetting("database.busy_timeout", "duration > 0",
		"How long SQLite waits for a lock before failing.",
		func(c *Config) *time.Duration { return &c.Database.BusyTimeout }, positive),

	durationSetting("http.read_header_timeout", "duration > 0, at most http.read_timeout",
		"Time allowed to read request headers.",
		func(c *Config) *time.Duration { return &c.HTTP.ReadHeaderTimeout }, checkReadHeaderTimeout),
	durationSetting("http.read_timeout", "duration > 0",
		"Time allowed to read a whole request.",
		func(c *Config) *time.Duration { return &c.HTTP.ReadTimeout }, positive),
	durationSetting("http.write_timeout", "duration > 0",
		"Time allowed to write a response.",
		func(c *Config) *time.Duration { return &c.HTTP.WriteTimeout }, positive),
	durationSetting("http.idle_timeout", "duration > 0",
		"How long an idle keep-alive connection stays open.",
		func(c *Config) *time.Duration { return &c.HTTP.IdleTimeout }, positive),
	durationSetting("http.shutdown_timeout", "duration > 0",
		"How long a graceful shutdown waits for requests in flight.",
		func(c *Config) *time.Duration { return &c.HTTP.ShutdownTimeout }, positive),
	intSetting("http.max_header_bytes", "Largest request header accepted, in bytes.",
		func(c *Config) *int { return &c.HTTP.MaxHeaderBytes }, 1024, 1<<20),

	enumSetting("log.level", "Least severe log level written.",
		func(c *Config) *string { return &c.Log.Level }, "debug", "info", "warn", "error"),

	enumSetting("keys.provider", "Where the key-encryption key lives: local (a key file DATA/keys/kek.json, mode 0600), vault (HashiCorp Vault or OpenBao transit), awskms or gcpkms.",
		func(c *Config) *string { return &c.Keys.Provider }, KEKLocal, KEKVault, KEKAWSKMS, KEKGCPKMS),
	intSetting("keys.cache_size", "Most unwrapped organization keysets kept in memory.",
		func(c *Config) *int { return &c.Keys.CacheSize }, 1, 1000000),
	durationSetting("keys.cache_ttl", "duration > 0",
		"How long an unwrapped organization keyset stays in memory before it is unwrapped again.",
		func(c *Config) *time.Duration { return &c.Keys.CacheTTL }, positive),
	textSetting("keys.vault_address", "https URL (http only to a loopback host); required with keys.provider vault",
		"Address of the Vault or OpenBao server whose transit engine holds the KEK.",
		func(c *Config) *string { return &c.Keys.VaultAddress }, checkVaultAddress),
	secretTextSetting("keys.vault_token", "token; required with keys.provider vault",
		"Vault token allowed to encrypt and decrypt with keys.vault_key_path. Secret: masked whenever printed.",
		func(c *Config) *string { return &c.Keys.VaultToken }, requiredFor(KEKVault, "a Vault token")),
	textSetting("keys.vault_key_path", "transit/keys/NAME; required with keys.provider vault",
		"The transit key that wraps organization keys.",
		func(c *Config) *string { return &c.Keys.VaultKeyPath }, checkVaultKeyPath),
	textSetting("keys.vault_ca_cert_file", "path or empty",
		"PEM CA certificate that signs the Vault server's certificate, if not a public CA.",
		func(c *Config) *string { return &c.Keys.VaultCACertFile }, func(*Config, string) error { return nil }),
	textSetting("keys.kms_key_uri", "aws-kms://arn:aws:kms:... with awskms, gcp-kms://projects/... with gcpkms",
		"The cloud KMS key that wraps organization keys.",
		func(c *Config) *string { return &c.Keys.KMSKeyURI }, checkKMSKeyURI),
	textSetting("keys.kms_credentials_file", "path or empty (the SDK's default credentials)",
		"Credentials file for awskms or gcpkms.",
		func(c *Config) *string { return &c.Keys.KMSCredentialsFile }, func(*Config, string) error { return nil }),
	textSetting("keys.kms_endpoint", "https URL (http only to a loopback host) or empty (the provider's public endpoint)",
		"Endpoint of the cloud KMS API, for a regional or private endpoint or a local KMS emulator.",
		func(c *Config) *string { return &c.Keys.KMSEndpoint }, checkKMSEndpoint),

	durationSetting("audit.checkpoint_interval", "duration > 0",
		"How often a server signs the heads of the audit logs it wrote to (a checkpoint in the control database, which detects a truncated or replaced org database).",
		func(c *Config) *time.Duration { return &c.Audit.CheckpointInterval }, positive),
	intSetting("audit.retention_days", "How many days audit events are kept before the retention job removes them (after a signed checkpoint).",
		func(c *Config) *int { return &c.Audit.RetentionDays }, 1, 36500),
	durationSetting("audit.retention_interval", "duration > 0",
		"How often a server runs the retention jobs: audit events past their log's retention, and records past their collection's retention_days.",
		func(c *Config) *time.Duration { return &c.Audit.RetentionInterval }, positive),

	textSetting("public_url", "https URL or empty (https://LISTEN)",
		"How clients reach the public listener: the start of links in e-mails and the issuer of access tokens.",
		func(c *Config) *string { return &c.PublicURL }, checkPublicURL),
	durationSetting("auth.access_token_ttl", "duration from 1m to 1h",
		"Lifetime of an access token.",
		func(c *Config) *time.Duration { return &c.Auth.AccessTokenTTL }, between(time.Minute, time.Hour)),
	intSetting("auth.argon2_memory_kib", "Memory of one argon2id password hash, in KiB (OWASP: 19456).",
		func(c *Config) *int { return &c.Auth.Argon2MemoryKiB }, 8192, 1<<20),
	intSetting("auth.argon2_time", "Passes of one argon2id password hash (OWASP: 2).",
		func(c *Config) *int { return &c.Auth.Argon2Time }, 1, 20),
	intSetting("auth.argon2_threads", "Threads of one argon2id password hash (OWASP: 1).",
		func(c *Config) *int { return &c.Auth.Argon2Threads }, 1, 16),
	intSetting("auth.hash_queue", "Password hashes that may wait for a free worker (one per core); past it, logins get a 503 (after auth.hash_refusal_pause) instead of queueing.",
		func(c *Config) *int { return &c.Auth.HashQueue }, 0, 10000),
	durationSetting("auth.hash_refusal_pause", "duration from 0 to 1s",
		"How long a login refused because every hash worker and queue place is taken waits before its 503: a client that retries at once then costs little CPU (0: answer at once).",
		func(c *Config) *time.Duration { return &c.Auth.HashRefusalPause }, between(0, time.Second)),
	textSetting("mail.smtp_host", "host name or empty (mail is written to DATA/mail/outbox)",
		"SMTP relay that sends verification, reset and lock notices.",
		func(c *Config) *string { return &c.Mail.SMTPHost }, func(*Config, string) error { return nil }),
	intSetting("mail.smtp_port", "SMTP relay port.",
		func(c *Config) *int { return &c.Mail.SMTPPort }, 1, 65535),
	textSetting("mail.smtp_username", "user name or empty (no AUTH)",
		"SMTP user name.",
		func(c *Config) *string { return &c.Mail.SMTPUsername }, func(*Config, string) error { return nil }),
	secretTextSetting("mail.smtp_password", "password or empty",
		"SMTP password. Secret: masked whenever printed.",
		func(c *Config) *string { return &c.Mail.SMTPPassword }, func(*Config, string) error { return nil }),
	enumSetting("mail.smtp_tls", "How the SMTP connection is encrypted: starttls (required), tls (implicit, port 465) or none (only to a loopback relay).",
		func(c *Config) *string { return &c.Mail.SMTPTLS }, "starttls", "tls", "none"),
	textSetting("mail.from", "address, e.g. Bulwark <no-reply@example.com>",
		"Sender of Bulwark's e-mails.",
		func(c *Config) *string { return &c.Mail.From }, func(*Config, string) error { return nil }),

	boolSetting("allow_insecure_http", "Allow plain HTTP (tls.mode off) on non-loopback listen or ops_listen addresses.",
		func(c *Config) *bool { return &c.AllowInsecureHTTP }),
	boolSetting("allow_insecure_ops_allowlist", "Allow an empty ops_allowlist, one that matches every address, or public networks in it.",
		func(c *Config) *bool { return &c.AllowInsecureOpsAllowlist }),
	boolSetting("allow_insecure_database_tls", "Allow database.url to reach a non-loopback host without TLS (no sslmode, or disable, allow, prefer).",
		func(c *Config) *bool { return &c.AllowInsecureDatabaseTLS }),
}

// withFlag records the command-line flag that also sets s.
func (s setting) withFlag(name string) setting {
	s.flag = name
	return s
}

// textSetting is a free-form string checked by check.
func textSetting(key, allowed, desc string, field func(*Config) *string, check func(*Config, string) error) setting {
	return setting{
		key: key, allowed: allowed, desc: desc,
		parse: func(c *Config, vals []string) error {
			if err := plainText(vals[0]); err != nil {
				return err
			}
			*field(c) = vals[0]
			return nil
		},
		show:     func(c *Config) any { return *field(c) },
		validate: func(c *Config) error { return check(c, *field(c)) },
	}
}

// enumSetting is a string that must be one of values.
func enumSetting(key, desc string, field func(*Config) *string, values ...string) setting {
	allowed := strings.Join(values, ", ")
	return textSetting(key, allowed, desc, field, func(_ *Config, v string) error {
		for _, ok := range values {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, allowed)
	})
}

// secretURLSetting is database.url: checked without ever echoing its value,
// printed with the password masked.
func secretURLSetting() setting {
	s := textSetting("database.url", "postgres:// URL; required with database.driver postgres, refused with sqlite; sslmode=verify-full (or require) unless the host is loopback or allow_insecure_database_tls",
		"PostgreSQL control database, e.g. postgres://bulwark:PASSWORD@db:5432/bulwark?sslmode=verify-full. Secret: the password is masked whenever it is printed.",
		func(c *Config) *string { return &c.Database.URL }, checkDatabaseURL)
	s.secret = true
	s.mask = maskDatabaseURL
	return s
}

// secretTextSetting is a string that is never printed nor echoed in errors.
func secretTextSetting(key, allowed, desc string, field func(*Config) *string, check func(*Config, string) error) setting {
	s := textSetting(key, allowed, desc, field, check)
	s.secret = true
	return s
}

// durationSetting is a Go duration checked by check.
func durationSetting(key, allowed, desc string, field func(*Config) *time.Duration, check func(*Config, time.Duration) error) setting {
	return setting{
		key: key, allowed: allowed + "; " + durationSyntax, desc: desc,
		parse: func(c *Config, vals []string) error {
			d, err := time.ParseDuration(strings.TrimSpace(vals[0]))
			if err != nil {
				return fmt.Errorf("%q is not a duration; use %s", vals[0], durationSyntax)
			}
			*field(c) = d
			return nil
		},
		show:     func(c *Config) any { return formatDuration(*field(c)) },
		validate: func(c *Config) error { return check(c, *field(c)) },
	}
}

// intSetting is a whole number in min..max.
func intSetting(key, desc string, field func(*Config) *int, lo, hi int) setting {
	return setting{
		key: key, allowed: fmt.Sprintf("%d..%d", lo, hi), desc: desc,
		parse: func(c *Config, vals []string) error {
			n, err := strconv.Atoi(strings.TrimSpace(vals[0]))
			if err != nil {
				return fmt.Errorf("%q is not a whole number; allowed %d..%d", vals[0], lo, hi)
			}
			*field(c) = n
			return nil
		},
		show: func(c *Config) any { return *field(c) },
		validate: func(c *Config) error {
			if n := *field(c); n < lo || n > hi {
				return fmt.Errorf("%d is out of range; allowed %d..%d", n, lo, hi)
			}
			return nil
		},
	}
}

// boolSetting is true or false.
func boolSetting(key, desc string, field func(*Config) *bool) setting {
	return setting{
		key: key, allowed: "true, false", desc: desc,
		parse: func(c *Config, vals []string) error {
			switch strings.ToLower(strings.TrimSpace(vals[0])) {
			case "true":
				*field(c) = true
			case "false":
				*field(c) = false
			default:
				return fmt.Errorf("%q is not true or false", vals[0])
			}
			return nil
		},
		show: func(c *Config) any { return *field(c) },
	}
}

// prefixListSetting is a list of CIDR prefixes checked by check.
func prefixListSetting(key, allowed, desc string, field func(*Config) *[]netip.Prefix, check func(*Config, []netip.Prefix) error) setting {
	return setting{
		key: key, allowed: allowed, desc: desc, list: true,
		parse: func(c *Config, vals []string) error {
			var out []netip.Prefix // nil when empty, like an unset list
			for _, v := range vals {
				p, err := netip.ParsePrefix(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8 or fd00::/8", v)
				}
				out = append(out, p)
			}
			*field(c) = out
			return nil
		},
		show: func(c *Config) any {
			out := make([]string, 0, len(*field(c)))
			for _, p := range *field(c) {
				out = append(out, p.String())
			}
			return out
		},
		validate: func(c *Config) error { return check(c, *field(c)) },
	}
}

// textListSetting is a list of strings checked by check.
func textListSetting(key, allowed, desc string, field func(*Config) *[]string, check func(*Config, []string) error) setting {
	return setting{
		key: key, allowed: allowed, desc: desc, list: true,
		parse: func(c *Config, vals []string) error {
			var out []string // nil when empty, like an unset list
			for _, v := range vals {
				if err := plainText(v); err != nil {
					return err
				}
				out = append(out, strings.TrimSpace(v))
			}
			*field(c) = out
			return nil
		},
		show:     func(c *Config) any { return append([]string{}, *field(c)...) },
		validate: func(c *Config) error { return check(c, *field(c)) },
	}
}

// plainText refuses text that could not have been meant: invalid UTF-8 or
// control characters. The value itself is not echoed (it may be secret).
func plainText(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("value is not valid UTF-8")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return errors.New("value contains a control character")
		}
	}
	return nil
}

// formatDuration prints d in the largest whole unit, so that it reads well
// and time.ParseDuration reads it back unchanged.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return d.String()
	}
}
