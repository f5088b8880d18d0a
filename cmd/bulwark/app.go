package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/config"
	"bulwark/internal/httpapi"
	"bulwark/internal/identity"
	"bulwark/internal/identity/password"
	"bulwark/internal/identity/token"
	"bulwark/internal/keys"
	"bulwark/internal/keys/kms"
	"bulwark/internal/mail"
	"bulwark/internal/observe"
	"bulwark/internal/org"
	"bulwark/internal/records"
	"bulwark/internal/store"
)

// flagKeys maps the stable command-line flags to configuration keys.
var flagKeys = map[string]string{
	"data":       "data_dir",
	"listen":     "listen",
	"ops-listen": "ops_listen",
}

// configFlags are the flags every command that reads the configuration has.
type configFlags struct {
	path string
}

func addConfigFlags(fs *flag.FlagSet, withListen bool) *configFlags {
	f := &configFlags{}
	fs.StringVar(&f.path, "config", "", "configuration file (default ./bulwark.yaml if present)")
	fs.String("data", "", "data directory (default ./data)")
	if withListen {
		fs.String("listen", "", "public listener HOST:PORT (default 127.0.0.1:8443)")
		fs.String("ops-listen", "", "ops listener HOST:PORT (default 127.0.0.1:9443)")
	}
	return f
}

// load returns the effective configuration: defaults, file, environment,
// then the flags that were set on the command line.
func (f *configFlags) load(fs *flag.FlagSet, e *env) (config.Config, error) {
	set := map[string]string{}
	fs.Visit(func(fl *flag.Flag) {
		if key, ok := flagKeys[fl.Name]; ok {
			set[key] = fl.Value.String()
		}
	})
	return config.Load(f.path, e.getenv, set)
}

// open loads the configuration as load does and opens the app on it,
// with logs to logOut.
func (f *configFlags) open(ctx context.Context, fs *flag.FlagSet, e *env, logOut io.Writer) (*app, error) {
	cfg, err := f.load(fs, e)
	if err != nil {
		return nil, err
	}
	return openAppWith(ctx, cfg, logOut, appOptions{})
}

// app is the storage side of Bulwark that commands share.
type app struct {
	cfg     config.Config
	logger  *slog.Logger
	ipKey   []byte
	metrics *observe.Metrics
	store   *store.Store
	ring    *keys.Ring
	reenc   *keys.Reencryptor
	orgs    *org.Service
	audit   *audit.Service
	keyEvts *audit.KeyEvents
	hashes  *password.Pool
	tokens  *token.Issuer
	opsToks *token.Issuer
	ids     *identity.Service
	support *authz.Support
	records *records.Service
}

// appOptions is what differs between the server's app and a command's.
type appOptions struct {
	// hashProcess runs password hashes in a hashing process of their own
	// (the server), rather than in this one (a command, which hashes
	// seldom if ever, and need not start a process for it).
	hashProcess bool
}

// openApp opens the server's app: openAppWith with the password hashes in
// a process of their own.
func openApp(ctx context.Context, cfg config.Config, logOut io.Writer) (*app, error) {
	return openAppWith(ctx, cfg, logOut, appOptions{hashProcess: true})
}

