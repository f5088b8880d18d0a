package org_test

import (
	"context"
	"testing"
	"time"

	"bulwark/internal/authz"
	"bulwark/internal/org"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// Reads of orgs and of members' access are cached: a change made through
// the same service is seen at once; a change made by another process (a
// second service on the same storage) is seen within a second.
func TestCache_LocalChangesAtOnceOthersWithinASecond(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		here, st := newService(t, opts)
		there := org.NewService(st, nil)
		o, err := here.CreateOwned(ctx, src, "Acme", "acme", "u-owner")
		if err != nil {
			t.Fatal(err)
		}
		bob := []byte("blind-index-of-bob")
		tok, _, err := here.Invite(ctx, src, o.ID, authz.Owner, bob, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := here.AcceptInvite(ctx, src, tok, "u-bob", bob); err != nil {
			t.Fatal(err)
		}
		role, _, err := here.Access(ctx, o.ID, "u-bob")
		if err != nil || role != authz.Admin {
			t.Fatalf("role %q %v", role, err)
		}
		if _, err := here.SetRole(ctx, src, o.ID, authz.Owner, "u-bob", "viewer"); err != nil {
			t.Fatal(err)
		}
		if role, _, _ := here.Access(ctx, o.ID, "u-bob"); role != authz.Viewer {
			t.Fatalf("after a local change: %q, want viewer at once", role)
		}
		if got, _ := here.Get(ctx, "acme"); got.Status != org.Active {
			t.Fatal(got)
		}
		if err := there.RemoveMember(ctx, src, o.ID, authz.Owner, "u-owner", "u-bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := there.Suspend(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(org.ReadTTL + 500*time.Millisecond)
		for {
			role, _, err := here.Access(ctx, o.ID, "u-bob")
			got, gerr := here.Get(ctx, o.ID)
			if err == nil && gerr == nil && role == "" && got.Status == org.Suspended {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("another process's changes not seen after %v: role %q, status %q (%v, %v)", org.ReadTTL, role, got.Status, err, gerr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
