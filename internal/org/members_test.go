package org_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/org"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

var src = audit.Source{Actor: audit.Actor{Type: audit.ActorUser, ID: "u-owner"}}

func wantCode(t *testing.T, err error, code apperr.Code) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("err = %v (%s), want %s", err, apperr.CodeOf(err), code)
	}
}

func role(t *testing.T, svc *org.Service, orgID, user string) authz.Role {
	t.Helper()
	r, err := svc.Role(context.Background(), orgID, user)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A user's own org makes them its owner; invitations are single-use,
// bound to the invited address, and cannot grant more than the inviter
// has; roles change within the caller's rank; the last owner can neither
// leave nor be demoted, even when two owners race to leave.
func TestMembers_InviteRolesAndTheLastOwner(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, _ := newService(t, opts)
		o, err := svc.CreateOwned(ctx, src, "Acme", "acme", "u-owner")
		if err != nil {
			t.Fatal(err)
		}
		if r := role(t, svc, o.ID, "u-owner"); r != authz.Owner {
			t.Fatalf("creator's role %q", r)
		}
		if mine, err := svc.OrgsOf(ctx, "u-owner"); err != nil || len(mine) != 1 || mine[0].Org.ID != o.ID || mine[0].Role != "owner" {
			t.Fatalf("OrgsOf = %+v, %v", mine, err)
		}
		bob := []byte("blind-index-of-bob")
		// An admin cannot invite an owner; a bad role is invalid.
		_, _, err = svc.Invite(ctx, src, o.ID, authz.Admin, bob, "owner")
		wantCode(t, err, apperr.Forbidden)
		_, _, err = svc.Invite(ctx, src, o.ID, authz.Owner, bob, "root")
		wantCode(t, err, apperr.Invalid)
		tok, inv, err := svc.Invite(ctx, src, o.ID, authz.Owner, bob, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if pending, err := svc.Invites(ctx, o.ID, inv.CreatedAt); err != nil || len(pending) != 1 || pending[0].ID != inv.ID {
			t.Fatalf("Invites = %+v, %v", pending, err)
		}
		// Another address cannot use it; a forged token is not found.
		_, _, err = svc.AcceptInvite(ctx, src, tok, "u-eve", []byte("blind-index-of-eve"))
		wantCode(t, err, apperr.NotFound)
		_, _, err = svc.AcceptInvite(ctx, src, tok+"x", "u-bob", bob)
		wantCode(t, err, apperr.NotFound)
		if _, m, err := svc.AcceptInvite(ctx, src, tok, "u-bob", bob); err != nil || m.Role != "admin" {
			t.Fatalf("accept: %+v, %v", m, err)
		}
		_, _, err = svc.AcceptInvite(ctx, src, tok, "u-bob", bob)
		wantCode(t, err, apperr.NotFound) // spent
		// The admin cannot touch the owner, nor make anyone owner.
		_, err = svc.SetRole(ctx, src, o.ID, authz.Admin, "u-owner", "viewer")
		wantCode(t, err, apperr.Forbidden)
		_, err = svc.SetRole(ctx, src, o.ID, authz.Admin, "u-bob", "owner")
		wantCode(t, err, apperr.Forbidden)
		wantCode(t, svc.RemoveMember(ctx, src, o.ID, authz.Admin, "u-bob", "u-owner"), apperr.Forbidden)
		// The last owner stays.
		_, err = svc.SetRole(ctx, src, o.ID, authz.Owner, "u-owner", "admin")
		wantCode(t, err, apperr.Conflict)
		wantCode(t, svc.RemoveMember(ctx, src, o.ID, authz.Owner, "u-owner", "u-owner"), apperr.Conflict)
		if r := role(t, svc, o.ID, "u-owner"); r != authz.Owner {
			t.Fatalf("owner is now %q", r)
		}
		// Two owners leaving at once: exactly one may go.
		if _, err := svc.SetRole(ctx, src, o.ID, authz.Owner, "u-bob", "owner"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, u := range []string{"u-owner", "u-bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = svc.RemoveMember(ctx, src, o.ID, authz.Owner, u, u)
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("two owners leaving at once: %v, %v (want one to succeed)", errs[0], errs[1])
		}
		ms, err := svc.Members(ctx, o.ID, 100, "")
		if err != nil || len(ms) != 1 || ms[0].Role != "owner" {
			t.Fatalf("members after the race: %+v, %v", ms, err)
		}
		// Unknown members are not found.
		_, err = svc.SetRole(ctx, src, o.ID, authz.Owner, "u-nobody", "viewer")
		wantCode(t, err, apperr.NotFound)
	})
}

// The policy starts as the default, takes valid changes (canonicalized),
// refuses invalid ones naming every field and changing nothing, and names
// its deviations from ASVS.
func TestPolicy_ValidatesAndReportsDeviations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, _ := newService(t, opts)
		o := mustCreate(t, svc, "Acme", "acme")
		p, err := svc.Policy(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Password.MinLength != 12 || p.Password.History != 5 || p.Retention.AuditDays != 365 || len(p.Deviations()) != 0 {
			t.Fatalf("default policy %+v, deviations %v", p, p.Deviations())
		}
		bad := p
		bad.Password.MinLength = 8
		bad.Session.IdleMinutes = 0
		bad.IPAllowlist = []string{"10.0.0.0/8", "not-a-net"}
		bad.Password.RequireClasses = []string{"emoji"}
		_, err = svc.SetPolicy(ctx, src, o.ID, bad)
		wantCode(t, err, apperr.Invalid)
		var ae *apperr.Error
		if !apperrAs(err, &ae) || len(ae.Fields) != 4 {
			t.Fatalf("want 4 field errors, got %v", err)
		}
		if now, _ := svc.Policy(ctx, o.ID); now.Password.MinLength != 12 {
			t.Fatal("a refused policy changed something")
		}
		good := p
		good.MFARequired = true
		good.Password.RequireClasses = []string{"upper", "digit", "upper"}
		good.Password.MaxAgeDays = 90
		good.IPAllowlist = []string{"192.0.2.7", "10.1.2.3/8"}
		good.Retention.AuditDays = 90
		set, err := svc.SetPolicy(ctx, src, o.ID, good)
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Policy(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.MFARequired || len(got.Password.RequireClasses) != 2 || got.Password.RequireClasses[0] != "digit" ||
			got.IPAllowlist[0] != "192.0.2.7/32" || got.IPAllowlist[1] != "10.0.0.0/8" || got.Retention.AuditDays != 90 {
			t.Fatalf("stored policy %+v (set %+v)", got, set)
		}
		if d := got.Deviations(); len(d) != 2 {
			t.Fatalf("deviations %v, want classes and max age", d)
		}
	})
}

func apperrAs(err error, target **apperr.Error) bool { return errors.As(err, target) }
