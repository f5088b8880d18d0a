package org

import (
	"strings"

	"bulwark/internal/store"
)

// ControlSchema returns the tables of package org in the control
// database. To be passed to store.Open.
func ControlSchema() store.Schema {
	return store.Schema{Name: "org", Scope: store.ControlScope, Migrations: []store.Migration{{
		Version: 1,
		Name:    "orgs",
		SQLite: `CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	slug       TEXT NOT NULL,
	name       TEXT NOT NULL,
	status     TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX orgs_live_slug ON orgs (slug) WHERE status <> 'deleted';
CREATE INDEX orgs_updated_at ON orgs (updated_at);`,
		Postgres: `CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	slug       TEXT NOT NULL,
	name       TEXT NOT NULL,
	status     TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	deleted_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX orgs_live_slug ON orgs (slug) WHERE status <> 'deleted';
CREATE INDEX orgs_updated_at ON orgs (updated_at);`,
	}, {
		Version:  2,
		Name:     "members_invites_policies",
		SQLite:   membersTables,
		Postgres: strings.NewReplacer("BLOB", "BYTEA", "TIMESTAMP", "TIMESTAMPTZ").Replace(membersTables),
	}}}
}

// membersTables are an org's members (who has which role), its pending
// invites (the e-mail's blind index, never the address; the token's
// SHA-256, never the token) and its security policy (JSON, see Policy).
const membersTables = `CREATE TABLE org_members (
	org_id     TEXT NOT NULL REFERENCES orgs (id),
	user_id    TEXT NOT NULL,
	role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user ON org_members (user_id);
CREATE TABLE org_invites (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES orgs (id),
	email_index BLOB NOT NULL,
	role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
	token_hash  BLOB NOT NULL UNIQUE,
	invited_by  TEXT NOT NULL,
	created_at  TIMESTAMP NOT NULL,
	expires_at  TIMESTAMP NOT NULL,
	accepted_at TIMESTAMP,
	accepted_by TEXT
);
CREATE INDEX org_invites_org ON org_invites (org_id, id);
CREATE TABLE org_policies (
	org_id     TEXT PRIMARY KEY REFERENCES orgs (id),
	policy     TEXT NOT NULL,
	updated_at TIMESTAMP NOT NULL
);`

// OrgSchema returns the tables of package org in every org database:
// org_meta names the org the database belongs to, written once at
// creation and checked at every open.
func OrgSchema() store.Schema {
	return store.Schema{Name: "org", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version:  1,
		Name:     "org_meta",
		SQLite:   `CREATE TABLE org_meta (org_id TEXT PRIMARY KEY, created_at TIMESTAMP NOT NULL)`,
		Postgres: `CREATE TABLE org_meta (org_id TEXT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)`,
	}}}
}
