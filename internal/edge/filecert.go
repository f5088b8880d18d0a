package edge

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// fileCheckEvery is how often, at most, the certificate files are looked at
// for changes; the look happens during a handshake, so no goroutine is needed.
const fileCheckEvery = 10 * time.Second

// fileCert serves a certificate from files and reloads it when they change.
type fileCert struct {
	certPath, keyPath string
	logger            *slog.Logger
	now               func() time.Time
	every             time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     fileStamp
	checkedAt time.Time
}

// fileStamp identifies a version of the two files.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func newFileCert(certPath, keyPath string, logger *slog.Logger) (*fileCert, error) {
	fc := &fileCert{certPath: certPath, keyPath: keyPath, logger: logger, now: time.Now, every: fileCheckEvery}
	stamp, err := fc.stat()
	if err != nil {
		return nil, fmt.Errorf("tls: certificate files: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate files: %w", err)
	}
	fc.cert, fc.stamp, fc.checkedAt = &cert, stamp, fc.now()
	return fc, nil
}

func (fc *fileCert) stat() (fileStamp, error) {
	c, err := os.Stat(fc.certPath)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(fc.keyPath)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

func (fc *fileCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	now := fc.now()
	if now.Sub(fc.checkedAt) < fc.every {
		return fc.cert, nil
	}
	fc.checkedAt = now
	stamp, err := fc.stat()
	if err != nil {
		fc.logger.Warn("TLS certificate files unreadable; keeping the loaded certificate", "err", err)
		return fc.cert, nil
	}
	if stamp == fc.stamp {
		return fc.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(fc.certPath, fc.keyPath)
	if err != nil {
		// Often the cert is rewritten before the key: try again next time.
		fc.logger.Warn("TLS certificate files changed but do not load; keeping the loaded certificate", "err", err)
		return fc.cert, nil
	}
	fc.cert, fc.stamp = &cert, stamp
	fc.logger.Info("reloaded TLS certificate from files")
	return fc.cert, nil
}
