package keys

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestNewRing_RefusesAWrongKEK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st := openStore(t, opts)
		dir := t.TempDir()
		kek, err := OpenLocalKEK(dir)
		if err != nil {
			t.Fatal(err)
		}
		newRing(t, st, kek, Options{}) // stores the canary
		newRing(t, st, kek, Options{}) // and opens it

		// The key file is lost and a new one generated at the next start.
		if err := os.Remove(filepath.Join(dir, "keys", "kek.json")); err != nil {
			t.Fatal(err)
		}
		regenerated, err := OpenLocalKEK(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewRing(context.Background(), st, regenerated, Options{})
		if err == nil || !strings.Contains(err.Error(), "wrong KEK") || !strings.Contains(err.Error(), kek.ID()) {
			t.Fatalf("NewRing with a regenerated KEK: %v; want a 'wrong KEK' error naming %s", err, kek.ID())
		}
	})
}

func TestCreateOrgKeys_StoresOnlyWrappedKeysBoundToTheirOrg(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		rec := &recorder{}
		r := newRing(t, st, kek, Options{Events: rec})
		orgA, orgB := newOrg(t, st, r), newOrg(t, st, r)
		rows, err := st.Control().SQL().QueryContext(ctx, "SELECT org_id, purpose, version, kek_id, wrapped FROM org_keys WHERE org_id = $1", orgA)
		if err != nil {
			t.Fatal(err)
		}
		var purposes []string
		for rows.Next() {
			var org, purpose, kekID string
			var version int
			var wrapped []byte
			if err := rows.Scan(&org, &purpose, &version, &kekID, &wrapped); err != nil {
				t.Fatal(err)
			}
			purposes = append(purposes, purpose)
			if version != 1 || kekID != kek.ID() {
				t.Errorf("%s key: version %d, KEK %s; want 1, %s", purpose, version, kekID, kek.ID())
			}
			h, err := r.unwrapHandle(ctx, kek, wrapped, org, purpose, version)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range insecurecleartextkeyset.KeysetMaterial(h).GetKey() {
				material := k.GetKeyData().GetValue() // serialized key proto with the raw key
				raw := material[len(material)-32:]
				if bytes.Contains(wrapped, raw) {
					t.Errorf("%s key: the stored row contains the raw key", purpose)
				}
			}
			// The wrapped key does not unwrap as another org's or purpose's.
			if _, err := r.unwrapHandle(ctx, kek, wrapped, orgB, purpose, version); err == nil {
				t.Errorf("%s key of org A unwraps as org B's", purpose)
			}
			if _, err := r.unwrapHandle(ctx, kek, wrapped, org, purpose, version+1); err == nil {
				t.Errorf("%s key version 1 unwraps as version 2", purpose)
			}
		}
		rows.Close()
		slices.Sort(purposes)
		if strings.Join(purposes, ",") != "data,index,stream" {
			t.Fatalf("stored purposes %v, want data, index and stream", purposes)
		}
		// A wrapped key moved to another org's row is refused, not used.
		if _, err := st.Control().SQL().ExecContext(ctx, `UPDATE org_keys SET wrapped =
(SELECT wrapped FROM org_keys WHERE org_id = $1 AND purpose = 'data' AND version = 1)
WHERE org_id = $2 AND purpose = 'data' AND version = 1`, orgA, orgB); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Seal(ctx, orgB, AD{"t", "r", "f"}, []byte("x")); err == nil || apperr.CodeOf(err) != apperr.Internal {
			t.Fatalf("Seal with a key moved from another org: %v; want internal", err)
		}
		if err := st.Control().InTx(ctx, func(tx *store.Tx) error { return r.CreateOrgKeys(ctx, tx, orgA) }); apperr.CodeOf(err) != apperr.Conflict {
			t.Fatalf("CreateOrgKeys twice: %v, want conflict", err)
		}
		if got := rec.actions(orgA); len(got) == 0 || got[0] != ActionCreated {
			t.Fatalf("events of org A %v, want %s first", got, ActionCreated)
		}
	})
}

