package keys

import (
	"context"
	"sync"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// storedSeals reads the seals stored in org_key_use (-1: no row).
func storedSeals(t *testing.T, st *store.Store, orgID string) int64 {
	t.Helper()
	var n int64
	err := st.Control().SQL().QueryRowContext(context.Background(),
		"SELECT seals FROM org_key_use WHERE org_id = $1", orgID).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

func statusOf(t *testing.T, r *Ring, orgID string) OrgKeyStatus {
	t.Helper()
	all, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.OrgID == orgID {
			return s
		}
	}
	t.Fatalf("org %s not in status", orgID)
	return OrgKeyStatus{}
}

func TestFlushUse_CountsSurviveANewRing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		r := newRing(t, st, kek, Options{})
		org := newOrg(t, st, r)
		if s := statusOf(t, r, org); s.Seals != 0 || !s.LastUsed.IsZero() {
			t.Fatalf("before any use: %+v", s)
		}
		ad := AD{Table: "notes", RowID: "n1", Field: "body"}
		before := time.Now().UTC().Add(-time.Second)
		var ct []byte
		for i := 0; i < 3; i++ {
			var err error
			if ct, err = r.Seal(ctx, org, ad, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Open(ctx, org, ad, ct); err != nil {
			t.Fatal(err)
		}
		if _, err := r.BlindIndex(ctx, org, "email", []byte("a@example.com")); err != nil {
			t.Fatal(err)
		}
		// Unflushed counts show in this ring's status only.
		if s := statusOf(t, r, org); s.Seals != 3 || s.Opens != 1 || s.BlindIndexes != 1 || s.Unwraps != 2 || s.LastUsed.Before(before) {
			t.Fatalf("before flush: %+v", s)
		}
		if err := r.FlushUse(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.FlushUse(ctx); err != nil { // nothing new: no change
			t.Fatal(err)
		}
		if s := statusOf(t, r, org); s.Seals != 3 || s.Opens != 1 || s.BlindIndexes != 1 || s.Unwraps != 2 {
			t.Fatalf("after flush, same ring: %+v", s)
		}
		r2 := newRing(t, st, kek, Options{})
		s := statusOf(t, r2, org)
		if s.Seals != 3 || s.Opens != 1 || s.BlindIndexes != 1 || s.Unwraps != 2 || s.LastUsed.Before(before) || s.LastUsed.After(time.Now().Add(time.Second)) {
			t.Fatalf("new ring: %+v", s)
		}
		// A second process's use adds up.
		if _, err := r2.Seal(ctx, org, ad, []byte("y")); err != nil {
			t.Fatal(err)
		}
		if err := r2.FlushUse(ctx); err != nil {
			t.Fatal(err)
		}
		if s := statusOf(t, r, org); s.Seals != 4 || s.Unwraps != 3 {
			t.Fatalf("after a second ring's flush: %+v", s)
		}
	})
}

func TestFlushUse_ConcurrentSealsAreCountedOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		ad := AD{Table: "notes", RowID: "n1", Field: "body"}
		const workers, each = 8, 500
		var wg sync.WaitGroup
		done := make(chan struct{})
		flushErr := make(chan error, 1)
		go func() {
			defer close(flushErr)
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := r.FlushUse(ctx); err != nil {
					flushErr <- err
					return
				}
			}
		}()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := r.Seal(ctx, org, ad, []byte("x")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(done)
		if err := <-flushErr; err != nil {
			t.Fatal(err)
		}
		if err := r.FlushUse(ctx); err != nil {
			t.Fatal(err)
		}
		if n := storedSeals(t, st, org); n != workers*each {
			t.Fatalf("stored seals %d, want %d", n, workers*each)
		}
		if s := statusOf(t, r, org); s.Seals != workers*each {
			t.Fatalf("status seals %d, want %d", s.Seals, workers*each)
		}
	})
}

func TestDestroyOrgKeys_RemovesKeyUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org, other := newOrg(t, st, r), newOrg(t, st, r)
		ad := AD{Table: "notes", RowID: "n1", Field: "body"}
		for _, o := range []string{org, other} {
			if _, err := r.Seal(ctx, o, ad, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.FlushUse(ctx); err != nil {
			t.Fatal(err)
		}
		if n := storedSeals(t, st, org); n != 1 {
			t.Fatalf("stored seals %d", n)
		}
		if err := r.DestroyOrgKeys(ctx, org); err != nil {
			t.Fatal(err)
		}
		if n := storedSeals(t, st, org); n != -1 {
			t.Fatalf("org_key_use row left after destroy: seals %d", n)
		}
		if n := storedSeals(t, st, other); n != 1 {
			t.Fatalf("other org's row: seals %d", n)
		}
		// Counts of a destroyed org (as another process would hold them)
		// do not bring the row back.
		r.use.of(org).seals.Add(5)
		if err := r.FlushUse(ctx); err != nil {
			t.Fatal(err)
		}
		if n := storedSeals(t, st, org); n != -1 {
			t.Fatalf("flush brought back the row of a destroyed org: seals %d", n)
		}
	})
}
