package keys

import (
	"bytes"
	"context"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// FuzzOpen feeds arbitrary bytes to Open: it must answer with invalid (or
// the plaintext, for the one ciphertext sealed here), never panic, never
// open anything else.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	st := openStore(f, store.Options{Driver: store.SQLite, DataDir: f.TempDir()})
	r := newRing(f, st, newLocalKEK(f), Options{})
	org := newOrg(f, st, r)
	if _, err := r.RotateOrg(ctx, org); err != nil {
		f.Fatal(err)
	}
	ad := AD{"records", "r1", "note"}
	plaintext := []byte("the one sealed value")
	ct, err := r.Seal(ctx, org, ad, plaintext)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ct)
	f.Fuzz(func(t *testing.T, ciphertext []byte) {
		pt, err := r.Open(ctx, org, ad, ciphertext)
		if err == nil {
			if !bytes.Equal(ciphertext, ct) || !bytes.Equal(pt, plaintext) {
				t.Fatalf("Open accepted a ciphertext that was never sealed: %x -> %q", ciphertext, pt)
			}
			return
		}
		if c := apperr.CodeOf(err); c != apperr.Invalid {
			t.Fatalf("Open(%x): %v (code %s), want invalid", ciphertext, err, c)
		}
	})
}
