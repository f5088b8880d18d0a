package token

import (
	"context"
	"crypto/sha512"
	"testing"
	"time"

	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// With the real keyring: a key rotated out verifies until its expiry, then
// for at most KeyCacheTTL more, then never.
func TestVerify_WithRing_RotatedOutKeyStopsVerifyingOnceTheCacheReloads(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st, err := store.Open(ctx, opts, keys.ControlSchema())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		kek, err := keys.OpenLocalKEK(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		clk := newClock()
		ring, err := keys.NewRing(ctx, st, kek, keys.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		is := newIssuer(t, ring, clk)

		tok, issued, err := is.Issue(ctx, "user-1", "session-1", []string{"pwd"})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := is.Verify(ctx, tok); err != nil || c.ID != issued.ID {
			t.Fatalf("Verify = %+v, %v", c, err)
		}
		oldKid, _, err := ring.SigningKey(ctx, keys.SignAccessToken)
		if err != nil {
			t.Fatal(err)
		}
		forged := forge(hs512Header(oldKid), claimsJSON(clk.Now(), nil), sha512.New, randomKey(t))
		_, err = is.Verify(ctx, forged)
		checkRefused(t, forged, err, ReasonSignature)

		const keepFor = 30 * time.Second
		newKid, err := ring.RotateSigningKey(ctx, keys.SignAccessToken, keepFor)
		if err != nil {
			t.Fatal(err)
		}
		rotated := clk.Now()
		tok2, _, err := is.Issue(ctx, "user-1", "session-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if kid, _, _ := ring.SigningKey(ctx, keys.SignAccessToken); kid != newKid {
			t.Fatalf("signing with %s after the rotation, want %s", kid, newKid)
		}

		at := func(d time.Duration) { clk.Add(rotated.Add(d).Sub(clk.Now())) }
		at(DefaultKeyCacheTTL) // the cache sees the new key
		for name, tk := range map[string]string{"old key": tok, "new key": tok2} {
			if _, err := is.Verify(ctx, tk); err != nil {
				t.Fatalf("token of the %s after the rotation: %v", name, err)
			}
		}
		at(keepFor - 500*time.Millisecond) // the cache reloads: the old key is still valid
		if _, err := is.Verify(ctx, tok); err != nil {
			t.Fatalf("old key before its expiry: %v", err)
		}
		at(keepFor + 200*time.Millisecond) // expired, but the cache is 0.7 s old
		if _, err := is.Verify(ctx, tok); err != nil {
			t.Fatalf("old key within KeyCacheTTL of its expiry: %v", err)
		}
		at(keepFor + 600*time.Millisecond) // the cache reloads
		_, err = is.Verify(ctx, tok)
		checkRefused(t, tok, err, ReasonKid)
		if _, err := is.Verify(ctx, tok2); err != nil {
			t.Fatalf("token of the new key: %v", err)
		}
	})
}
