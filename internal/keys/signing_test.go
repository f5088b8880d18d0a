package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

var signingPurposes = []string{SignAccessToken, SignFileLink, SignAuditCheckpoint}

// clock is a settable clock for Options.Now.
type clock = storetest.Clock

func newClock() *clock { return storetest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }
func countSigningKeys(t *testing.T, st *store.Store, purpose string) int {
	t.Helper()
	var n int
	if err := st.Control().SQL().QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM signing_keys WHERE purpose = $1", purpose).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSigningKey_FirstUseCreatesOneKeyUnderConcurrency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		rec := &recorder{}
		// Four rings stand for four nodes, four callers each.
		var rings []*Ring
		for i := 0; i < 4; i++ {
			rings = append(rings, newRing(t, st, kek, Options{Events: rec}))
		}
		type result struct {
			kid string
			key []byte
			err error
		}
		results := make([]result, 16)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				kid, key, err := rings[i%len(rings)].SigningKey(ctx, SignAccessToken)
				results[i] = result{kid, key, err}
			}()
		}
		close(start)
		wg.Wait()
		for i, res := range results {
			if res.err != nil {
				t.Fatalf("caller %d: %v", i, res.err)
			}
			if res.kid != results[0].kid || !bytes.Equal(res.key, results[0].key) {
				t.Fatalf("caller %d got kid %s, caller 0 kid %s: want one key", i, res.kid, results[0].kid)
			}
		}
		if n := countSigningKeys(t, st, SignAccessToken); n != 1 {
			t.Fatalf("%d access token keys stored, want 1", n)
		}
		created := 0
		for _, a := range rec.actions("") {
			if a == ActionSigningCreated {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d %s events, want 1", created, ActionSigningCreated)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(results[0].kid); err != nil || len(raw) != 16 {
			t.Fatalf("kid %q: want 16 bytes of unpadded base64url (%v)", results[0].kid, err)
		}
		// Later uses, cached or not, return the same key.
		fresh := newRing(t, st, kek, Options{})
		if kid, key, err := fresh.SigningKey(ctx, SignAccessToken); err != nil || kid != results[0].kid || !bytes.Equal(key, results[0].key) {
			t.Fatalf("fresh ring: kid %s, %v; want the stored key %s", kid, err, results[0].kid)
		}
	})
}

func TestSigningKey_AlgorithmsAndSeparatePurposes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})

		atKid, atKey, err := r.SigningKey(ctx, SignAccessToken)
		if err != nil || len(atKey) != 64 {
			t.Fatalf("access token key: %d bytes, %v; want 64", len(atKey), err)
		}
		flKid, flKey, err := r.SigningKey(ctx, SignFileLink)
		if err != nil || len(flKey) != 64 {
			t.Fatalf("file link key: %d bytes, %v; want 64", len(flKey), err)
		}
		if atKid == flKid || bytes.Equal(atKey, flKey) {
			t.Fatal("access tokens and file links share a key")
		}
		if alg, _ := SigningAlg(SignFileLink); alg != AlgHS512 {
			t.Fatalf("file link alg %s", alg)
		}

		acKid, acKey, err := r.SigningKey(ctx, SignAuditCheckpoint)
		if err != nil || len(acKey) != ed25519.PrivateKeySize {
			t.Fatalf("audit checkpoint key: %d bytes, %v; want an Ed25519 private key", len(acKey), err)
		}
		msg := []byte("checkpoint 42")
		sig := ed25519.Sign(ed25519.PrivateKey(acKey), msg)
		vks, err := r.VerificationKeys(ctx, SignAuditCheckpoint)
		if err != nil || len(vks) != 1 || len(vks[acKid]) != ed25519.PublicKeySize {
			t.Fatalf("audit checkpoint verification keys %d, %v; want one public key under %s", len(vks), err, acKid)
		}
		if !ed25519.Verify(ed25519.PublicKey(vks[acKid]), msg, sig) {
			t.Fatal("the verification key does not verify the checkpoint's signature")
		}
		if ed25519.Verify(ed25519.PublicKey(vks[acKid]), []byte("checkpoint 43"), sig) {
			t.Fatal("the verification key verifies another message")
		}

		vks, err = r.VerificationKeys(ctx, SignAccessToken)
		if err != nil || len(vks) != 1 || !bytes.Equal(vks[atKid], atKey) {
			t.Fatalf("access token verification keys %d, %v; want the HMAC secret under %s", len(vks), err, atKid)
		}
		// Returned keys are the caller's own: changing them changes nothing.
		atKey[0] ^= 0xff
		vks[atKid][1] ^= 0xff
		if _, again, _ := r.SigningKey(ctx, SignAccessToken); again[0] == atKey[0] {
			t.Fatal("a caller's change reached the cached key")
		}
		if again, _ := r.VerificationKeys(ctx, SignAccessToken); again[atKid][1] == vks[atKid][1] {
			t.Fatal("a caller's change reached the cached verification key")
		}
	})
}

