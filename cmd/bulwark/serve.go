package main

import (
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
