package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulwark/internal/config"
	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestKeysCommands_RotateAndShredOnBothDrivers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		env := storageEnv(t, opts)
		if _, stderr, code := call(t, env, "org", "create", "--name", "Acme", "--slug", "acme"); code != 0 {
			t.Fatalf("org create: %s", stderr)
		}
		type status struct {
			KEK   string
			Items []struct {
				Org     string
				Primary int                     `json:"primary_data_key_version"`
				Data    []struct{ Version int } `json:"data_keys"`
			}
			Reencryptions []struct {
				Org      string
				Version  int        `json:"data_key_version"`
				Finished *time.Time `json:"finished_at"`
			}
		}
		readStatus := func() status {
			t.Helper()
			stdout, stderr, code := call(t, env, "keys", "status", "--json")
			if code != 0 {
				t.Fatalf("keys status: exit %d %s", code, stderr)
			}
			var s status
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatalf("keys status --json printed %q", stdout)
			}
			return s
		}
		s := readStatus()
		if len(s.Items) != 1 || s.Items[0].Org != "acme" || s.Items[0].Primary != 1 {
			t.Fatalf("status after create: %+v", s)
		}

		if stdout, stderr, code := call(t, env, "keys", "rotate", "--org", "acme", "--no-wait"); code != 0 || !strings.Contains(stdout, "version 2") {
			t.Fatalf("keys rotate: exit %d %q %q", code, stdout, stderr)
		}
		if s = readStatus(); s.Items[0].Primary != 2 || len(s.Items[0].Data) != 2 {
			t.Fatalf("status after rotate: %+v", s)
		}
		// --no-wait leaves the re-encryption recorded, unfinished; keys
		// reencrypt finishes it.
		if len(s.Reencryptions) != 1 || s.Reencryptions[0].Org != "acme" || s.Reencryptions[0].Version != 2 || s.Reencryptions[0].Finished != nil {
			t.Fatalf("re-encryptions after rotate --no-wait: %+v; want one running to version 2", s.Reencryptions)
		}
		if stdout, stderr, code := call(t, env, "keys", "reencrypt"); code != 0 || !strings.Contains(stdout, "org acme: 0 values re-encrypted with data key version 2") {
			t.Fatalf("keys reencrypt: exit %d %q %q", code, stdout, stderr)
		}
		if s = readStatus(); len(s.Reencryptions) != 1 || s.Reencryptions[0].Finished == nil {
			t.Fatalf("re-encryptions after keys reencrypt: %+v; want it finished", s.Reencryptions)
		}
		if stdout, _, code := call(t, env, "keys", "reencrypt"); code != 0 || !strings.Contains(stdout, "no re-encryption to do") {
			t.Fatalf("keys reencrypt with nothing to do: exit %d %q", code, stdout)
		}
		// Without --no-wait, rotate runs it at once.
		if stdout, stderr, code := call(t, env, "keys", "rotate", "--org", "acme"); code != 0 || !strings.Contains(stdout, "re-encrypted with data key version 3") {
			t.Fatalf("keys rotate: exit %d %q %q", code, stdout, stderr)
		}
		if s = readStatus(); s.Items[0].Primary != 3 || len(s.Reencryptions) != 1 || s.Reencryptions[0].Version != 3 || s.Reencryptions[0].Finished == nil {
			t.Fatalf("status after the second rotate: %+v", s)
		}

		oldKEK := s.KEK
		stdout, stderr, code := call(t, env, "keys", "rotate-kek")
		// Data key versions 1 to 3, the index key and the stream key, and the
		// platform's three keys (account data).
		if code != 0 || !strings.Contains(stdout, "re-wrapped 8 keys") {
			t.Fatalf("keys rotate-kek: exit %d %q %q", code, stdout, stderr)
		}
		if s = readStatus(); s.KEK == oldKEK || s.Items[0].Primary != 3 {
			t.Fatalf("status after rotate-kek: %+v (old KEK %s)", s, oldKEK)
		}

		if _, stderr, code := call(t, env, "keys", "rotate", "--org", "nosuch"); code != 1 || !strings.Contains(stderr, "not found") {
			t.Fatalf("rotate of an unknown org: exit %d %q", code, stderr)
		}
		if _, _, code := call(t, env, "keys", "rotate"); code != 2 {
			t.Fatalf("rotate without --org: exit %d, want 2", code)
		}

		// Deleting the org destroys its keys.
		if _, stderr, code := call(t, env, "org", "delete", "acme"); code != 0 {
			t.Fatalf("org delete: %s", stderr)
		}
		if s = readStatus(); len(s.Items) != 0 {
			t.Fatalf("keys left after the org was deleted: %+v", s)
		}
	})
}