func TestDestroyOrgKeys_NothingOpensTheOrgsValuesAfterwards(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		rec := &recorder{}
		r := newRing(t, st, kek, Options{Events: rec})
		org, other := newOrg(t, st, r), newOrg(t, st, r)
		ad := AD{"records", "r1", "note"}
		// A copy of the org's data: values under two key versions.
		ct1, err := r.Seal(ctx, org, ad, []byte("v1 value"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RotateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		ct2, err := r.Seal(ctx, org, ad, []byte("v2 value"))
		if err != nil {
			t.Fatal(err)
		}
		otherCT, _ := r.Seal(ctx, other, ad, []byte("other org"))
		var wrapped [][]byte
		rows, _ := st.Control().SQL().QueryContext(ctx, "SELECT wrapped FROM org_keys WHERE org_id = $1", org)
		for rows.Next() {
			var w []byte
			rows.Scan(&w)
			wrapped = append(wrapped, w)
		}
		rows.Close()

		if err := r.DestroyOrgKeys(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := r.DestroyOrgKeys(ctx, org); err != nil {
			t.Fatalf("DestroyOrgKeys again: %v, want no error", err)
		}
		fresh := newRing(t, st, kek, Options{})
		for _, ring := range []*Ring{r, fresh} {
			for _, ct := range [][]byte{ct1, ct2} {
				if pt, err := ring.Open(ctx, org, ad, ct); apperr.CodeOf(err) != apperr.NotFound {
					t.Fatalf("Open after destruction = %q, %v; want not_found", pt, err)
				}
			}
			if _, err := ring.Seal(ctx, org, ad, []byte("x")); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("Seal after destruction: %v, want not_found", err)
			}
		}
		if pt, err := r.Open(ctx, other, ad, otherCT); err != nil || string(pt) != "other org" {
			t.Fatalf("another org's value after destruction: %q, %v", pt, err)
		}
		// Keys made anew under the same org id open none of the old values.
		if err := st.Control().InTx(ctx, func(tx *store.Tx) error { return r.CreateOrgKeys(ctx, tx, org) }); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Open(ctx, org, ad, ct1); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("Open with recreated keys: %v, want invalid", err)
		}
		if got := rec.actions(org); !contains(got, ActionDestroyed) {
			t.Fatalf("events %v, want %s", got, ActionDestroyed)
		}
		if opts.Driver == store.SQLite {
			// The wrapped keys are gone from the database files too.
			for _, name := range []string{"control.db", "control.db-wal"} {
				data, err := os.ReadFile(filepath.Join(opts.DataDir, name))
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				for _, w := range wrapped {
					if bytes.Contains(data, w[len(w)-48:]) {
						t.Errorf("%s still holds a destroyed wrapped key", name)
					}
				}
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestCache_ConcurrentMissesUnwrapOnceAndBoundsHold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := &switchKEK{KEK: newLocalKEK(t)}
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		var clockMu sync.Mutex
		clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
		setup := newRing(t, st, kek, Options{})
		orgs := []string{newOrg(t, st, setup), newOrg(t, st, setup), newOrg(t, st, setup)}

		r := newRing(t, st, kek, Options{CacheSize: 4, CacheTTL: time.Minute, Now: clock})
		kek.decrypts.Store(0)
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := r.Seal(ctx, orgs[0], AD{"t", "r", "f"}, []byte("x")); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := kek.decrypts.Load(); n != 1 {
			t.Fatalf("32 concurrent first seals unwrapped %d times, want 1", n)
		}
		// Within the lifetime: no unwrap; after it: one more.
		r.Seal(ctx, orgs[0], AD{"t", "r", "f"}, []byte("x"))
		if n := kek.decrypts.Load(); n != 1 {
			t.Fatalf("warm seal unwrapped (total %d)", n)
		}
		clockMu.Lock()
		now = now.Add(time.Minute)
		clockMu.Unlock()
		r.Seal(ctx, orgs[0], AD{"t", "r", "f"}, []byte("x"))
		if n := kek.decrypts.Load(); n != 2 {
			t.Fatalf("seal after the cache lifetime: %d unwraps in all, want 2", n)
		}
		for _, org := range orgs {
			r.Seal(ctx, org, AD{"t", "r", "f"}, []byte("x"))
			r.BlindIndex(ctx, org, "f", []byte("x"))
		}
		if n := r.cache.len(); n > 4 {
			t.Fatalf("cache holds %d keys, want at most CacheSize 4", n)
		}
	})
}

func TestRotateKEK_RewrapsEveryKeyAndRetiresTheOldKEK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		old, next := newLocalKEK(t), newLocalKEK(t)
		rec := &recorder{}
		r := newRing(t, st, old, Options{Events: rec})
		org1, org2 := newOrg(t, st, r), newOrg(t, st, r)
		if _, err := r.RotateOrg(ctx, org1); err != nil {
			t.Fatal(err)
		}
		ad := AD{"records", "r1", "note"}
		ct, _ := r.Seal(ctx, org2, ad, []byte("before"))
		index, _ := r.BlindIndex(ctx, org2, "f", []byte("v"))

		n, err := r.RotateKEK(ctx, next)
		if err != nil || n != 7 {
			t.Fatalf("RotateKEK = %d, %v; want 7 keys re-wrapped", n, err)
		}
		var stale int
		st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys WHERE kek_id <> $1", next.ID()).Scan(&stale)
		if stale != 0 {
			t.Fatalf("%d keys still name another KEK", stale)
		}
		if _, err := NewRing(ctx, st, old, Options{}); err == nil || !strings.Contains(err.Error(), "wrong KEK") {
			t.Fatalf("NewRing with the old KEK: %v, want wrong KEK", err)
		}
		fresh := newRing(t, st, next, Options{})
		if pt, err := fresh.Open(ctx, org2, ad, ct); err != nil || string(pt) != "before" {
			t.Fatalf("Open under the new KEK = %q, %v", pt, err)
		}
		if got, _ := fresh.BlindIndex(ctx, org2, "f", []byte("v")); !bytes.Equal(got, index) {
			t.Fatal("blind index changed with the KEK")
		}
		if _, err := r.Seal(ctx, org1, ad, []byte("after")); err != nil {
			t.Fatal(err)
		}
		if r.KEKID() != next.ID() || !contains(rec.actions(""), ActionKEKRotated) {
			t.Fatalf("ring KEK %s, events %v", r.KEKID(), rec.actions(""))
		}
	})
}

