package keys

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestSeal_CiphertextOpensOnlyWhereItWasSealed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		orgA, orgB := newOrg(t, st, r), newOrg(t, st, r)
		ad := AD{Table: "records", RowID: "row-1", Field: "email"}
		ct, err := r.Seal(ctx, orgA, ad, []byte("alice@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, []byte("alice")) || len(ct) != len("alice@example.com")+Overhead {
			t.Fatalf("ciphertext %x: want %d bytes without the plaintext", ct, len("alice@example.com")+Overhead)
		}
		pt, err := r.Open(ctx, orgA, ad, ct)
		if err != nil || string(pt) != "alice@example.com" {
			t.Fatalf("Open where sealed = %q, %v", pt, err)
		}
		for _, tc := range []struct {
			name string
			org  string
			ad   AD
		}{
			{"other row", orgA, AD{"records", "row-2", "email"}},
			{"other field", orgA, AD{"records", "row-1", "phone"}},
			{"other table", orgA, AD{"users", "row-1", "email"}},
			{"other org", orgB, ad},
			// Length prefixes keep shifted boundaries apart.
			{"shifted boundary", orgA, AD{"records", "row-1e", "mail"}},
			{"shifted table", orgA, AD{"recordsr", "ow-1", "email"}},
		} {
			pt, err := r.Open(ctx, tc.org, tc.ad, ct)
			if err == nil || apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("%s: Open = %q, %v; want invalid", tc.name, pt, err)
			}
		}
		if _, err := r.Seal(ctx, orgA, AD{Table: "records", Field: "email"}, []byte("x")); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("Seal without a row id: %v, want invalid", err)
		}
		if _, err := r.Seal(ctx, "00000000-0000-0000-0000-000000000000", ad, []byte("x")); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("Seal for an org without keys: %v, want not_found", err)
		}
		// What is not an org id is not_found too,
		// whether or not a real org's key is cached.
		for _, bad := range []string{"", "acme", "../../etc/passwd", strings.ToUpper(orgA), orgA + " ", orgA[:35] + "g"} {
			if _, err := r.Seal(ctx, bad, ad, []byte("x")); apperr.CodeOf(err) != apperr.NotFound {
				t.Errorf("Seal for org %q: %v, want not_found", bad, err)
			}
			if pt, err := r.Open(ctx, bad, ad, ct); apperr.CodeOf(err) != apperr.NotFound {
				t.Errorf("Open for org %q: %q, %v; want not_found", bad, pt, err)
			}
			if _, err := r.BlindIndex(ctx, bad, "email", []byte("x")); apperr.CodeOf(err) != apperr.NotFound {
				t.Errorf("BlindIndex for org %q: %v, want not_found", bad, err)
			}
		}
		ct2, _ := r.Seal(ctx, orgA, ad, []byte("alice@example.com"))
		if bytes.Equal(ct, ct2) {
			t.Error("two seals of one value are equal: nonces repeat")
		}
	})
}

func TestOpen_FlippingAnyByteFailsCleanly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		if _, err := r.RotateOrg(ctx, org); err != nil { // versions 1 and 2 exist
			t.Fatal(err)
		}
		ad := AD{"records", "r1", "note"}
		ct, err := r.Seal(ctx, org, ad, []byte("a value of some length"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range ct {
			for _, bit := range []byte{0x01, 0x80, 0xff} {
				bad := bytes.Clone(ct)
				bad[i] ^= bit
				pt, err := r.Open(ctx, org, ad, bad)
				if err == nil {
					t.Fatalf("byte %d ^ %#x: Open = %q, want an error", i, bit, pt)
				}
				if c := apperr.CodeOf(err); c != apperr.Invalid {
					t.Fatalf("byte %d ^ %#x: %v (code %s), want invalid", i, bit, err, c)
				}
			}
		}
		for n := 0; n < len(ct); n++ {
			if _, err := r.Open(ctx, org, ad, ct[:n]); apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("truncated to %d bytes: %v, want invalid", n, err)
			}
		}
		if _, err := r.Open(ctx, org, ad, append(bytes.Clone(ct), 0)); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("one byte appended: %v, want invalid", err)
		}
	})
}