func TestSigningKey_UnknownPurposeInvalid(t *testing.T) {
	st := openStore(t, store.Options{Driver: store.SQLite, DataDir: t.TempDir()})
	r := newRing(t, st, newLocalKEK(t), Options{})
	ctx := context.Background()
	for _, p := range []string{"", "data", "index", "Access_Token"} {
		if _, _, err := r.SigningKey(ctx, p); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("SigningKey(%q): %v, want invalid", p, err)
		}
		if _, err := r.VerificationKeys(ctx, p); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("VerificationKeys(%q): %v, want invalid", p, err)
		}
		if _, err := r.RotateSigningKey(ctx, p, time.Hour); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("RotateSigningKey(%q): %v, want invalid", p, err)
		}
	}
	if _, err := r.RotateSigningKey(ctx, SignAccessToken, -time.Second); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("RotateSigningKey with a negative keepFor: %v, want invalid", err)
	}
}

func TestRotateSigningKey_OldKeyVerifiesUntilItExpires(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		clk := newClock()
		rec := &recorder{}
		r := newRing(t, st, kek, Options{Now: clk.Now, Events: rec, CacheTTL: time.Hour})
		other := newRing(t, st, kek, Options{Now: clk.Now, CacheTTL: time.Hour}) // another node

		oldKid, oldKey, err := r.SigningKey(ctx, SignAccessToken)
		if err != nil {
			t.Fatal(err)
		}
		flKid, _, err := r.SigningKey(ctx, SignFileLink)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.VerificationKeys(ctx, SignAccessToken); err != nil { // warm its cache
			t.Fatal(err)
		}

		newKid, err := r.RotateSigningKey(ctx, SignAccessToken, 2*time.Hour)
		if err != nil || newKid == "" || newKid == oldKid {
			t.Fatalf("RotateSigningKey = %q, %v; want a new kid", newKid, err)
		}
		kid, newKey, err := r.SigningKey(ctx, SignAccessToken)
		if err != nil || kid != newKid || bytes.Equal(newKey, oldKey) {
			t.Fatalf("after rotation SigningKey = %s, %v; want the new key %s", kid, err, newKid)
		}
		if !contains(rec.actions(""), ActionSigningRotated) {
			t.Fatalf("events %v, want %s", rec.actions(""), ActionSigningRotated)
		}
		// The other node sees the new key at once, and the old one still.
		for name, ring := range map[string]*Ring{"rotating ring": r, "other ring": other} {
			vks, err := ring.VerificationKeys(ctx, SignAccessToken)
			if err != nil || len(vks) != 2 || !bytes.Equal(vks[oldKid], oldKey) || !bytes.Equal(vks[newKid], newKey) {
				t.Fatalf("%s: %d verification keys, %v; want the old and the new one", name, len(vks), err)
			}
		}
		if n := countSigningKeys(t, st, SignAccessToken); n != 2 {
			t.Fatalf("%d access token keys stored, want 2", n)
		}

		clk.Add(2*time.Hour - time.Second)
		if vks, _ := r.VerificationKeys(ctx, SignAccessToken); vks[oldKid] == nil {
			t.Fatal("the old key stopped verifying before its expiry")
		}
		clk.Add(time.Second)
		for name, ring := range map[string]*Ring{"rotating ring": r, "other ring": other} {
			vks, err := ring.VerificationKeys(ctx, SignAccessToken)
			if err != nil || len(vks) != 1 || vks[oldKid] != nil || vks[newKid] == nil {
				t.Fatalf("%s after expiry: %v, %v; want only the new key", name, keysOf(vks), err)
			}
		}
		// The file link key was not rotated.
		if vks, _ := r.VerificationKeys(ctx, SignFileLink); len(vks) != 1 || vks[flKid] == nil {
			t.Fatalf("file link keys %v, want %s", keysOf(vks), flKid)
		}

		// The next rotation deletes the expired key.
		third, err := r.RotateSigningKey(ctx, SignAccessToken, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM signing_keys WHERE kid = $1", oldKid).Scan(&n)
		if n != 0 {
			t.Fatal("the expired key is still stored after the next rotation")
		}
		if vks, _ := other.VerificationKeys(ctx, SignAccessToken); len(vks) != 2 || vks[third] == nil || vks[newKid] == nil {
			t.Fatalf("after the second rotation: %v, want %s and %s", keysOf(vks), newKid, third)
		}
	})
}

