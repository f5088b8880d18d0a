package token

import (
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"bulwark/internal/apperr"
)

func TestVerify_UnknownKidsAskTheKeyringOncePerKeyCacheTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	tok, _, err := is.Issue(ctx, "user-1", "session-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Verify(ctx, tok); err != nil { // warms the cache
		t.Fatal(err)
	}
	before := k.verifyCalls.Load()
	valid := claimsJSON(clk.Now(), nil)
	flood := func() {
		for i := range 1000 {
			forged := forge(hs512Header(fmt.Sprintf("made-up-%d", i)), valid, sha512.New, randomKey(t))
			_, err := is.Verify(ctx, forged)
			checkRefused(t, forged, err, ReasonKid)
		}
	}
	flood()
	if n := k.verifyCalls.Load() - before; n != 0 {
		t.Fatalf("1000 unknown kids within KeyCacheTTL asked the keyring %d times, want 0", n)
	}
	clk.Add(DefaultKeyCacheTTL)
	flood()
	if n := k.verifyCalls.Load() - before; n != 1 {
		t.Fatalf("1000 unknown kids after KeyCacheTTL asked the keyring %d times, want 1", n)
	}
}

func TestVerify_RemovedKeyVerifiesForAtMostKeyCacheTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	old := k.current
	tok, _, err := is.Issue(ctx, "user-1", "session-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	k.rotate(t)
	k.remove(old)
	clk.Add(DefaultKeyCacheTTL - time.Millisecond)
	if _, err := is.Verify(ctx, tok); err != nil {
		t.Fatalf("within KeyCacheTTL the cached key no longer verifies: %v", err)
	}
	clk.Add(time.Millisecond)
	_, err = is.Verify(ctx, tok)
	checkRefused(t, tok, err, ReasonKid)

	// A token of the new key verifies.
	tok2, _, err := is.Issue(ctx, "user-1", "session-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Verify(ctx, tok2); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
}

func TestVerify_KeyOfAnotherNodeVerifiesAfterKeyCacheTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	here := newIssuer(t, k, clk)
	there := newIssuer(t, k, clk)
	tok, _, _ := here.Issue(ctx, "user-1", "session-1", nil)
	if _, err := here.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	k.rotate(t) // on the other node
	fresh, _, err := there.Issue(ctx, "user-1", "session-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = here.Verify(ctx, fresh)
	checkRefused(t, fresh, err, ReasonKid) // the documented window
	clk.Add(DefaultKeyCacheTTL)
	if _, err := here.Verify(ctx, fresh); err != nil {
		t.Fatalf("after KeyCacheTTL: %v", err)
	}
}

func TestVerify_KeyringFailureIsNotUnauthorizedAndIsAskedOncePerKeyCacheTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	tok, _, _ := is.Issue(ctx, "user-1", "session-1", nil)
	if _, err := is.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	k.setErr(apperr.Errorf(apperr.Unavailable, "the key provider is unavailable"))
	clk.Add(DefaultKeyCacheTTL)
	before := k.verifyCalls.Load()
	for range 100 {
		_, err := is.Verify(ctx, tok)
		var inv *Invalid
		if errors.As(err, &inv) || apperr.CodeOf(err) != apperr.Unavailable {
			t.Fatalf("Verify with the keyring down: %v, want unavailable", err)
		}
	}
	if n := k.verifyCalls.Load() - before; n != 1 {
		t.Fatalf("the keyring, down, was asked %d times within KeyCacheTTL, want 1", n)
	}
	k.setErr(nil)
	clk.Add(DefaultKeyCacheTTL)
	if _, err := is.Verify(ctx, tok); err != nil {
		t.Fatalf("after the keyring came back: %v", err)
	}
}

func TestVerify_CallerWhoseContextEndedDoesNotBreakTheCache(t *testing.T) {
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	tok, _, _ := is.Issue(context.Background(), "user-1", "session-1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := is.Verify(ctx, tok); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a canceled context: %v", err)
	}
	if _, err := is.Verify(context.Background(), tok); err != nil {
		t.Fatalf("the next caller: %v", err)
	}
}

func TestVerify_ShortKeysNeverVerify(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	k.mu.Lock()
	k.keys["short"] = make([]byte, 32)
	k.mu.Unlock()
	is := newIssuer(t, k, clk)
	tok := forge(hs512Header("short"), claimsJSON(clk.Now(), nil), sha512.New, make([]byte, 32))
	_, err := is.Verify(ctx, tok)
	checkRefused(t, tok, err, ReasonKid)
}

// Run with -race: verifications while keys rotate and the cache reloads.
func TestVerify_ConcurrentWithRotation(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, _, err := is.Issue(ctx, "user-1", "session-1", nil)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := is.Verify(ctx, tok); err != nil {
					var inv *Invalid
					if !errors.As(err, &inv) || inv.Reason != ReasonKid { // a key just rotated in
						t.Errorf("Verify: %v", err)
						return
					}
				}
			}
		}()
	}
	for range 50 {
		k.rotate(t)
		clk.Add(DefaultKeyCacheTTL)
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