func TestKEKDown_UnavailableAndNothingWritten(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := &switchKEK{KEK: newLocalKEK(t)}
		r := newRing(t, st, kek, Options{})
		warm := newOrg(t, st, r)
		cold := newOrg(t, st, r)
		ad := AD{"records", "r1", "note"}
		if _, err := r.Seal(ctx, warm, ad, []byte("x")); err != nil {
			t.Fatal(err)
		}
		count := func() (n int) {
			st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys").Scan(&n)
			return n
		}
		canary := func() (id string, w []byte) {
			id, w, _ = readCanary(ctx, st.Control().SQL())
			return
		}
		before := count()
		canaryID, canaryW := canary()

		kek.down.Store(true)
		unavailable := func(what string, err error) {
			t.Helper()
			if apperr.CodeOf(err) != apperr.Unavailable || apperr.MessageOf(err) != "key service unavailable" {
				t.Errorf("%s with the KEK down: %v; want unavailable: key service unavailable", what, err)
			}
		}
		unavailable("CreateOrgKeys", st.Control().InTx(ctx, func(tx *store.Tx) error {
			return r.CreateOrgKeys(ctx, tx, "0196a1b2-0000-7000-8000-000000000001")
		}))
		_, err := r.Seal(ctx, cold, ad, []byte("x"))
		unavailable("Seal (cold)", err)
		_, err = r.BlindIndex(ctx, cold, "f", []byte("x"))
		unavailable("BlindIndex (cold)", err)
		_, err = r.RotateOrg(ctx, warm)
		unavailable("RotateOrg", err)
		_, err = r.RotateKEK(ctx, newLocalKEK(t))
		unavailable("RotateKEK (old KEK down)", err)
		_, err = NewRing(ctx, st, kek, Options{})
		unavailable("NewRing", err)
		if _, err := r.Seal(ctx, warm, ad, []byte("x")); err != nil {
			t.Errorf("Seal with a cached key while the KEK is down: %v", err)
		}
		kek.down.Store(false)
		down := &switchKEK{KEK: newLocalKEK(t)}
		down.down.Store(true)
		_, err = r.RotateKEK(ctx, down)
		unavailable("RotateKEK (new KEK down)", err)

		if n := count(); n != before {
			t.Fatalf("%d keys stored after failures, want %d", n, before)
		}
		var stale int
		st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys WHERE kek_id <> $1", kek.ID()).Scan(&stale)
		if id, w := canary(); stale != 0 || id != canaryID || !bytes.Equal(w, canaryW) {
			t.Fatal("a failed KEK rotation changed stored keys or the canary")
		}
		if _, err := r.Seal(ctx, cold, ad, []byte("x")); err != nil {
			t.Fatalf("Seal once the KEK is back: %v", err)
		}
	})
}

