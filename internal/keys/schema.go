package keys

import "bulwark/internal/store"

// ControlSchema returns the tables of package keys in the control
// database, to be passed to store.Open:
//
//   - org_keys: every version of every org key, wrapped by the KEK
//     (purpose "data": the AES-256-GCM keyset of Seal and Open; purpose
//     "index": the HMAC-SHA256 keyset of BlindIndex; purpose "stream",
//     allowed from version 4: the AES-256-GCM-HKDF streaming keyset of
//     NewEncryptingWriter and NewReaderAt), with the id of the KEK that
//     wrapped it.
//   - keyring_meta: the KEK canary, a known value wrapped by the KEK that
//     NewRing unwraps to detect a wrong KEK at start.
//   - signing_keys (version 2): the keys of SigningKey and
//     VerificationKeys, wrapped by the KEK, one row per kid; at most one
//     key per purpose is current (retired_at NULL), which a partial unique
//     index enforces, so that concurrent first uses end with one key.
//   - org_key_use (version 3): per-org counts of key use (seals, opens,
//     unwraps, blind indexes) and the time of the last use, which
//     Ring.FlushUse adds to from every process's memory, so that Status
//     in any process (bulwark keys status) shows them.
//   - reencrypt_jobs (version 5): per org, the re-encryption to the data
//     key version of its last rotation, with the lease of the process
//     working on it and its counts (Reencryptor).
//   - version 4 lets org_keys hold purpose "stream". SQLite cannot change
//     a CHECK constraint, so the table is rebuilt the way SQLite's
//     documentation gives (create, copy, drop, rename), with secure_delete
//     on, so that the dropped table's pages, which hold wrapped keys, are
//     zeroed rather than left in free space where a later DestroyOrgKeys
//     would miss them; PostgreSQL replaces the constraint.
func ControlSchema() store.Schema {
	return store.Schema{Name: "keys", Scope: store.ControlScope, Migrations: []store.Migration{{
		Version: 1,
		Name:    "org_keys",
		SQLite: `CREATE TABLE org_keys (
	org_id     TEXT NOT NULL,
	purpose    TEXT NOT NULL CHECK (purpose IN ('data', 'index')),
	version    INTEGER NOT NULL CHECK (version > 0),
	kek_id     TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (org_id, purpose, version)
);
CREATE TABLE keyring_meta (
	name       TEXT PRIMARY KEY,
	kek_id     TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	updated_at TIMESTAMP NOT NULL
);`,
		Postgres: `CREATE TABLE org_keys (
	org_id     TEXT NOT NULL,
	purpose    TEXT NOT NULL CHECK (purpose IN ('data', 'index')),
	version    INTEGER NOT NULL CHECK (version > 0),
	kek_id     TEXT NOT NULL,
	wrapped    BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (org_id, purpose, version)
);
CREATE TABLE keyring_meta (
	name       TEXT PRIMARY KEY,
	kek_id     TEXT NOT NULL,
	wrapped    BYTEA NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);`,
	}, {
		Version: 2,
		Name:    "signing_keys",
		SQLite: `CREATE TABLE signing_keys (
	kid        TEXT PRIMARY KEY,
	purpose    TEXT NOT NULL CHECK (purpose IN ('access_token', 'file_link', 'audit_checkpoint')),
	alg        TEXT NOT NULL CHECK (alg IN ('HS512', 'EdDSA')),
	kek_id     TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at TIMESTAMP NOT NULL,
	retired_at TIMESTAMP,
	expires_at TIMESTAMP,
	CHECK ((retired_at IS NULL) = (expires_at IS NULL))
);
CREATE UNIQUE INDEX signing_keys_current ON signing_keys (purpose) WHERE retired_at IS NULL;`,
		Postgres: `CREATE TABLE signing_keys (
	kid        TEXT PRIMARY KEY,
	purpose    TEXT NOT NULL CHECK (purpose IN ('access_token', 'file_link', 'audit_checkpoint')),
	alg        TEXT NOT NULL CHECK (alg IN ('HS512', 'EdDSA')),
	kek_id     TEXT NOT NULL,
	wrapped    BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	retired_at TIMESTAMPTZ,
	expires_at TIMESTAMPTZ,
	CHECK ((retired_at IS NULL) = (expires_at IS NULL))
);
CREATE UNIQUE INDEX signing_keys_current ON signing_keys (purpose) WHERE retired_at IS NULL;`,
	}, {
		Version: 3,
		Name:    "org_key_use",
		SQLite: `CREATE TABLE org_key_use (
	org_id        TEXT PRIMARY KEY,
	seals         INTEGER NOT NULL DEFAULT 0,
	opens         INTEGER NOT NULL DEFAULT 0,
	unwraps       INTEGER NOT NULL DEFAULT 0,
	blind_indexes INTEGER NOT NULL DEFAULT 0,
	last_used_at  TIMESTAMP
);`,
		Postgres: `CREATE TABLE org_key_use (
	org_id        TEXT PRIMARY KEY,
	seals         BIGINT NOT NULL DEFAULT 0,
	opens         BIGINT NOT NULL DEFAULT 0,
	unwraps       BIGINT NOT NULL DEFAULT 0,
	blind_indexes BIGINT NOT NULL DEFAULT 0,
	last_used_at  TIMESTAMPTZ
);`,
	}, {
		Version: 4,
		Name:    "org_keys_stream",
		SQLite: `PRAGMA secure_delete = ON;
CREATE TABLE org_keys_v4 (
	org_id     TEXT NOT NULL,
	purpose    TEXT NOT NULL CHECK (purpose IN ('data', 'index', 'stream')),
	version    INTEGER NOT NULL CHECK (version > 0),
	kek_id     TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (org_id, purpose, version)
);
INSERT INTO org_keys_v4 (org_id, purpose, version, kek_id, wrapped, created_at)
SELECT org_id, purpose, version, kek_id, wrapped, created_at FROM org_keys;
DROP TABLE org_keys;
ALTER TABLE org_keys_v4 RENAME TO org_keys;`,
		Postgres: `ALTER TABLE org_keys DROP CONSTRAINT org_keys_purpose_check;
ALTER TABLE org_keys ADD CONSTRAINT org_keys_purpose_check CHECK (purpose IN ('data', 'index', 'stream'));`,
	}, withVersion(5, reencryptJobsMigration)}}
}

func withVersion(v int, m store.Migration) store.Migration {
	m.Version = v
	return m
}
