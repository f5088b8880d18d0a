package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// The TLS modes ServerTLS knows.
const (
	ModeLocal = "local"
	ModeFiles = "files"
	ModeACME  = "acme"
	ModeOff   = "off"
)

// TLSOptions says where the server's certificate comes from.
type TLSOptions struct {
	Mode              string // ModeLocal (the default when empty), ModeFiles, ModeACME or ModeOff
	CertFile, KeyFile string // PEM files, for ModeFiles
	ACMEDomains       []string
	ACMEEmail         string
	ACMEDirectoryURL  string // "" means Let's Encrypt production
}

// TLSResult is a ready TLS configuration for a listener.
type TLSResult struct {
	// Config is nil in ModeOff: the caller serves plain HTTP.
	Config *tls.Config
	// CAPath is the CA certificate clients should trust, in ModeLocal only.
	CAPath string
	// Handler answers ACME http-01 challenges on port 80 (redirecting other
	// requests to HTTPS), in ModeACME only; nil otherwise.
	Handler http.Handler
}

// BaseTLSConfig returns the TLS settings every Bulwark listener uses: TLS 1.2
// minimum (1.3 preferred by both Go peers), for TLS 1.2 only ECDHE key exchange
// with AES-GCM or ChaCha20-Poly1305, the hybrid post-quantum X25519MLKEM768
// group first, and HTTP/2 offered through ALPN.
func BaseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       []string{"h2", "http/1.1"},
	}
}

// ServerTLS builds the TLS configuration for mode opts.Mode, keeping its state
// under dataDir/tls:
//   - local: a private CA (tls/ca.pem, tls/ca-key.pem) and a leaf for
//     localhost, 127.0.0.1 and ::1 (tls/cert.pem, tls/key.pem), created on first
//     start, reused afterwards, regenerated when missing, unparseable or
//     expired; the leaf is renewed when less than 30 days remain, also while
//     running.
//   - files: opts.CertFile and opts.KeyFile, reloaded when they change on disk
//     (a failed reload keeps the previous pair and logs a warning).
//   - acme: certificates from an ACME CA for opts.ACMEDomains only (TLS-ALPN-01
//     on this listener, HTTP-01 through TLSResult.Handler), cached in tls/acme.
//   - off: a TLSResult with a nil Config.
//
// ctx is not retained by the local and files modes; in acme mode it bounds
// nothing either (autocert works per handshake) and is accepted so that a
// future renewal loop can be stopped by it.
func ServerTLS(ctx context.Context, opts TLSOptions, dataDir string, logger *slog.Logger) (*TLSResult, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(dataDir, "tls")
	switch opts.Mode {
	case ModeLocal, "":
		lc, err := loadOrCreateLocal(dir, logger, time.Now)
		if err != nil {
			return nil, err
		}
		cfg := BaseTLSConfig()
		cfg.GetCertificate = lc.getCertificate
		return &TLSResult{Config: cfg, CAPath: lc.caPath}, nil
	case ModeFiles:
		if opts.CertFile == "" || opts.KeyFile == "" {
			return nil, errors.New("tls: files mode needs a certificate file and a key file")
		}
		fc, err := newFileCert(opts.CertFile, opts.KeyFile, logger)
		if err != nil {
			return nil, err
		}
		cfg := BaseTLSConfig()
		cfg.GetCertificate = fc.getCertificate
		return &TLSResult{Config: cfg}, nil
	case ModeACME:
		if len(opts.ACMEDomains) == 0 {
			return nil, errors.New("tls: acme mode needs at least one domain")
		}
		cacheDir := filepath.Join(dir, "acme")
		if err := os.MkdirAll(cacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("tls: acme cache: %w", err)
		}
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(opts.ACMEDomains...),
			Cache:      autocert.DirCache(cacheDir),
			Email:      opts.ACMEEmail,
		}
		if opts.ACMEDirectoryURL != "" {
			m.Client = &acme.Client{DirectoryURL: opts.ACMEDirectoryURL}
		}
		cfg := BaseTLSConfig()
		cfg.GetCertificate = m.GetCertificate
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
		return &TLSResult{Config: cfg, Handler: m.HTTPHandler(nil)}, nil
	case ModeOff:
		return &TLSResult{}, nil
	default:
		return nil, fmt.Errorf("tls: unknown mode %q (want local, files, acme or off)", opts.Mode)
	}
}
