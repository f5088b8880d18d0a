package keys

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestRotateLocalKEK_NewFileKeyOpensEverythingAndTheOldKeyIsGone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		dataDir := t.TempDir()
		kek, err := OpenLocalKEK(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dataDir, "keys", "kek.json")
		before, _ := os.ReadFile(path)
		r := newRing(t, st, kek, Options{})
		org := newOrg(t, st, r)
		ad := AD{"records", "r1", "note"}
		ct, err := r.Seal(ctx, org, ad, []byte("kept across the KEK rotation"))
		if err != nil {
			t.Fatal(err)
		}

		n, err := RotateLocalKEK(ctx, r, dataDir)
		if err != nil || n != 3 {
			t.Fatalf("RotateLocalKEK = %d, %v; want the org's 3 keys re-wrapped", n, err)
		}
		after, _ := os.ReadFile(path)
		if bytes.Equal(before, after) {
			t.Fatal("the KEK file did not change")
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("KEK file mode after rotation: %v %v", fi.Mode(), err)
		}

		// A process started now reads the new file: it opens old values.
		reopened, err := OpenLocalKEK(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		if reopened.ID() == kek.ID() {
			t.Fatalf("KEK id unchanged: %s", kek.ID())
		}
		fresh := newRing(t, st, reopened, Options{})
		if pt, err := fresh.Open(ctx, org, ad, ct); err != nil || string(pt) != "kept across the KEK rotation" {
			t.Fatalf("Open after rotation = %q, %v", pt, err)
		}
		// The old key is no longer in the file: the old file's copy is the
		// only thing that holds it, and it no longer opens the keyring.
		oldDir := t.TempDir()
		os.MkdirAll(filepath.Join(oldDir, "keys"), 0o700)
		if err := os.WriteFile(filepath.Join(oldDir, "keys", "kek.json"), before, 0o600); err != nil {
			t.Fatal(err)
		}
		old, err := OpenLocalKEK(oldDir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewRing(ctx, st, old, Options{}); err == nil {
			t.Fatal("the retired KEK still opens the keyring")
		}
		if _, err := old.Decrypt(ctx, mustWrapWith(t, reopened), nil); err == nil {
			t.Fatal("the retired KEK decrypts under the new key")
		}
	})
}

func mustWrapWith(t *testing.T, k KEK) []byte {
	t.Helper()
	ct, err := k.Encrypt(context.Background(), []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}
