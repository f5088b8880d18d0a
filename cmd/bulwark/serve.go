package main

import (
	"bulwark/internal/audit"
	"bulwark/internal/org"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"bulwark/internal/config"
	"bulwark/internal/edge"
	"bulwark/internal/httpapi"
	"bulwark/internal/keys"
	"bulwark/internal/observe"
)

type serveCommand struct{ env *env }

func (c *serveCommand) Usage() string {
	return `Serve the public API and the ops listener until SIGTERM or SIGINT.

Usage:
  bulwark serve [--config FILE] [--data DIR] [--listen HOST:PORT] [--ops-listen HOST:PORT]

Examples:
  bulwark serve
  bulwark serve --data /var/lib/bulwark --listen 0.0.0.0:8443

On SIGTERM readiness turns false, requests in flight finish (bounded by
http.shutdown_timeout) and the process exits 0.`
}

func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cf := addConfigFlags(fs, true)
	if help, err := parseFlags(fs, c, args, c.env.stdout); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(firstUsageLine(c.Usage()), "unexpected argument %q", fs.Arg(0))
	}
	cfg, err := cf.load(fs, c.env)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, c.env)
}

// useFlushInterval is how often serve writes key use counts.
const useFlushInterval = 30 * time.Second

// reencryptInterval is how often serve looks for unfinished re-encryptions.
const reencryptInterval = 30 * time.Second

// serve runs both listeners until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg config.Config, e *env) error {
	a, err := openApp(ctx, cfg, e.stderr)
	if err != nil {
		return err
	}
	defer a.Close()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go a.orgs.Watch(watchCtx, time.Second)

	// Key use counts go to the control database every 30 s, and once more
	// when the app closes, so that bulwark keys status in another process
	// shows them.
	flushCtx, stopFlush := context.WithCancel(ctx)
	defer stopFlush()
	flushDone := make(chan struct{})
	go func() {
		defer close(flushDone)
		tick := time.NewTicker(useFlushInterval)
		defer tick.Stop()
		for {
			select {
			case <-flushCtx.Done():
				return
			case <-tick.C:
				if err := a.ring.FlushUse(flushCtx); err != nil && flushCtx.Err() == nil {
					a.logger.Warn("key use counts not saved; will retry", "error", err.Error())
				}
			}
		}
	}()

	// Re-encryptions after key rotations (recorded by bulwark keys rotate,
	// or left over by a run that stopped) are finished here in the
	// background; a lease keeps two nodes off the same org.
	reencDone := make(chan struct{})
	go func() {
		defer close(reencDone)
		tick := time.NewTicker(reencryptInterval)
		defer tick.Stop()
		for {
			err := a.reenc.RunPending(flushCtx, func(p keys.Progress) {
				if p.Finished {
					a.logger.Info("re-encryption finished", "org_id", p.OrgID, "data_key_version", p.Target,
						"reencrypted", p.Rewrote, "not_opened", p.Failed)
				}
			})
			if err != nil && flushCtx.Err() == nil {
				a.logger.Warn("re-encryption stopped; will retry", "error", err.Error())
			}
			select {
			case <-flushCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	// Audit logs: on PostgreSQL the events committed to their inboxes are
	// chained when a log has a segment's worth or has waited
	// audit.ChainMaxWait (looked at every audit.ChainInterval), and all of
	// them when the server stops; their heads are signed every
	// audit.checkpoint_interval, and events older than audit.retention_days
	// are removed every audit.retention_interval (after a signed retention
	// checkpoint).
	auditDone := make(chan struct{})
	go func() {
		defer close(auditDone)
		chain := time.NewTicker(audit.ChainInterval)
		defer chain.Stop()
		cp := time.NewTicker(cfg.Audit.CheckpointInterval)
		defer cp.Stop()
		ret := time.NewTimer(time.Minute) // the first run soon after start
		defer ret.Stop()
		for {
			select {
			case <-flushCtx.Done():
				// Chain and sign what was written since the last tick before
				// stopping.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(flushCtx), 10*time.Second)
				if err := a.audit.ChainPending(ctx); err != nil {
					a.logger.Warn("audit events not all chained", "error", err.Error())
				}
				if err := a.audit.CheckpointDirty(ctx); err != nil {
					a.logger.Warn("audit checkpoints not all signed", "error", err.Error())
				}
				cancel()
				return
			case <-chain.C:
				if err := a.audit.ChainDue(flushCtx); err != nil && flushCtx.Err() == nil {
					a.logger.Warn("audit events not all chained; will retry", "error", err.Error())
				}
			case <-cp.C:
				if err := a.audit.CheckpointDirty(flushCtx); err != nil && flushCtx.Err() == nil {
					a.logger.Warn("audit checkpoints not all signed; will retry", "error", err.Error())
				}
			case <-ret.C:
				a.pruneAudit(flushCtx, time.Now())
				a.purgeRecords(flushCtx, time.Now())
				ret.Reset(cfg.Audit.RetentionInterval)
			}
		}
	}()

	var tlsConf *tls.Config
	var caPath string
	if cfg.TLS.Mode != "off" {
		res, err := edge.ServerTLS(ctx, edge.TLSOptions{
			Mode:             cfg.TLS.Mode,
			CertFile:         cfg.TLS.CertFile,
			KeyFile:          cfg.TLS.KeyFile,
			ACMEDomains:      cfg.TLS.ACMEDomains,
			ACMEEmail:        cfg.TLS.ACMEEmail,
			ACMEDirectoryURL: cfg.TLS.ACMEDirectoryURL,
		}, cfg.DataDir, a.logger)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConf, caPath = res.Config, res.CAPath
	}

	health := observe.NewHealth()
	metrics := a.metrics
	deps := httpapi.Deps{
		Logger:       a.logger,
		Metrics:      metrics,
		Health:       health,
		HSTSMaxAge:   cfg.TLS.HSTSMaxAge,
		OpsAllowlist: cfg.OpsAllowlist,
		IPKey:        a.ipKey,
		Orgs:         a.orgs,
		Audit:        a.audit,
		Identity:     a.ids,
		Tokens:       a.tokens,
		OpsTokens:    a.opsToks,
		Support:      a.support,
		Records:      a.records,
	}
	if tlsConf == nil {
		deps.HSTSMaxAge = 0
	}
	public := newHTTPServer(cfg, httpapi.NewServer(deps), tlsConf, a.logger)
	ops := newHTTPServer(cfg, httpapi.NewOpsServer(deps), tlsConf, a.logger)

	publicLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	opsLn, err := net.Listen("tcp", cfg.OpsListen)
	if err != nil {
		publicLn.Close()
		return fmt.Errorf("ops listen %s: %w", cfg.OpsListen, err)
	}

	errc := make(chan error, 2)
	start := func(srv *http.Server, ln net.Listener) {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}
	go start(public, publicLn)
	go start(ops, opsLn)

	scheme := "https"
	if tlsConf == nil {
		scheme = "http"
	}
	publicURL := listenURL(scheme, publicLn.Addr())
	fmt.Fprintf(e.stdout, "bulwark %s serving\n  public: %s\n  ops:    %s\n", version, publicURL, listenURL(scheme, opsLn.Addr()))
	if caPath != "" {
		fmt.Fprintf(e.stdout, "  local CA: %s\n  try: curl --cacert %s %s/readyz\n", caPath, caPath, publicURL)
	}
	a.logger.Info("serving", "public", publicLn.Addr().String(), "ops", opsLn.Addr().String(), "tls", cfg.TLS.Mode)
	health.SetReady(true)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// Readiness turns false first so that load balancers stop sending new
	// work, then requests in flight get up to shutdown_timeout to finish.
	health.SetReady(false)
	a.logger.Info("shutting down", "timeout", cfg.HTTP.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	shutdownErr := errors.Join(public.Shutdown(sctx), ops.Shutdown(sctx))
	// The last counts are written by a.Close, once the flusher has stopped.
	stopFlush()
	<-flushDone
	<-reencDone
	<-auditDone
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	a.logger.Info("stopped")
	return nil
}

func newHTTPServer(cfg config.Config, h http.Handler, tlsConf *tls.Config, logger *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		// net/http's own messages (TLS handshake errors name the client's
		// address) go through the redacting logger too.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
	}
	if tlsConf != nil {
		srv.TLSConfig = tlsConf.Clone()
	}
	return srv
}

// listenURL names a listener the way a person would type it: loopback as
// localhost, so that the local certificate matches.
func listenURL(scheme string, addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return scheme + "://" + addr.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsLoopback() || tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, fmt.Sprint(tcp.Port)))
}

