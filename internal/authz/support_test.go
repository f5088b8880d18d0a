package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// A grant is live only once approved, for its duration (it expires by
// itself), until revoked; break-glass needs a second operator; every
// step is in the org's own log.
func TestSupport_LifecycleExpiryAndBreakGlass(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		clk := storetest.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
		opts.Now = clk.Now
		st, err := store.Open(ctx, opts, keys.ControlSchema(), audit.ControlSchema(), audit.OrgSchema(), authz.ControlSchema())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		kek, err := keys.OpenLocalKEK(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ring, err := keys.NewRing(ctx, st, kek, keys.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		aud, err := audit.New(st, ring, audit.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		orgID := uuid.NewString()
		if err := st.CreateOrgDB(ctx, orgID); err != nil {
			t.Fatal(err)
		}
		sup := authz.NewSupport(st, aud, clk.Now)
		olga := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "op-olga"}}
		otto := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "op-otto"}}
		admin := audit.Source{Actor: audit.Actor{Type: audit.ActorUser, ID: "u-admin"}}
		if _, err := sup.Request(ctx, admin, orgID, "a user cannot ask for this", 60, false); apperr.CodeOf(err) != apperr.Forbidden {
			t.Fatalf("a user asking: %v", err)
		}
		if _, err := sup.Request(ctx, olga, orgID, "short", 60*25, false); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("a bad request: %v", err)
		}
		g, err := sup.Request(ctx, olga, orgID, "ticket 99: cannot log in", 60, true)
		if err != nil {
			t.Fatal(err)
		}
		live := func(op string) (authz.Role, bool) {
			t.Helper()
			g, ok, err := sup.Live(ctx, orgID, op)
			if err != nil {
				t.Fatal(err)
			}
			return g.Role(), ok
		}
		if _, ok := live("op-olga"); ok {
			t.Fatal("a pending request is live")
		}
		if _, err := sup.Decide(ctx, admin, uuid.NewString(), g.ID, true); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("another org deciding: %v", err)
		}
		if _, err := sup.Decide(ctx, admin, orgID, g.ID, true); err != nil {
			t.Fatal(err)
		}
		if r, ok := live("op-olga"); !ok || r != authz.SupportWrite {
			t.Fatalf("approved grant: %v %v", r, ok)
		}
		clk.Add(61 * time.Minute)
		if _, ok := live("op-olga"); ok {
			t.Fatal("the grant outlived its hour")
		}
		list, err := sup.List(ctx, orgID)
		if err != nil || len(list) != 1 || list[0].Status != authz.StatusExpired {
			t.Fatalf("list: %+v %v", list, err)
		}
		// Break-glass.
		bg, err := sup.BreakGlass(ctx, olga, orgID, "incident: records vanish", 30, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sup.SecondApprove(ctx, olga, bg.ID); apperr.CodeOf(err) != apperr.Forbidden {
			t.Fatalf("self-approval: %v", err)
		}
		if _, err := sup.Decide(ctx, admin, orgID, bg.ID, true); apperr.CodeOf(err) != apperr.Conflict {
			t.Fatalf("the org approving break-glass: %v", err)
		}
		told := 0
		sup.OnBreakGlass(func(context.Context, authz.Grant) { told++ })
		if _, err := sup.SecondApprove(ctx, otto, bg.ID); err != nil {
			t.Fatal(err)
		}
		if r, ok := live("op-olga"); !ok || r != authz.SupportRead || told != 1 {
			t.Fatalf("break-glass live: %v %v, owners told %d times", r, ok, told)
		}
		if _, err := sup.Revoke(ctx, admin, orgID, bg.ID); err != nil {
			t.Fatal(err)
		}
		if _, ok := live("op-olga"); ok {
			t.Fatal("a revoked grant is live")
		}
		page, err := aud.Query(ctx, orgID, audit.Filter{Action: "support.*"}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"support.requested": true, "support.approved": true, "support.break_glass_requested": true,
			"support.break_glass_approved": true, "support.revoked": true}
		for _, ev := range page.Items {
			delete(want, ev.Action)
		}
		if len(want) != 0 {
			t.Fatalf("missing from the org's log: %v", want)
		}
	})
}
