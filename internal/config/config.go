package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Config is Bulwark's effective configuration. The zero value is not usable:
// start from Default or Load, which always return a configuration that
// passes Validate.
type Config struct {
	DataDir      string         // key data_dir, flag --data
	Listen       string         // key listen, flag --listen
	OpsListen    string         // key ops_listen, flag --ops-listen
	OpsAllowlist []netip.Prefix // key ops_allowlist
	TLS          TLS
	Database     Database
	HTTP         HTTP
	Log          Log
	Keys         Keyring
	Audit        Audit
	Auth         Auth
	Mail         Mail
	PublicURL    string // key public_url: how clients reach the public listener (links in e-mails, token issuer)

	AllowInsecureHTTP         bool // key allow_insecure_http
	AllowInsecureOpsAllowlist bool // key allow_insecure_ops_allowlist
	AllowInsecureDatabaseTLS  bool // key allow_insecure_database_tls
}

// TLS holds the tls.* keys: how the public and ops listeners get certificates.
type TLS struct {
	Mode             string        // tls.mode: local, files, acme or off
	CertFile         string        // tls.cert_file (required with files)
	KeyFile          string        // tls.key_file (required with files)
	ACMEDomains      []string      // tls.acme_domains (required with acme)
	ACMEEmail        string        // tls.acme_email
	ACMEDirectoryURL string        // tls.acme_directory_url
	HSTSMaxAge       time.Duration // tls.hsts_max_age (0 only with mode off)
}

// Database holds the database.* keys.
type Database struct {
	Driver         string        // database.driver: sqlite or postgres
	URL            string        // database.url: PostgreSQL control DB URL; secret
	MaxOpenOrgs    int           // database.max_open_orgs
	OrgIdleTimeout time.Duration // database.org_idle_timeout
	MaxConnsPerOrg int           // database.max_conns_per_org
	BusyTimeout    time.Duration // database.busy_timeout (SQLite)
}

// HTTP holds the http.* keys: server timeouts and limits.
type HTTP struct {
	ReadHeaderTimeout time.Duration // http.read_header_timeout
	ReadTimeout       time.Duration // http.read_timeout
	WriteTimeout      time.Duration // http.write_timeout
	IdleTimeout       time.Duration // http.idle_timeout
	ShutdownTimeout   time.Duration // http.shutdown_timeout
	MaxHeaderBytes    int           // http.max_header_bytes
}

// Log holds the log.* keys.
type Log struct {
	Level string // log.level: debug, info, warn or error
}

// Key providers: where the key-encryption key (KEK) lives.
const (
	KEKLocal  = "local"
	KEKVault  = "vault"
	KEKAWSKMS = "awskms"
	KEKGCPKMS = "gcpkms"
)

// Keyring configures the keyring: the KEK provider and the cache of unwrapped
// organization keys.
// Auth holds the auth.* keys.
type Auth struct {
	AccessTokenTTL   time.Duration // auth.access_token_ttl
	Argon2MemoryKiB  int           // auth.argon2_memory_kib
	Argon2Time       int           // auth.argon2_time
	Argon2Threads    int           // auth.argon2_threads
	HashQueue        int           // auth.hash_queue: password hashes that may wait for a worker
	HashRefusalPause time.Duration // auth.hash_refusal_pause: wait before a refused login's 503
}

// Mail holds the mail.* keys. Without an SMTP host, mail is written to
// DATA/mail/outbox as .eml files.
type Mail struct {
	SMTPHost     string // mail.smtp_host
	SMTPPort     int    // mail.smtp_port
	SMTPUsername string // mail.smtp_username
	SMTPPassword string // mail.smtp_password: SECRET
	SMTPTLS      string // mail.smtp_tls: starttls, tls or none (loopback only)
	From         string // mail.from
}

// Audit configures the audit logs.
type Audit struct {
	CheckpointInterval time.Duration // audit.checkpoint_interval
	RetentionDays      int           // audit.retention_days: default for every org
	RetentionInterval  time.Duration // audit.retention_interval
}

type Keyring struct {
	Provider  string        // keys.provider: local (DATA/keys/kek.json), vault, awskms or gcpkms
	CacheSize int           // keys.cache_size: most unwrapped org keysets held in memory
	CacheTTL  time.Duration // keys.cache_ttl: how long an unwrapped keyset stays cached

	VaultAddress    string // keys.vault_address: https URL of Vault / OpenBao
	VaultToken      string // keys.vault_token: SECRET
	VaultKeyPath    string // keys.vault_key_path: transit/keys/NAME
	VaultCACertFile string // keys.vault_ca_cert_file

	KMSKeyURI          string // keys.kms_key_uri: aws-kms://arn:... or gcp-kms://projects/...
	KMSCredentialsFile string // keys.kms_credentials_file
	KMSEndpoint        string // keys.kms_endpoint: override of the KMS API endpoint
}

// The TLS modes.
const (
	TLSLocal = "local"
	TLSFiles = "files"
	TLSACME  = "acme"
	TLSOff   = "off"
)

// The database drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// letsEncryptProduction is the default ACME directory.
const letsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"

// defaultFile is read when Load is given no path and BULWARK_CONFIG is unset.
const defaultFile = "bulwark.yaml"

// maxFileSize bounds how much of a configuration file Load reads.
const maxFileSize = 1 << 20