// purgeRecords removes, from every live org, the records older than
// their collection's retention_days (package records audits each batch).
func (a *app) purgeRecords(ctx context.Context, now time.Time) {
	orgs, err := a.orgs.List(ctx)
	if err != nil {
		a.logger.Warn("record retention: orgs not listed", "error", err.Error())
		return
	}
	for _, o := range orgs {
		if o.Status != org.Active || ctx.Err() != nil {
			continue
		}
		n, err := a.records.Purge(ctx, o.ID, now)
		if err != nil {
			a.logger.Error("record retention: org not purged; will retry", "org_id", o.ID, "purged", n, "error", err.Error())
		} else if n > 0 {
			a.logger.Info("record retention: records removed", "org_id", o.ID, "purged", n)
		}
	}
}

// pruneAudit removes old audit events: from the control-plane log those
// older than audit.retention_days, from every live org's log those older
// than the org's policy says (retention.audit_days, whose default is
// audit.retention_days).
func (a *app) pruneAudit(ctx context.Context, now time.Time) {
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	type job struct {
		log    string
		before time.Time
	}
	jobs := []job{{audit.ControlLog, days(a.cfg.Audit.RetentionDays)}}
	orgs, err := a.orgs.List(ctx)
	if err != nil {
		a.logger.Warn("audit retention: orgs not listed", "error", err.Error())
	}
	for _, o := range orgs {
		if o.Status != org.Active {
			continue
		}
		p, err := a.orgs.Policy(ctx, o.ID)
		if err != nil {
			a.logger.Error("audit retention: policy not read; log not pruned", "log", o.ID, "error", err.Error())
			continue
		}
		jobs = append(jobs, job{o.ID, days(p.Retention.AuditDays)})
	}
	for _, j := range jobs {
		id, before := j.log, j.before
		if ctx.Err() != nil {
			return
		}
		n, err := a.audit.Prune(ctx, id, before)
		switch {
		case err != nil:
			a.logger.Error("audit retention: log not pruned", "log", id, "error", err.Error())
		case n > 0:
			a.logger.Info("audit retention: events removed", "log", id, "removed", n)
		}
	}
}