// openAppWith creates the data directory if needed, the logger and the
// store with every package's schema migrated on the control database.
func openAppWith(ctx context.Context, cfg config.Config, logOut io.Writer, opts appOptions) (*app, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	ipKey, err := observe.LoadOrCreateIPKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	logger := observe.NewLogger(logOut, level, ipKey)
	st, err := store.Open(ctx, store.Options{
		Driver:         store.Driver(cfg.Database.Driver),
		DataDir:        cfg.DataDir,
		URL:            cfg.Database.URL,
		MaxOpenOrgs:    cfg.Database.MaxOpenOrgs,
		IdleTimeout:    cfg.Database.OrgIdleTimeout,
		MaxConnsPerOrg: cfg.Database.MaxConnsPerOrg,
		BusyTimeout:    cfg.Database.BusyTimeout,
		Logger:         logger,
	}, schemas()...)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	a := &app{cfg: cfg, logger: logger, ipKey: ipKey, store: st, metrics: observe.NewMetrics(st.OpenOrgs)}
	kek, err := openKEK(ctx, cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	// Key events go to the log and, through a queue, to the control-plane
	// audit log.
	if a.keyEvts, err = audit.NewKeyEvents(logger, a.metrics.Registry()); err != nil {
		st.Close()
		return nil, err
	}
	a.ring, err = keys.NewRing(ctx, st, kek, keys.Options{
		CacheSize:  cfg.Keys.CacheSize,
		CacheTTL:   cfg.Keys.CacheTTL,
		Events:     keyEventSinks{keyEventLog{logger}, a.keyEvts},
		Registerer: a.metrics.Registry(),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	if a.audit, err = audit.New(st, a.ring, audit.Options{IPKey: ipKey, Registerer: a.metrics.Registry()}); err != nil {
		st.Close()
		return nil, err
	}
	go a.keyEvts.Run(a.audit)
	// Orgs come before accounts: password rules and break-glass notices
	// read the orgs a user belongs to.
	a.records = records.New(st, a.ring, a.audit)
	a.orgs = org.NewService(st, logger)
	a.orgs.UseAudit(a.audit)
	def := org.DefaultPolicy()
	def.Retention.AuditDays = cfg.Audit.RetentionDays
	if err := a.orgs.SetDefaultPolicy(def); err != nil {
		a.keyEvts.Close(time.Second)
		st.Close()
		return nil, err
	}
	// An org's keys are made in the transaction that creates it, and
	// destroyed (crypto-shredding) before its database is dropped.
	a.orgs.OnCreate(func(ctx context.Context, tx *store.Tx, o org.Org) error {
		return a.ring.CreateOrgKeys(ctx, tx, o.ID)
	})
	a.orgs.OnDelete(func(ctx context.Context, o org.Org) error {
		if err := a.ring.DestroyOrgKeys(ctx, o.ID); err != nil {
			return err
		}
		return a.audit.ForgetLog(ctx, o.ID)
	})
	// Every change of an org is in the control-plane audit log, written in
	// the change's own transaction.
	a.orgs.OnChange(func(ctx context.Context, tx *store.Tx, o org.Org, change string) error {
		_, err := a.audit.Append(ctx, tx, audit.ControlLog, audit.SourceFrom(ctx).Event(change,
			audit.Resource{Type: "org", ID: o.ID}, audit.Success, map[string]string{"slug": o.Slug, "status": string(o.Status)}))
		return err
	})
	if err := a.openIdentity(ctx, opts.hashProcess); err != nil {
		if a.hashes != nil {
			a.hashes.Close()
		}
		a.keyEvts.Close(time.Second)
		st.Close()
		return nil, err
	}
	if a.reenc, err = keys.NewReencryptor(a.ring, sealedColumns()); err != nil {
		a.keyEvts.Close(time.Second)
		a.hashes.Close()
		st.Close()
		return nil, err
	}
	return a, nil
}

// publicURL is how clients reach the public listener.
func publicURL(cfg config.Config) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	if cfg.TLS.Mode == config.TLSOff {
		return "http://" + cfg.Listen
	}
	return "https://" + cfg.Listen
}

// openIdentity sets up accounts: the platform keys that seal personal
// data, the password hashing pool, the access token issuer and the mail
// sender (SMTP, or .eml files in DATA/mail/outbox without one).
func (a *app) openIdentity(ctx context.Context, hashProcess bool) error {
	cfg := a.cfg
	if err := a.ring.EnsurePlatformKeys(ctx); err != nil {
		return fmt.Errorf("platform keys: %w", err)
	}
	var err error
	params := password.Params{MemoryKiB: uint32(cfg.Auth.Argon2MemoryKiB), Time: uint32(cfg.Auth.Argon2Time),
		Threads: uint8(cfg.Auth.Argon2Threads)}
	// The server's hashes run in a low-priority process of their own;
	// without one (another system, or the process cannot be started), and
	// a command's, in this one.
	var procErr error
	if hashProcess {
		a.hashes, procErr = password.NewProcessPool(0, cfg.Auth.HashQueue, params)
	}
	if a.hashes == nil {
		if a.hashes, err = password.NewPoolWithParams(0, cfg.Auth.HashQueue, params); err != nil {
			return fmt.Errorf("auth.argon2_*: %w", err)
		}
		if procErr != nil {
			a.logger.Warn("password hashes run in the server process", "reason", procErr.Error())
		}
	}
	a.hashes.SetRefusalPause(cfg.Auth.HashRefusalPause)
	a.tokens, err = token.NewIssuer(a.ring, token.Options{Issuer: publicURL(cfg), Audience: "bulwark", TTL: cfg.Auth.AccessTokenTTL})
	if err != nil {
		return err
	}
	// Operators' tokens have an audience of their own: the public listener
	// refuses them, the ops listener refuses the others.
	a.opsToks, err = token.NewIssuer(a.ring, token.Options{Issuer: publicURL(cfg), Audience: "bulwark-ops", TTL: cfg.Auth.AccessTokenTTL})
	if err != nil {
		return err
	}
	var sender mail.Sender
	if cfg.Mail.SMTPHost != "" {
		sender, err = mail.NewSMTP(mail.SMTPOptions{Host: cfg.Mail.SMTPHost, Port: cfg.Mail.SMTPPort, Username: cfg.Mail.SMTPUsername,
			Password: cfg.Mail.SMTPPassword, From: cfg.Mail.From, TLS: cfg.Mail.SMTPTLS})
	} else {
		sender, err = mail.NewDir(filepath.Join(cfg.DataDir, "mail", "outbox"), cfg.Mail.From)
	}
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	a.ids = identity.New(a.store, a.ring, a.audit, identity.Options{Passwords: a.hashes, Params: a.hashes.Params(),
		Tokens: a.tokens, OpsTokens: a.opsToks, Mail: sender, BaseURL: publicURL(cfg), Logger: a.logger, OrgRules: a.orgs.PasswordRules})
	a.support = authz.NewSupport(a.store, a.audit, nil)
	a.support.OnBreakGlass(httpapi.BreakGlassNotifier(a.orgs, a.ids))
	return nil
}

// openKEK opens the configured key-encryption key provider.
func openKEK(ctx context.Context, cfg config.Config) (keys.KEK, error) {
	switch cfg.Keys.Provider {
	case config.KEKLocal:
		return keys.OpenLocalKEK(cfg.DataDir)
	case config.KEKVault:
		k, err := kms.NewVault(ctx, kms.VaultOptions{
			Address:    cfg.Keys.VaultAddress,
			Token:      cfg.Keys.VaultToken,
			KeyPath:    cfg.Keys.VaultKeyPath,
			CACertFile: cfg.Keys.VaultCACertFile,
		})
		if err != nil {
			return nil, fmt.Errorf("keys.provider vault: %w", err)
		}
		return k, nil
	case config.KEKAWSKMS:
		k, err := kms.NewAWS(ctx, kms.AWSOptions{
			KeyURI:          cfg.Keys.KMSKeyURI,
			CredentialsFile: cfg.Keys.KMSCredentialsFile,
			Endpoint:        cfg.Keys.KMSEndpoint,
		})
		if err != nil {
			return nil, fmt.Errorf("keys.provider awskms: %w", err)
		}
		return k, nil
	case config.KEKGCPKMS:
		k, err := kms.NewGCP(ctx, kms.GCPOptions{
			KeyURI:          cfg.Keys.KMSKeyURI,
			CredentialsFile: cfg.Keys.KMSCredentialsFile,
			Endpoint:        cfg.Keys.KMSEndpoint,
		})
		if err != nil {
			return nil, fmt.Errorf("keys.provider gcpkms: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("keys.provider %q is unknown", cfg.Keys.Provider)
	}
}

// keyEventLog writes key events to the log, beside the audit log. Events
// carry ids, purposes and versions only, never key material.
type keyEventLog struct{ logger *slog.Logger }

// keyEventSinks passes each key event to every sink.
type keyEventSinks []keys.EventSink

func (s keyEventSinks) KeyEvent(ctx context.Context, e keys.Event) {
	for _, sink := range s {
		sink.KeyEvent(ctx, e)
	}
}

func (l keyEventLog) KeyEvent(ctx context.Context, e keys.Event) {
	attrs := []slog.Attr{slog.String("action", e.Action)}
	if e.OrgID != "" {
		attrs = append(attrs, slog.String("org_id", e.OrgID))
	}
	for k, v := range e.Details {
		attrs = append(attrs, slog.String(k, v))
	}
	l.logger.LogAttrs(ctx, slog.LevelInfo, "key event", attrs...)
}

// sealedColumns lists every column of sealed values in the org
// databases, for re-encryption after a key rotation.
func sealedColumns() []keys.Sealed { return records.Sealed() }

// schemas lists every package's tables, in the order they are migrated.
func schemas() []store.Schema {
	return []store.Schema{org.ControlSchema(), org.OrgSchema(), keys.ControlSchema(), keys.OrgSchema(),
		audit.ControlSchema(), audit.OrgSchema(), identity.ControlSchema(), authz.ControlSchema(), records.OrgSchema()}
}

// Close writes the key use counted by this process to the control
// database (a failure is logged: it loses counts, not data) and the key
// events still queued to the audit log, then closes the store.
func (a *app) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.ring.FlushUse(ctx); err != nil {
		a.logger.Error("key use counts not saved", "error", err.Error())
	}
	a.keyEvts.Close(10 * time.Second)
	a.hashes.Close()
	return a.store.Close()
}
