package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	localCAName     = "Bulwark local CA"
	localCALifetime = 10 * 365 * 24 * time.Hour
	// leafLifetime stays under the 397 days browsers accept for a server
	// certificate, counting the backdated hour.
	leafLifetime = 396 * 24 * time.Hour
	// renewBefore is how long before its expiry a certificate is replaced.
	renewBefore = 30 * 24 * time.Hour
)

// localHosts are the names the local leaf certificate covers.
var (
	localDNSNames = []string{"localhost"}
	localIPs      = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
)

// localCert serves the leaf of the local CA and renews it when it nears its
// expiry.
type localCert struct {
	dir    string
	caPath string
	logger *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	ca    *x509.Certificate
	caKey crypto.Signer
	leaf  *tls.Certificate
}

func loadOrCreateLocal(dir string, logger *slog.Logger, now func() time.Time) (*localCert, error) {
	lc := &localCert{dir: dir, caPath: filepath.Join(dir, "ca.pem"), logger: logger, now: now}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: local CA: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: local CA: %w", err)
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if err := lc.ensure(); err != nil {
		return nil, err
	}
	return lc, nil
}

func (lc *localCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.now().Add(renewBefore).After(lc.leaf.Leaf.NotAfter) {
		if err := lc.ensure(); err != nil {
			// Keep serving the old leaf until it really expires.
			lc.logger.Error("renew local TLS certificate", "err", err)
		}
	}
	return lc.leaf, nil
}

// ensure loads the CA and leaf from disk, creating or replacing whichever is
// missing, damaged or near expiry. lc.mu must be held.
func (lc *localCert) ensure() error {
	now := lc.now()
	ca, caKey, err := loadPair(lc.caPath, filepath.Join(lc.dir, "ca-key.pem"))
	if err != nil || !ca.IsCA || now.Add(renewBefore).After(ca.NotAfter) || now.Before(ca.NotBefore) {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			lc.logger.Warn("local TLS CA is unusable; creating a new one", "err", err)
		}
		ca, caKey, err = lc.createCA(now)
		if err != nil {
			return err
		}
		lc.logger.Info("created local TLS CA; clients must trust it", "ca_file", lc.caPath)
	}
	lc.ca, lc.caKey = ca, caKey
	certPath, keyPath := filepath.Join(lc.dir, "cert.pem"), filepath.Join(lc.dir, "key.pem")
	leaf, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil || !lc.leafUsable(leaf.Leaf, now) {
		leaf, err = lc.createLeaf(now)
		if err != nil {
			return err
		}
	}
	lc.leaf = &leaf
	return nil
}

// leafUsable reports whether leaf was issued by the current CA, covers the
// local names and is not near its expiry.
func (lc *localCert) leafUsable(leaf *x509.Certificate, now time.Time) bool {
	if leaf == nil || leaf.CheckSignatureFrom(lc.ca) != nil {
		return false
	}
	if now.Before(leaf.NotBefore) || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, n := range localDNSNames {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range localIPs {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

func (lc *localCert) createCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: local CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: localCAName, Organization: []string{"Bulwark"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(localCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: local CA: %w", err)
	}
	if err := writePair(lc.caPath, filepath.Join(lc.dir, "ca-key.pem"), der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: local CA: %w", err)
	}
	return cert, key, nil
}

func (lc *localCert) createLeaf(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: local certificate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"Bulwark"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     localDNSNames,
		IPAddresses:  localIPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, lc.ca, key.Public(), lc.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: local certificate: %w", err)
	}
	certPath, keyPath := filepath.Join(lc.dir, "cert.pem"), filepath.Join(lc.dir, "key.pem")
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

// loadPair reads a certificate and its private key, checking that they match.
func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || pair.Leaf == nil {
		return nil, nil, errors.New("unsupported key")
	}
	return pair.Leaf, signer, nil
}

// writePair writes a certificate (0644) and its key (0600), each through a
// temporary file and a rename so a crash never leaves half a file.
func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("tls: write %s: %w", filepath.Base(path), err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tls: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func randomSerial() *big.Int {
	var b [16]byte
	rand.Read(b[:])
	b[0] &= 0x7f // positive
	b[0] |= 0x40 // and not short
	return new(big.Int).SetBytes(b[:])
}
