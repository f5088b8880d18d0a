package observe

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateIPKey_CreatesPrivateFileAndReusesIt(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateIPKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 32 {
		t.Fatalf("key length %d, want 32", len(k1))
	}
	fi, err := os.Stat(filepath.Join(dir, "keys", "log-ip.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("keys dir mode %v, want 0700", di.Mode().Perm())
	}
	k2, err := LoadOrCreateIPKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) {
		t.Fatal("second load returned a different key: pseudonyms would change on restart")
	}
	other, err := LoadOrCreateIPKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1, other) {
		t.Fatal("two data dirs got the same key")
	}
}

func TestLoadOrCreateIPKey_RefusesDamagedFile(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "keys"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "keys", "log-ip.key"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIPKey(dir); err == nil {
		t.Fatal("a 5-byte key file was accepted")
	}
}