// Default returns the secure defaults: loopback listeners, TLS from a local
// CA, HSTS for two years, an ops allowlist of loopback only, SQLite under
// ./data. Each call returns a fresh value the caller may modify.
func Default() Config {
	return Config{
		Keys:  Keyring{Provider: KEKLocal, CacheSize: 10000, CacheTTL: 15 * time.Minute},
		Audit: Audit{CheckpointInterval: time.Minute, RetentionDays: 365, RetentionInterval: 6 * time.Hour},
		Auth: Auth{AccessTokenTTL: 10 * time.Minute, Argon2MemoryKiB: 19456, Argon2Time: 2, Argon2Threads: 1, HashQueue: 8,
			HashRefusalPause: 250 * time.Millisecond},
		Mail:      Mail{SMTPPort: 587, SMTPTLS: "starttls", From: "Bulwark <no-reply@localhost>"},
		DataDir:   "data",
		Listen:    "127.0.0.1:8443",
		OpsListen: "127.0.0.1:9443",
		OpsAllowlist: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("::1/128"),
		},
		TLS: TLS{
			Mode:             TLSLocal,
			ACMEDirectoryURL: letsEncryptProduction,
			HSTSMaxAge:       2 * 365 * 24 * time.Hour,
		},
		Database: Database{
			Driver:         DriverSQLite,
			MaxOpenOrgs:    1000,
			OrgIdleTimeout: 10 * time.Minute,
			MaxConnsPerOrg: 4,
			BusyTimeout:    5 * time.Second,
		},
		HTTP: HTTP{
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   25 * time.Second,
			MaxHeaderBytes:    32 << 10,
		},
		Log: Log{Level: "info"},
	}
}

// Load builds the effective configuration: the defaults, then the YAML file,
// then BULWARK_* environment variables (read through getenv; nil means none),
// then flags, a map from key to value such as {"data_dir": "/srv/bulwark"}.
// Lists in environment variables and flags are comma-separated.
//
// path names the file; "" means the file named by BULWARK_CONFIG, or else
// ./bulwark.yaml if it exists, or else no file. A file that was named must
// exist. The result is validated before it is returned.
//
// Every error is one line that starts with "config: " and names the key,
// where its value came from and what is allowed. Secret values are never
// part of an error.
func Load(path string, getenv func(string) string, flags map[string]string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	name, data, err := readFile(path, getenv)
	if err != nil {
		return Config{}, err
	}
	return load(name, data, getenv, flags)
}

// load is Load once the file, if any, has been read; name is "" for no file.
func load(name string, data []byte, getenv func(string) string, flags map[string]string) (Config, error) {
	c := Default()
	from := make(map[string]string) // key → where its value came from
	if name != "" {
		if err := applyFile(&c, name, data, from); err != nil {
			return Config{}, err
		}
	}
	for i := range table {
		s := &table[i]
		v := getenv(s.env())
		if v == "" {
			continue
		}
		if err := s.set(&c, v); err != nil {
			return Config{}, keyError(s.key, s.env(), err)
		}
		from[s.key] = s.env()
	}
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		s := lookup(k)
		if s == nil {
			return Config{}, lineError("unknown key %q given as a flag (%sknown keys: %s)",
				k, suggestion(k), strings.Join(allKeys(), ", "))
		}
		if err := s.set(&c, flags[k]); err != nil {
			return Config{}, keyError(s.key, s.flagName(), err)
		}
		from[s.key] = s.flagName()
	}
	if key, err := c.problem(); err != nil {
		return Config{}, keyError(key, from[key], err)
	}
	return c, nil
}

// readFile finds and reads the configuration file. It returns name "" when
// there is none to read.
func readFile(path string, getenv func(string) string) (name string, data []byte, err error) {
	given := "--config"
	if path == "" {
		path, given = getenv("BULWARK_CONFIG"), "BULWARK_CONFIG"
	}
	if path == "" {
		if _, err := os.Stat(defaultFile); errors.Is(err, fs.ErrNotExist) {
			return "", nil, nil
		}
		path, given = defaultFile, "the default location"
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, lineError("config file %s (from %s) does not exist", path, given)
	}
	if err != nil {
		return "", nil, lineError("config file %s (from %s) cannot be read: %v", path, given, err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", nil, lineError("config file %s (from %s) cannot be read: %v", path, given, err)
	}
	if len(data) > maxFileSize {
		return "", nil, lineError("config file %s (from %s) is larger than %d bytes", path, given, maxFileSize)
	}
	return path, data, nil
}

// Validate reports the first problem with c, or nil. It refuses insecure
// settings unless the matching allow_insecure_* key is true, and it does no
// I/O: files named by the configuration are checked by their users.
func (c Config) Validate() error {
	if key, err := c.problem(); err != nil {
		return keyError(key, "", err)
	}
	return nil
}

// problem returns the first key whose value is wrong and what is wrong with it.
func (c *Config) problem() (string, error) {
	for i := range table {
		if err := table[i].check(c); err != nil {
			return table[i].key, err
		}
	}
	return "", nil
}

// keyError formats a problem with one key as a one-line error; from says
// where the value came from ("" for defaults or values set in code).
func keyError(key, from string, err error) error {
	if from != "" {
		return lineError("%s (from %s): %v", key, from, err)
	}
	return lineError("%s: %v", key, err)
}

// lineError returns a "config: ..." error that is guaranteed to be one line.
func lineError(format string, args ...any) error {
	msg := strings.Map(func(r rune) rune {
		if r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
			return ' '
		}
		return r
	}, fmt.Sprintf(format, args...))
	return errors.New("config: " + msg)
}