func TestRotateSigningKey_WithoutAKeyCreatesTheFirst(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		r := newRing(t, openStore(t, opts), newLocalKEK(t), Options{})
		kid, err := r.RotateSigningKey(ctx, SignAuditCheckpoint, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got, _, err := r.SigningKey(ctx, SignAuditCheckpoint); err != nil || got != kid {
			t.Fatalf("SigningKey = %s, %v; want %s", got, err, kid)
		}
	})
}

func TestSigningKeys_KidsNeverCrossPurposes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		r := newRing(t, openStore(t, opts), newLocalKEK(t), Options{})
		for _, p := range signingPurposes {
			if _, _, err := r.SigningKey(ctx, p); err != nil {
				t.Fatal(err)
			}
			if _, err := r.RotateSigningKey(ctx, p, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		owner := map[string]string{}
		for _, p := range signingPurposes {
			vks, err := r.VerificationKeys(ctx, p)
			if err != nil || len(vks) != 2 {
				t.Fatalf("%s: %v, %v; want 2 keys", p, keysOf(vks), err)
			}
			for kid := range vks {
				if o, ok := owner[kid]; ok {
					t.Fatalf("kid %s verifies for both %s and %s", kid, o, p)
				}
				owner[kid] = p
			}
		}
		// A row moved to another purpose does not unwrap there: the wrapped
		// key is bound to its purpose.
		fresh := newRing(t, r.st, r.currentKEK(), Options{})
		kid, _, _ := fresh.SigningKey(ctx, SignAccessToken)
		if _, err := fresh.st.Control().SQL().ExecContext(ctx,
			"UPDATE signing_keys SET purpose = 'bogus' WHERE kid = $1", kid); err == nil {
			t.Fatal("the schema accepts an unknown purpose")
		}
		if _, err := fresh.st.Control().SQL().ExecContext(ctx,
			"DELETE FROM signing_keys WHERE purpose = $1", SignFileLink); err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.st.Control().SQL().ExecContext(ctx,
			"UPDATE signing_keys SET purpose = $1 WHERE kid = $2", SignFileLink, kid); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fresh.SigningKey(ctx, SignFileLink); err == nil {
			t.Fatal("an access token key moved to file links unwraps as a file link key")
		}
	})
}

func TestRotateKEK_RewrapsSigningKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		old, next := newLocalKEK(t), newLocalKEK(t)
		r := newRing(t, st, old, Options{})
		org := newOrg(t, st, r) // 2 org keys
		want := map[string][]byte{}
		for _, p := range signingPurposes {
			kid, key, err := r.SigningKey(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			want[kid] = key
		}
		retiredKid, retiredKey, _ := r.SigningKey(ctx, SignAccessToken)
		newKid, err := r.RotateSigningKey(ctx, SignAccessToken, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, newKey, _ := r.SigningKey(ctx, SignAccessToken)
		want[newKid] = newKey

		n, err := r.RotateKEK(ctx, next)
		if err != nil || n != 3+4 {
			t.Fatalf("RotateKEK = %d, %v; want 7 keys re-wrapped (3 org keys, 4 signing keys)", n, err)
		}
		var stale int
		st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM signing_keys WHERE kek_id <> $1", next.ID()).Scan(&stale)
		if stale != 0 {
			t.Fatalf("%d signing keys still name another KEK", stale)
		}

		fresh := newRing(t, st, next, Options{})
		for _, p := range []string{SignFileLink, SignAuditCheckpoint, SignAccessToken} {
			kid, key, err := fresh.SigningKey(ctx, p)
			if err != nil || !bytes.Equal(key, want[kid]) {
				t.Fatalf("%s under the new KEK: kid %s, %v; want the same key as before", p, kid, err)
			}
		}
		vks, err := fresh.VerificationKeys(ctx, SignAccessToken)
		if err != nil || !bytes.Equal(vks[retiredKid], retiredKey) || !bytes.Equal(vks[newKid], newKey) {
			t.Fatalf("access token keys under the new KEK: %v, %v", keysOf(vks), err)
		}
		if _, err := fresh.Seal(ctx, org, AD{"t", "r", "f"}, []byte("x")); err != nil {
			t.Fatal(err)
		}

		// The old KEK opens none of them any more.
		rows, err := st.Control().SQL().QueryContext(ctx, "SELECT kid, purpose, alg, wrapped FROM signing_keys")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := 0
		for rows.Next() {
			var kid, purpose, alg string
			var wrapped []byte
			if err := rows.Scan(&kid, &purpose, &alg, &wrapped); err != nil {
				t.Fatal(err)
			}
			seen++
			if _, err := old.Decrypt(ctx, wrapped, signingKeyAD(purpose, kid, alg)); err == nil {
				t.Fatalf("the old KEK still opens signing key %s", kid)
			}
			if _, err := next.Decrypt(ctx, wrapped, signingKeyAD(purpose, kid, alg)); err != nil {
				t.Fatalf("the new KEK does not open signing key %s: %v", kid, err)
			}
		}
		if seen != 4 {
			t.Fatalf("%d signing key rows, want 4", seen)
		}
	})
}

