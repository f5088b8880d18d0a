package identity

import (
	"strings"

	"bulwark/internal/store"
)

// tables is the SQLite text of the identity tables in the control
// database; pg turns it into PostgreSQL's.
//
//   - users: accounts and operators. The e-mail address and the name are
//     stored only sealed with the platform key (keys.PlatformID), the
//     address also as a blind index (HMAC) for lookups; the password as a
//     PHC string (argon2id, or an imported bcrypt / salted SHA-512 hash
//     until the next login); the TOTP secret sealed, with the last step
//     used (a code works once); failed logins and the lock.
//   - password_history: the hashes of earlier passwords (no reuse).
//   - recovery_codes: hashes of the unused TOTP recovery codes.
//   - sessions: one per login; idle and absolute expiry; revocation.
//   - refresh_tokens: hashes of a session's refresh tokens; a spent one
//     presented again revokes the session.
//   - email_tokens: hashes of single-use e-mailed tokens (verify, reset,
//     operator setup) with their expiry.
//   - mfa_challenges: hashes of the short-lived tokens between the password
//     and the second factor.
//   - api_keys: per org; the secret only hashed; role, expiry, last use.
const tables = `CREATE TABLE users (
	id                TEXT PRIMARY KEY,
	kind              TEXT NOT NULL CHECK (kind IN ('user', 'operator')),
	email_index       BLOB NOT NULL UNIQUE,
	email_sealed      BLOB NOT NULL,
	name_sealed       BLOB NOT NULL,
	password_hash     TEXT NOT NULL,
	password_set_at   TIMESTAMP NOT NULL,
	email_verified_at TIMESTAMP,
	totp_sealed       BLOB,
	totp_enabled_at   TIMESTAMP,
	totp_last_step    BIGINT NOT NULL DEFAULT 0,
	failed_logins     INTEGER NOT NULL DEFAULT 0,
	locked_until      TIMESTAMP,
	created_at        TIMESTAMP NOT NULL,
	updated_at        TIMESTAMP NOT NULL
);
CREATE TABLE password_history (
	user_id    TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, created_at);
CREATE TABLE recovery_codes (
	user_id TEXT NOT NULL,
	hash    BLOB NOT NULL,
	PRIMARY KEY (user_id, hash)
);
CREATE TABLE sessions (
	id                  TEXT PRIMARY KEY,
	user_id             TEXT NOT NULL,
	amr                 TEXT NOT NULL,
	created_at          TIMESTAMP NOT NULL,
	last_used_at        TIMESTAMP NOT NULL,
	idle_expires_at     TIMESTAMP NOT NULL,
	absolute_expires_at TIMESTAMP NOT NULL,
	revoked_at          TIMESTAMP,
	revoke_reason       TEXT NOT NULL DEFAULT '',
	ip                  TEXT NOT NULL,
	user_agent          TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE refresh_tokens (
	hash       BLOB PRIMARY KEY,
	session_id TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	spent_at   TIMESTAMP
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE TABLE email_tokens (
	hash       BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL,
	purpose    TEXT NOT NULL CHECK (purpose IN ('verify', 'reset', 'operator_setup')),
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at    TIMESTAMP
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
CREATE TABLE mfa_challenges (
	hash       BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at    TIMESTAMP
);
CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL,
	hash         BLOB NOT NULL,
	name         TEXT NOT NULL,
	role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
	created_by   TEXT NOT NULL,
	created_at   TIMESTAMP NOT NULL,
	expires_at   TIMESTAMP,
	last_used_at TIMESTAMP,
	revoked_at   TIMESTAMP
);
CREATE INDEX api_keys_org ON api_keys (org_id);`

func pg(s string) string {
	return strings.NewReplacer("BLOB", "BYTEA", "TIMESTAMP", "TIMESTAMPTZ").Replace(s)
}

// ControlSchema returns the tables of package identity in the control
// database.
func ControlSchema() store.Schema {
	return store.Schema{Name: "identity", Scope: store.ControlScope, Migrations: []store.Migration{{
		Version:  1,
		Name:     "accounts_sessions_api_keys",
		SQLite:   tables,
		Postgres: pg(tables),
	}, {
		Version:  2,
		Name:     "email_tokens_password_expired",
		SQLite:   expiredPurposeSQLite,
		Postgres: expiredPurposePostgres,
	}}}
}

// Migration 2 lets email_tokens hold the token that changes an expired
// password (purpose password_expired). SQLite cannot change a CHECK in
// place: the table is rebuilt.
const (
	expiredPurposeSQLite = `CREATE TABLE email_tokens_2 (
	hash       BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL,
	purpose    TEXT NOT NULL CHECK (purpose IN ('verify', 'reset', 'operator_setup', 'password_expired')),
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at    TIMESTAMP
);
INSERT INTO email_tokens_2 (hash, user_id, purpose, created_at, expires_at, used_at)
	SELECT hash, user_id, purpose, created_at, expires_at, used_at FROM email_tokens;
DROP TABLE email_tokens;
ALTER TABLE email_tokens_2 RENAME TO email_tokens;
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);`
	expiredPurposePostgres = `ALTER TABLE email_tokens DROP CONSTRAINT email_tokens_purpose_check;
ALTER TABLE email_tokens ADD CONSTRAINT email_tokens_purpose_check
	CHECK (purpose IN ('verify', 'reset', 'operator_setup', 'password_expired'));`
)
