package keys

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenLocalKEK_CreatesPrivateFileAndReopensTheSameKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k1, err := OpenLocalKEK(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keys", "kek.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kek.json mode %04o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("keys dir mode %04o, want 0700", di.Mode().Perm())
	}
	ct, err := k1.Encrypt(ctx, []byte("secret"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := OpenLocalKEK(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() || !strings.HasPrefix(k1.ID(), "local:") {
		t.Fatalf("IDs %q and %q: want one local id", k1.ID(), k2.ID())
	}
	pt, err := k2.Decrypt(ctx, ct, []byte("ad"))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("reopened KEK Decrypt = %q, %v", pt, err)
	}
	if _, err := k2.Decrypt(ctx, ct, []byte("other ad")); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Decrypt with other associated data: %v, want ErrAuthentication", err)
	}
	other := newLocalKEK(t)
	if other.ID() == k1.ID() {
		t.Fatal("two generated KEKs have one id")
	}
	if _, err := other.Decrypt(ctx, ct, []byte("ad")); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Decrypt under another KEK: %v, want ErrAuthentication", err)
	}
}

func TestOpenLocalKEK_RefusesFileThatGroupOrOthersCanUse(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604, 0o620, 0o602, 0o660, 0o666} {
		dir := t.TempDir()
		if _, err := OpenLocalKEK(dir); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "keys", "kek.json")
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := OpenLocalKEK(dir)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v; want a refusal naming %s and chmod 600", mode, err, path)
		}
	}
}

func TestOpenLocalKEK_RefusesCorruptedFileAndKeepsIt(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenLocalKEK(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keys", "kek.json")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"empty":      {},
		"garbage":    []byte("\x00\x01not json at all"),
		"truncated":  good[:len(good)/2],
		"other json": []byte(`{"hello": "world"}`),
		"mac keyset": []byte(`{"primaryKeyId":1,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.HmacKey","value":"EgQIAxAgGiAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHw==","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":1,"outputPrefixType":"TINK"}]}`),
		"too large":  bytes.Repeat([]byte(" "), maxKEKFileSize+1),
	} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenLocalKEK(dir)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupted") {
			t.Errorf("%s: err = %v; want 'corrupted' naming %s", name, err, path)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, content) {
			t.Errorf("%s: the corrupted file was replaced", name)
		}
	}
}