func TestSigningKeys_StoredOnlyWrapped(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		r := newRing(t, st, kek, Options{})
		secrets := map[string][]byte{} // kid -> what must not be stored
		for _, p := range signingPurposes {
			kid, key, err := r.SigningKey(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if p == SignAuditCheckpoint {
				key = ed25519.PrivateKey(key).Seed()
			}
			secrets[kid] = key
		}
		rows, err := st.Control().SQL().QueryContext(ctx, "SELECT kid, purpose, alg, kek_id, wrapped FROM signing_keys")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var kid, purpose, alg, kekID string
			var wrapped []byte
			if err := rows.Scan(&kid, &purpose, &alg, &kekID, &wrapped); err != nil {
				t.Fatal(err)
			}
			n++
			secret := secrets[kid]
			if secret == nil || kekID != kek.ID() {
				t.Fatalf("row %s (%s): unknown kid or KEK %s", kid, purpose, kekID)
			}
			// No 8-byte run of the key is in the row.
			for i := 0; i+8 <= len(secret); i++ {
				if bytes.Contains(wrapped, secret[i:i+8]) {
					t.Fatalf("%s key: the stored row holds key bytes %d..%d in clear", purpose, i, i+8)
				}
			}
			// The wrapped key is bound to its kid: under another kid it does
			// not open.
			if _, err := kek.Decrypt(ctx, wrapped, signingKeyAD(purpose, kid+"x", alg)); err == nil {
				t.Fatalf("%s key opens under another kid", purpose)
			}
		}
		if n != len(signingPurposes) {
			t.Fatalf("%d rows, want %d", n, len(signingPurposes))
		}
		// On SQLite, no file of the data directory (database, WAL) holds a
		// key in clear either.
		if opts.Driver == store.SQLite {
			err := filepath.WalkDir(opts.DataDir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				for kid, secret := range secrets {
					for i := 0; i+8 <= len(secret); i++ {
						if bytes.Contains(b, secret[i:i+8]) {
							t.Errorf("%s holds bytes of key %s in clear", filepath.Base(path), kid)
							break
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestSigningKeys_KEKDownUnavailableAndNothingWritten(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := &switchKEK{KEK: newLocalKEK(t)}
		r := newRing(t, st, kek, Options{})
		warmKid, _, err := r.SigningKey(ctx, SignAccessToken)
		if err != nil {
			t.Fatal(err)
		}
		kek.down.Store(true)
		unavailable := func(op string, err error) {
			t.Helper()
			if apperr.CodeOf(err) != apperr.Unavailable {
				t.Fatalf("%s with the KEK down: %v, want unavailable", op, err)
			}
		}
		_, _, err = r.SigningKey(ctx, SignFileLink) // must be created
		unavailable("SigningKey (first use)", err)
		_, err = r.RotateSigningKey(ctx, SignAccessToken, time.Hour)
		unavailable("RotateSigningKey", err)
		cold := newRing(t, st, kek.KEK, Options{})
		kek2 := &switchKEK{KEK: kek.KEK}
		kek2.down.Store(true)
		cold.kek = kek2
		_, _, err = cold.SigningKey(ctx, SignAccessToken) // must be unwrapped
		unavailable("SigningKey (unwrap)", err)
		_, err = cold.VerificationKeys(ctx, SignAccessToken)
		unavailable("VerificationKeys (unwrap)", err)

		if n := countSigningKeys(t, st, SignFileLink); n != 0 {
			t.Fatalf("%d file link keys written with the KEK down", n)
		}
		if n := countSigningKeys(t, st, SignAccessToken); n != 1 {
			t.Fatalf("%d access token keys after a failed rotation, want 1", n)
		}
		// The warm key is still served from the cache.
		if kid, _, err := r.SigningKey(ctx, SignAccessToken); err != nil || kid != warmKid {
			t.Fatalf("cached key with the KEK down: %s, %v", kid, err)
		}
	})
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
