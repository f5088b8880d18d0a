package org

import "bulwark/internal/store"

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
	}}}
}

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
