package main

import (
	"context"
	"io"
	"testing"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// The retention job keeps each org's events for its policy's
// retention.audit_days, and the server's audit.retention_days for the
// control log and for orgs that did not choose.
func TestPruneAudit_FollowsEachOrgsPolicy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		cfg := testConfig(t, opts)
		cfg.Audit.RetentionDays = 100
		a, err := openApp(ctx, cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		short, err := a.orgs.Create(ctx, "Short", "short")
		if err != nil {
			t.Fatal(err)
		}
		long, err := a.orgs.Create(ctx, "Long", "long")
		if err != nil {
			t.Fatal(err)
		}
		p := a.orgs.DefaultPolicy()
		if p.Retention.AuditDays != 100 {
			t.Fatalf("default audit_days %d, want the configured 100", p.Retention.AuditDays)
		}
		p.Retention.AuditDays = 30
		if _, err := a.orgs.SetPolicy(ctx, audit.System, short.ID, p); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{short.ID, long.ID} {
			for i := range 3 {
				if err := a.audit.Record(ctx, id, audit.System.Event("record.viewed", audit.Resource{Type: "record", ID: string(rune('a' + i))}, audit.Success, nil)); err != nil {
					t.Fatal(err)
				}
			}
		}
		count := func(id string) int {
			page, err := a.audit.Query(ctx, id, audit.Filter{Action: "record.viewed"}, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			return len(page.Items)
		}
		// 40 days on: past short's 30, within the default 100.
		a.pruneAudit(ctx, time.Now().Add(40*24*time.Hour))
		if n := count(short.ID); n != 0 {
			t.Fatalf("short (30 days) kept %d events after 40 days", n)
		}
		if n := count(long.ID); n != 3 {
			t.Fatalf("long (default 100 days) has %d events after 40 days, want 3", n)
		}
		for _, id := range []string{short.ID, long.ID} {
			if rep, err := a.audit.Verify(ctx, id); err != nil || !rep.OK {
				t.Fatalf("verify %s after pruning: %+v, %v", id, rep, err)
			}
		}
		// 101 days on: the default goes too.
		a.pruneAudit(ctx, time.Now().Add(101*24*time.Hour))
		if n := count(long.ID); n != 0 {
			t.Fatalf("long kept %d events after 101 days", n)
		}
	})
}
