package audit

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// The keyring's events (creation, rotation, unwraps) reach the
// control-plane log with the source of the context they happened in, even
// when reported from inside a control-database transaction.
func TestKeyEvents_KeyringEventsLandInTheControlLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st, err := store.Open(ctx, opts, keys.ControlSchema(), ControlSchema(), OrgSchema())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		kek, err := keys.OpenLocalKEK(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		sink, err := NewKeyEvents(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ring, err := keys.NewRing(ctx, st, kek, keys.Options{Events: sink, CacheTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(st, ring, Options{})
		if err != nil {
			t.Fatal(err)
		}
		go sink.Run(svc)

		op := Source{Actor: Actor{Type: ActorOperator, ID: "cli"}}
		octx := WithSource(ctx, op)
		org := uuid.NewString()
		// Created inside a control-database transaction, as org creation does.
		if err := st.Control().InTx(octx, func(tx *store.Tx) error { return ring.CreateOrgKeys(octx, tx, org) }); err != nil {
			t.Fatal(err)
		}
		if _, err := ring.RotateOrg(octx, org); err != nil {
			t.Fatal(err)
		}
		// A fresh ring unwraps (a cache miss), from a request of a user.
		user := Source{Actor: Actor{Type: ActorUser, ID: "u-1"}, IP: "198.51.100.4", RequestID: "r-9"}
		ring2, err := keys.NewRing(ctx, st, kek, keys.Options{Events: sink})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ring2.Seal(WithSource(ctx, user), org, keys.AD{Table: "t", RowID: "1", Field: "f"}, []byte("x")); err != nil {
			t.Fatal(err)
		}
		sink.Close(10 * time.Second)

		page, err := svc.Query(ctx, ControlLog, Filter{Action: "key.*"}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Event{}
		for _, e := range page.Items {
			got[e.Action] = e
		}
		for action, want := range map[string]Source{keys.ActionCreated: op, keys.ActionRotated: op, keys.ActionUnwrapped: user} {
			e, ok := got[action]
			if !ok {
				t.Errorf("no %s event in the control log (have %v)", action, page.Items)
				continue
			}
			if e.Actor != want.Actor || e.IP != want.IP || e.RequestID != want.RequestID || e.Resource.ID != org {
				t.Errorf("%s: %+v, want actor %v ip %q request %q on org %s", action, e, want.Actor, want.IP, want.RequestID, org)
			}
		}
		if e := got[keys.ActionRotated]; e.Details["version"] != "2" {
			t.Errorf("rotation details %v, want version 2", e.Details)
		}
		if rep, err := svc.Verify(ctx, ControlLog); err != nil || !rep.OK {
			t.Fatalf("control log: %+v, %v", rep, err)
		}
	})
}
