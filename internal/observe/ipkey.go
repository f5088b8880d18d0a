package observe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// ipKeySize is the length in bytes of the key that HashIP uses.
const ipKeySize = 32

// HashIP returns a stable pseudonym for a client IP address: "ip_" followed by
// the first 16 hex digits of HMAC-SHA256(key, ip). The address is normalized
// first (a port is dropped, an IPv4-mapped IPv6 address becomes IPv4, IPv6 is
// written in its canonical form), so one client always gets one pseudonym.
// A string that is not an address is hashed as given: it is never returned raw.
func HashIP(key []byte, ip string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(normalizeIP(ip)))
	var sum [sha256.Size]byte
	var out [3 + 16]byte
	copy(out[:], "ip_")
	hex.Encode(out[3:], mac.Sum(sum[:0])[:8])
	return string(out[:])
}

// normalizeIP returns the canonical text of the address in s, which may carry
// a port or brackets; s itself (trimmed) when it is not an address.
func normalizeIP(s string) string {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap().WithZone("").String()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("").String()
		}
	}
	return s
}

// isHashedIP reports whether s already is a HashIP pseudonym.
func isHashedIP(s string) bool {
	if len(s) != 19 || !strings.HasPrefix(s, "ip_") {
		return false
	}
	for i := 3; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// LoadOrCreateIPKey returns the key used to hash client IPs in logs, stored in
// DATA/keys/log-ip.key (32 random bytes, mode 0600, directory 0700). The file
// is created on first use and reused afterwards, so pseudonyms stay stable
// across restarts. A file of the wrong size is an error, not silently
// replaced: replacing it would break the link between old and new log lines.
func LoadOrCreateIPKey(dataDir string) ([]byte, error) {
	dir := filepath.Join(dataDir, "keys")
	path := filepath.Join(dir, "log-ip.key")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log ip key: %w", err)
	}
	key, err := readIPKey(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key = make([]byte, ipKeySize)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		return readIPKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("log ip key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("log ip key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("log ip key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("log ip key: %w", err)
	}
	return key, nil
}

func readIPKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("log ip key: %w", err)
	}
	if len(key) != ipKeySize {
		return nil, fmt.Errorf("log ip key: %s holds %d bytes, want %d", path, len(key), ipKeySize)
	}
	return key, nil
}