// TestKeysStatus_ShowsUseCountedByAnotherProcess seals through one app (as
// the server would), closes it, and reads the counts with the CLI.
func TestKeysStatus_ShowsUseCountedByAnotherProcess(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		if opts.DataDir == "" {
			opts.DataDir = t.TempDir()
		}
		cfg := config.Default()
		cfg.DataDir = opts.DataDir
		cfg.Database.Driver, cfg.Database.URL = string(opts.Driver), opts.URL
		a, err := openApp(ctx, cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		o, err := a.orgs.Create(ctx, "Acme", "acme")
		if err != nil {
			a.Close()
			t.Fatal(err)
		}
		before := time.Now().UTC().Add(-time.Second)
		ad := keys.AD{Table: "notes", RowID: "n1", Field: "body"}
		var ct []byte
		for i := 0; i < 3; i++ {
			if ct, err = a.ring.Seal(ctx, o.ID, ad, []byte("secret")); err != nil {
				a.Close()
				t.Fatal(err)
			}
		}
		if _, err := a.ring.Open(ctx, o.ID, ad, ct); err != nil {
			a.Close()
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}

		env := storageEnv(t, opts)
		stdout, stderr, code := call(t, env, "keys", "status", "--json")
		if code != 0 {
			t.Fatalf("keys status: exit %d %s", code, stderr)
		}
		var s struct {
			Items []struct {
				Org      string
				Seals    uint64     `json:"seals"`
				Opens    uint64     `json:"opens"`
				Unwraps  uint64     `json:"unwraps"`
				Blind    *uint64    `json:"blind_indexes"`
				LastUsed *time.Time `json:"last_used_at"`
			}
		}
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("keys status --json printed %q", stdout)
		}
		if len(s.Items) != 1 {
			t.Fatalf("status: %s", stdout)
		}
		it := s.Items[0]
		if it.Org != "acme" || it.Seals != 3 || it.Opens != 1 || it.Unwraps != 1 || it.Blind == nil || *it.Blind != 0 ||
			it.LastUsed == nil || it.LastUsed.Before(before) || it.LastUsed.After(time.Now().Add(time.Second)) {
			t.Fatalf("status after 3 seals and 1 open in another process: %s", stdout)
		}

		stdout, stderr, code = call(t, env, "keys", "status")
		if code != 0 {
			t.Fatalf("keys status: exit %d %s", code, stderr)
		}
		lines := strings.Split(stdout, "\n")
		if len(lines) < 3 || !strings.Contains(lines[1], "SEALS") || !strings.Contains(lines[1], "LAST USED") ||
			!strings.Contains(lines[2], "acme") || !strings.Contains(lines[2], it.LastUsed.UTC().Format("2006-01-02T15:04")) {
			t.Fatalf("keys status printed %q", stdout)
		}
	})
}

func TestKeys_AKEKFileOthersCanReadStopsEveryCommand(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"BULWARK_DATA_DIR": dir}
	if _, stderr, code := call(t, env, "org", "list"); code != 0 {
		t.Fatalf("org list: %s", stderr)
	}
	kek := filepath.Join(dir, "keys", "kek.json")
	if err := os.Chmod(kek, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"org", "list"}, {"keys", "status"}, {"serve", "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"}} {
		_, stderr, code := call(t, env, args...)
		if code != 1 || !strings.Contains(stderr, "chmod 600") || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("%v with a world-readable KEK file: exit %d %q", args, code, stderr)
		}
	}
	// A KEK file replaced by another key is detected by the canary.
	if err := os.Remove(kek); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := call(t, env, "org", "list")
	if code != 1 || !strings.Contains(stderr, "wrong KEK") {
		t.Fatalf("with a new KEK file: exit %d %q", code, stderr)
	}
}

func TestKeys_VaultProviderThatIsDownStopsStartWithOneLine(t *testing.T) {
	env := map[string]string{
		"BULWARK_DATA_DIR":            t.TempDir(),
		"BULWARK_KEYS_PROVIDER":       "vault",
		"BULWARK_KEYS_VAULT_ADDRESS":  "http://127.0.0.1:1",
		"BULWARK_KEYS_VAULT_TOKEN":    "hvs.not-a-real-token",
		"BULWARK_KEYS_VAULT_KEY_PATH": "transit/keys/bulwark",
	}
	_, stderr, code := call(t, env, "org", "list")
	if code != 1 || !strings.Contains(stderr, "keys.provider vault") || !strings.Contains(stderr, "unavailable") ||
		strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "hvs.not-a-real-token") {
		t.Fatalf("with Vault down: exit %d %q", code, stderr)
	}
}

func TestKeys_CloudKMSThatIsDownStopsStartWithOneLine(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\naws_secret_access_key = not-a-real-secret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		provider string
		env      map[string]string
	}{
		{"awskms", map[string]string{
			"BULWARK_KEYS_KMS_KEY_URI":          "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/0b5e1c9e-1d5c-4a8e-9f1e-2c3d4e5f6a7b",
			"BULWARK_KEYS_KMS_CREDENTIALS_FILE": creds,
		}},
		{"gcpkms", map[string]string{
			"BULWARK_KEYS_KMS_KEY_URI": "gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
		}},
	} {
		env := map[string]string{
			"BULWARK_DATA_DIR":          t.TempDir(),
			"BULWARK_KEYS_PROVIDER":     c.provider,
			"BULWARK_KEYS_KMS_ENDPOINT": "http://127.0.0.1:1",
		}
		for k, v := range c.env {
			env[k] = v
		}
		_, stderr, code := call(t, env, "org", "list")
		if code != 1 || !strings.Contains(stderr, "keys.provider "+c.provider) || strings.Count(stderr, "\n") != 1 ||
			strings.Contains(stderr, "not-a-real-secret-key") {
			t.Errorf("%s down: exit %d %q; want exit 1 with one line naming the provider", c.provider, code, stderr)
		}
	}
}