func TestEventsMetricsAndStatus_CountKeyUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		rec := &recorder{}
		reg := prometheus.NewRegistry()
		setup := newRing(t, st, kek, Options{})
		org := newOrg(t, st, setup)
		r := newRing(t, st, kek, Options{Events: rec, Registerer: reg})
		ad := AD{"records", "r1", "note"}
		ct, _ := r.Seal(ctx, org, ad, []byte("x"))
		r.Seal(ctx, org, ad, []byte("y"))
		r.Open(ctx, org, ad, ct)
		r.Open(ctx, org, AD{"records", "r2", "note"}, ct) // fails
		r.BlindIndex(ctx, org, "f", []byte("v"))
		if _, err := r.RotateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}

		want := []string{ActionUnwrapped, ActionUnwrapped, ActionRotated}
		if got := rec.actions(org); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events %v, want %v", got, want)
		}
		for _, e := range rec.events {
			if e.Time.IsZero() || e.Details["purpose"] == "" {
				t.Errorf("event %+v lacks a time or purpose", e)
			}
		}
		for name, want := range map[string]float64{
			"bulwark_keys_seals_total":         2,
			"bulwark_keys_opens_total":         1,
			"bulwark_keys_open_failures_total": 1,
			"bulwark_keys_blind_indexes_total": 1,
		} {
			if got := counterValue(t, reg, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		families, _ := reg.Gather()
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if strings.Contains(l.GetName(), "org") {
						t.Errorf("%s is labelled by %s", f.GetName(), l.GetName())
					}
				}
			}
		}

		status, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(status) != 1 {
			t.Fatalf("Status has %d orgs, want 1", len(status))
		}
		s := status[0]
		if s.OrgID != org || s.Primary != 2 || len(s.Data) != 2 || len(s.Index) != 1 ||
			s.Seals != 2 || s.Opens != 1 || s.Unwraps != 2 || s.BlindIndexes != 1 {
			t.Fatalf("Status = %+v", s)
		}
		if s.Data[0].CreatedAt.IsZero() || s.Data[0].KEKID != kek.ID() || s.Data[0].CreatedAt.Location() != time.UTC {
			t.Fatalf("version 1 = %+v", s.Data[0])
		}
	})
}

// counterValue gathers reg and returns the value of the counter name.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestEnsurePlatformKeys_CreatesOnceAndSeals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- r.EnsurePlatformKeys(ctx) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := st.Control().SQL().QueryRow("SELECT COUNT(*) FROM org_keys WHERE org_id = $1", PlatformID).Scan(&n); err != nil || n != 3 {
			t.Fatalf("platform keys: %d (%v), want one of each purpose", n, err)
		}
		ct, err := r.Seal(ctx, PlatformID, AD{"users", "u1", "email"}, []byte("a@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := r.Open(ctx, PlatformID, AD{"users", "u1", "email"}, ct); err != nil || string(pt) != "a@example.com" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	})
}
