package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestUserAndOperatorCommands(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		env := storageEnv(t, opts)
		bc, _ := bcrypt.GenerateFromPassword([]byte("imported password 1"), 4)
		dir := t.TempDir()
		good := filepath.Join(dir, "users.jsonl")
		os.WriteFile(good, []byte(`{"email":"a@example.com","name":"A","password_hash":"`+string(bc)+`","email_verified":true}
{"email":"b@example.com","name":"B","password_hash":"sha512$s$`+strings.Repeat("ab", 64)+`"}
`), 0o600)
		bad := filepath.Join(dir, "bad.jsonl")
		os.WriteFile(bad, []byte(`{"email":"c@example.com","name":"C","password_hash":"plain"}
`), 0o600)

		if stdout, stderr, code := call(t, env, "user", "import", "--file", good, "--dry-run"); code != 0 || !strings.Contains(stdout, "2 accounts would be imported") {
			t.Fatalf("dry run: exit %d %q %q", code, stdout, stderr)
		}
		if _, stderr, code := call(t, env, "user", "import", "--file", bad); code != 1 || !strings.Contains(stderr, "line 1") || strings.Contains(stderr, "plain") {
			t.Fatalf("bad file: exit %d %q", code, stderr)
		}
		if stdout, stderr, code := call(t, env, "user", "import", "--file", good); code != 0 || !strings.Contains(stdout, "imported 2 accounts, skipped 0") {
			t.Fatalf("import: exit %d %q %q", code, stdout, stderr)
		}
		if stdout, _, code := call(t, env, "user", "import", "--file", good); code != 0 || !strings.Contains(stdout, "imported 0 accounts, skipped 2") {
			t.Fatalf("second import: exit %d %q", code, stdout)
		}
		if stdout, stderr, code := call(t, env, "user", "unlock", "--email", "a@example.com"); code != 0 || !strings.Contains(stdout, "unlocked") {
			t.Fatalf("unlock: exit %d %q %q", code, stdout, stderr)
		}
		if _, stderr, code := call(t, env, "user", "unlock", "--email", "nobody@example.com"); code != 1 || !strings.Contains(stderr, "no account") {
			t.Fatalf("unlock of an unknown address: exit %d %q", code, stderr)
		}
		stdout, stderr, code := call(t, env, "operator", "create", "--email", "oncall@example.com")
		if code != 0 || !strings.Contains(stdout, "https://127.0.0.1:9443/ops/v1/setup?token=") {
			t.Fatalf("operator create: exit %d %q %q", code, stdout, stderr)
		}
		if _, stderr, code := call(t, env, "operator", "create", "--email", "oncall@example.com"); code != 1 || !strings.Contains(stderr, "exists") {
			t.Fatalf("operator create twice: exit %d %q", code, stderr)
		}
		for _, args := range [][]string{{"user"}, {"user", "import"}, {"user", "unlock"}, {"operator"}, {"operator", "create"}, {"user", "nuke"}} {
			if _, _, code := call(t, env, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2", args, code)
			}
		}
	})
}