func TestRotateOrg_NewVersionSealsAndOldCiphertextsStillOpen(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		r := newRing(t, st, kek, Options{})
		org := newOrg(t, st, r)
		ad := AD{"records", "r1", "note"}
		var cts [][]byte
		for v := 1; v <= 3; v++ {
			ct, err := r.Seal(ctx, org, ad, fmt.Appendf(nil, "sealed under v%d", v))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := parseHeader(ct); got != v {
				t.Fatalf("ciphertext names version %d, want %d", got, v)
			}
			cts = append(cts, ct)
			if v < 3 {
				nv, err := r.RotateOrg(ctx, org)
				if err != nil || nv != v+1 {
					t.Fatalf("RotateOrg = %d, %v; want %d", nv, err, v+1)
				}
			}
		}
		// A fresh ring (another node, or after a restart) opens them all.
		for _, ring := range []*Ring{r, newRing(t, st, kek, Options{})} {
			for i, ct := range cts {
				pt, err := ring.Open(ctx, org, ad, ct)
				if want := fmt.Sprintf("sealed under v%d", i+1); err != nil || string(pt) != want {
					t.Fatalf("Open v%d = %q, %v; want %q", i+1, pt, err, want)
				}
			}
		}
		if _, err := r.RotateOrg(ctx, "00000000-0000-0000-0000-000000000000"); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("RotateOrg of an org without keys: %v, want not_found", err)
		}
	})
}

func TestBlindIndex_EqualWithinOrgAndFieldOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		r := newRing(t, st, kek, Options{})
		orgA, orgB := newOrg(t, st, r), newOrg(t, st, r)
		bi := func(r *Ring, org, field, value string) []byte {
			t.Helper()
			b, err := r.BlindIndex(ctx, org, field, []byte(value))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != 32 {
				t.Fatalf("blind index of %d bytes, want 32", len(b))
			}
			return b
		}
		base := bi(r, orgA, "email", "alice@example.com")
		if !bytes.Equal(base, bi(r, orgA, "email", "alice@example.com")) {
			t.Fatal("equal inputs gave different blind indexes")
		}
		if _, err := r.RotateOrg(ctx, orgA); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(base, bi(newRing(t, st, kek, Options{}), orgA, "email", "alice@example.com")) {
			t.Fatal("blind index changed after a data key rotation or a restart")
		}
		for name, other := range map[string][]byte{
			"other org":   bi(r, orgB, "email", "alice@example.com"),
			"other field": bi(r, orgA, "login", "alice@example.com"),
			"other value": bi(r, orgA, "email", "bob@example.com"),
			"shifted":     bi(r, orgA, "emaila", "lice@example.com"),
		} {
			if bytes.Equal(base, other) {
				t.Errorf("%s: same blind index", name)
			}
		}
		if _, err := r.BlindIndex(ctx, orgA, "", []byte("x")); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("BlindIndex without a field: %v, want invalid", err)
		}
	})
}

// Seal and Open call AES-GCM directly; Tink's own primitive of the same
// keyset must read what they write and write what they read.
func TestSeal_DirectGCMIsTinksFormat(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		if _, err := r.RotateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		k, err := r.key(ctx, slot{org, purposeData, 0})
		if err != nil {
			t.Fatal(err)
		}
		ad := AD{"records", "r1", "data"}
		for _, size := range []int{0, 1, 255, 4096} {
			pt := bytes.Repeat([]byte{byte(size)}, size)
			ct, err := r.Seal(ctx, org, ad, pt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.aead.Decrypt(ct, sealAD(ct[:headerSize], org, ad))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d bytes: Tink cannot open Seal's ciphertext: %v", size, err)
			}
			tinkCT, err := k.aead.Encrypt(pt, sealAD(ct[:headerSize], org, ad))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := r.Open(ctx, org, ad, tinkCT); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d bytes: Open cannot open Tink's ciphertext: %v", size, err)
			}
			if len(ct) != len(pt)+Overhead || bytes.Equal(ct, tinkCT) {
				t.Fatalf("%d bytes: ciphertext of %d bytes, or a repeated nonce", size, len(ct))
			}
		}
	})
}
