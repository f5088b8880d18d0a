package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/config"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// testConfig is the default configuration on the storage of opts (a data
// directory of the test's own either way).
func testConfig(t *testing.T, opts store.Options) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if opts.DataDir != "" {
		cfg.DataDir = opts.DataDir
	}
	cfg.Database.Driver, cfg.Database.URL = string(opts.Driver), opts.URL
	return cfg
}

// The app wires accounts to orgs: a password change meets the policy of
// every org the user belongs to (the orgs service exists before the
// accounts that ask it).
func TestApp_PasswordChangeMeetsTheUsersOrgPolicies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		cfg := testConfig(t, opts)
		a, err := openApp(ctx, cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		// The server's hashes run in a hashing process, not in it.
		if pid := a.hashes.ProcessID(); pid == 0 || pid == os.Getpid() {
			t.Fatalf("hashing process id %d: want a process of its own", pid)
		}
		src := audit.Source{Actor: audit.Actor{Type: audit.ActorUser}, IP: "127.0.0.1"}
		const first = "a long enough passphrase 2026"
		u, err := a.ids.Signup(ctx, src, "ann@example.com", first, "Ann")
		if err != nil {
			t.Fatal(err)
		}
		o, err := a.orgs.CreateOwned(ctx, src, "Acme", "acme", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		p := a.orgs.DefaultPolicy()
		p.Password.MinLength = 40
		if _, err := a.orgs.SetPolicy(ctx, src, o.ID, p); err != nil {
			t.Fatal(err)
		}
		err = a.ids.ChangePassword(ctx, src, u.ID, "", first, "another passphrase of 2027 x")
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("a password shorter than the org's minimum: %v, want invalid", err)
		}
		if err := a.ids.ChangePassword(ctx, src, u.ID, "", first, "another passphrase of 2027 that is long enough"); err != nil {
			t.Fatal(err)
		}
	})
}

// A command's app hashes in its own process: it starts no hashing process
// for the little hashing it does, if any.
func TestApp_CommandsStartNoHashingProcess(t *testing.T) {
	cfg := testConfig(t, store.Options{Driver: store.SQLite})
	a, err := openAppWith(context.Background(), cfg, io.Discard, appOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if pid := a.hashes.ProcessID(); pid != 0 {
		t.Fatalf("a command's app has hashing process %d, want none", pid)
	}
	h, err := a.hashes.Hash(context.Background(), "a long enough passphrase 2026")
	if err != nil || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("Hash in a command's app: %q, %v", h, err)
	}
}
