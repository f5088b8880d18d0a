package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// exportLines runs audit export and returns the events it printed.
func exportLines(t *testing.T, env map[string]string, args ...string) []map[string]any {
	t.Helper()
	stdout, stderr, code := call(t, env, append([]string{"audit", "export"}, args...)...)
	if code != 0 {
		t.Fatalf("audit export %v: exit %d %q", args, code, stderr)
	}
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// orgDB opens the org's database directly, as someone with access to the
// server's disk or database could.
func orgDB(t *testing.T, opts store.Options, env map[string]string, slug string) *sql.DB {
	t.Helper()
	stdout, _, _ := call(t, env, "org", "list", "--json")
	var list struct{ Items []struct{ ID, Slug string } }
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("org list --json: %q", stdout)
	}
	id := ""
	for _, o := range list.Items {
		if o.Slug == slug {
			id = o.ID
		}
	}
	var db *sql.DB
	var err error
	if opts.Driver == store.SQLite {
		db, err = sql.Open("sqlite", "file:"+env["BULWARK_DATA_DIR"]+"/orgs/"+id+".db?_pragma=busy_timeout(5000)")
	} else {
		db, err = sql.Open("pgx", storetest.OrgDBURL(t, opts, id))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAuditCommands_VerifyExportCheckpointAndTamperingOnBothDrivers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		env := storageEnv(t, opts)
		for _, slug := range []string{"acme", "beta"} {
			if _, stderr, code := call(t, env, "org", "create", "--name", slug, "--slug", slug); code != 0 {
				t.Fatalf("org create: %s", stderr)
			}
		}
		if _, stderr, code := call(t, env, "org", "suspend", "beta"); code != 0 {
			t.Fatalf("org suspend: %s", stderr)
		}
		if _, stderr, code := call(t, env, "org", "resume", "beta"); code != 0 {
			t.Fatalf("org resume: %s", stderr)
		}

		// Org changes and key events are in the control-plane log, by the CLI.
		stdout, stderr, code := call(t, env, "audit", "verify", "--json")
		if code != 0 {
			t.Fatalf("audit verify: exit %d %q %q", code, stdout, stderr)
		}
		var res struct {
			Items []struct {
				Log           string
				OK            bool
				EventsChecked int64  `json:"events_checked"`
				FirstBadSeq   *int64 `json:"first_bad_seq"`
			}
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Items) != 1 || !res.Items[0].OK || res.Items[0].EventsChecked < 4 {
			t.Fatalf("audit verify --json: %q", stdout)
		}

		// Each export is itself in the org's log, by the command line.
		for i := 0; i < 3; i++ {
			exportLines(t, env, "--org", "acme")
		}
		evs := exportLines(t, env, "--org", "acme", "--action", "audit.*")
		if len(evs) != 4 {
			t.Fatalf("export of audit.* events: %d, want 4 (this export and the 3 before)", len(evs))
		}
		if a := evs[0]["actor"].(map[string]any); a["type"] != "operator" || a["id"] != "cli" {
			t.Fatalf("export event's actor %v, want the command line", a)
		}
		if stdout, stderr, code := call(t, env, "audit", "checkpoint", "--all"); code != 0 || !strings.Contains(stdout, "org acme: signed head seq 4") {
			t.Fatalf("audit checkpoint --all: exit %d %q %q", code, stdout, stderr)
		}
		if stdout, _, code := call(t, env, "audit", "verify", "--all"); code != 0 || strings.Count(stdout, ": ok,") != 3 {
			t.Fatalf("audit verify --all before tampering: exit %d %q", code, stdout)
		}

		// Someone with access to acme's database edits an event: the last
		// byte of event 2's stored fields (before its 32-byte hash), in
		// the segment that holds it alone.
		db := orgDB(t, opts, env, "acme")
		edit := `UPDATE audit_segments SET events = CAST(substr(events, 1, length(events) - 33) || x'7e' || substr(events, length(events) - 31) AS BLOB)
	WHERE seq_start = 2 AND seq_end = 2`
		if opts.Driver == store.Postgres {
			edit = `UPDATE audit_segments SET events = overlay(events PLACING '\x7e'::bytea FROM length(events) - 32 FOR 1) WHERE seq_start = 2 AND seq_end = 2`
		}
		if res, err := db.ExecContext(context.Background(), edit); err != nil {
			t.Fatal(err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%d segments hold event 2 alone, want 1", n)
		}
		stdout, stderr, code = call(t, env, "audit", "verify", "--all")
		if code != 1 || !strings.Contains(stdout, "org acme: DOES NOT VERIFY at seq 2") || !strings.Contains(stdout, "org beta: ok") ||
			!strings.Contains(stderr, "1 audit log does not verify") {
			t.Fatalf("audit verify after tampering: exit %d %q %q", code, stdout, stderr)
		}

		// Bad calls: usage errors, nothing done.
		for _, args := range [][]string{
			{"audit", "export"},
			{"audit", "export", "--org", "acme", "--format", "xml"},
			{"audit", "export", "--org", "acme", "--since", "yesterday"},
			{"audit", "verify", "--org", "acme", "--all"},
			{"audit", "nosuch"},
		} {
			if _, stderr, code := call(t, env, args...); code != 2 || stderr == "" {
				t.Errorf("%v: exit %d %q, want a usage error", args, code, stderr)
			}
		}
		if _, stderr, code := call(t, env, "audit", "export", "--org", "nosuch"); code != 1 || !strings.Contains(stderr, "not found") {
			t.Errorf("export of an unknown org: exit %d %q", code, stderr)
		}
	})
}
