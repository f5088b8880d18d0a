package audit

import (
	"strings"

	"bulwark/internal/store"
)

// eventColumnsDDL declares the columns of an event that its append is
// given, after its id, alike in the log (audit_events) and in the inbox;
// eventHashColumnsDDL, the two that chaining adds. Every migration that
// creates one of those tables takes them from here.
const (
	eventColumnsDDL = `	time          TIMESTAMP NOT NULL,
	actor_type    TEXT NOT NULL,
	actor_id      TEXT NOT NULL,
	action        TEXT NOT NULL,
	resource_type TEXT NOT NULL,
	resource_id   TEXT NOT NULL,
	outcome       TEXT NOT NULL,
	ip            TEXT NOT NULL,
	user_agent    TEXT NOT NULL,
	request_id    TEXT NOT NULL,
	details       TEXT NOT NULL`
	eventHashColumnsDDL = `	prev_hash     BLOB NOT NULL,
	hash          BLOB NOT NULL`
)

// eventsTable is the log's table and head, the same in the control
// database (the control-plane log) and in every org database (the org's
// log). audit_head is one row: the last seq and its hash (the row every
// append locks, so that seqs are gapless under concurrent writers), and
// the base: the seq and hash of the last event removed by retention (0 and
// empty while none was).
const eventsTable = `CREATE TABLE audit_events (
	seq           INTEGER PRIMARY KEY,
	id            TEXT NOT NULL UNIQUE,
` + eventColumnsDDL + `,
` + eventHashColumnsDDL + `
);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id, seq);
CREATE INDEX audit_events_outcome ON audit_events (outcome, seq);
CREATE TABLE audit_head (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	seq       BIGINT NOT NULL,
	hash      BLOB NOT NULL,
	base_seq  BIGINT NOT NULL,
	base_hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash, base_seq, base_hash) VALUES (1, 0, X'', 0, X'');`

// outcomeTimeIndex adds the time to the outcome index (migration 2). A
// query for an outcome within a time window ("denied, last week") walks
// the outcome's events newest first; with the time in the index entry,
// SQLite and PostgreSQL test the window there instead of reading every
// newer row of that outcome. Over a million events, a week a few weeks
// back took up to 0.3 s on SQLite and 0.75 s on PostgreSQL without it,
// and under 0.04 s with it.
const outcomeTimeIndex = `DROP INDEX audit_events_outcome;
CREATE INDEX audit_events_outcome ON audit_events (outcome, seq, time);`

// headPrev gives the head row the previous event's hash (migration 3):
// on PostgreSQL, the one statement that appends an event
// (appendPostgresSQL) sets it with the new seq and hash, and inserts the
// event with it. SQLite's appends do not use it; it is there so that the
// two schemas stay one. Migration 7 drops it.
const headPrev = `ALTER TABLE audit_head ADD COLUMN prev BLOB NOT NULL DEFAULT X'';`

// leanIndexes drops what no query reads (migration 4): the unique index
// of the event id (events are found by seq; the id, a UUIDv7, is for
// people and exports) and the time in the outcome index (a window is a
// seq range now, see window.go). Every event pays for each index entry in
// its append, and on SQLite inside the one writer's time. SQLite cannot
// drop a UNIQUE column constraint: the table is copied into one without
// it, once.
const leanIndexesSQLite = `CREATE TABLE audit_events_lean (
	seq           INTEGER PRIMARY KEY,
	id            TEXT NOT NULL,
` + eventColumnsDDL + `,
` + eventHashColumnsDDL + `
);
INSERT INTO audit_events_lean (seq, id, time, actor_type, actor_id, action, resource_type, resource_id, outcome, ip, user_agent,
	request_id, details, prev_hash, hash)
SELECT seq, id, time, actor_type, actor_id, action, resource_type, resource_id, outcome, ip, user_agent,
	request_id, details, prev_hash, hash FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_lean RENAME TO audit_events;
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id, seq);
CREATE INDEX audit_events_outcome ON audit_events (outcome, seq);`

const leanIndexesPostgres = `ALTER TABLE audit_events DROP CONSTRAINT audit_events_id_key;
DROP INDEX audit_events_outcome;
CREATE INDEX audit_events_outcome ON audit_events (outcome, seq);`

// dropTimeIndex drops the index of event times (migration 5): a query's
// time window is found by bisection over seqs (window.go), about twenty
// reads by primary key, and retention's one lookup walks the oldest events
// by seq, the ones it removes. Every append paid for the index, on SQLite
// inside the one writer's time.
const dropTimeIndex = `DROP INDEX audit_events_time;`

// inbox is where PostgreSQL transactions leave their events (migration
// 6): one row per event, without seq or hashes, written with the COMMIT;
// chaining (chain.go) moves them into audit_events in batches. n orders
// them as they were inserted. SQLite chains each event as it is written
// and leaves the table empty; it is there so that the two schemas stay
// one.
const inboxSQLite = `CREATE TABLE audit_inbox (
	n             INTEGER PRIMARY KEY,
	id            TEXT NOT NULL,
` + eventColumnsDDL + `
);`

var inboxPostgres = strings.NewReplacer("n             INTEGER PRIMARY KEY", "n             BIGSERIAL PRIMARY KEY",
	"TIMESTAMP", "TIMESTAMPTZ").Replace(inboxSQLite)

// segments moves the log into segments (migration 7; segment.go): one
// row per commit, the events' records in it, and a bloom per block of
// events (bloom.go) in place of the four indexes of every event. Each
// stored event becomes a segment of its own, its record built here from
// its columns as segment.go encodes it (the time in its hashed form, every
// field length-prefixed), so that its stored hash still checks; the
// blooms are built by the first query or indexing of the log. The inbox
// keeps each event as one value, its fields encoded as in a record
// (encodeFields): on PostgreSQL the events waiting in it are converted,
// in order, and its sequence set past them; SQLite's is always empty.
// The head's prev (migration 3) goes: nothing reads it.
var segmentsSQLite = `CREATE TABLE audit_segments (
	seq_start INTEGER PRIMARY KEY,
	seq_end   INTEGER NOT NULL,
	events    BLOB NOT NULL
);
CREATE TABLE audit_blooms (
	block INTEGER PRIMARY KEY,
	bits  BLOB NOT NULL
);
INSERT INTO audit_segments (seq_start, seq_end, events)
SELECT seq, seq, CAST(unhex(printf('%08x', length(b))) || b || hash AS BLOB) FROM (SELECT seq, hash, CAST(unhex(printf('%016x', seq))` +
	sqliteField("id") + sqliteField(`substr(time, 1, 10) || 'T' || substr(time, 12, 8) || '.' ||
		substr(CASE WHEN substr(time, 20, 1) = '.' THEN substr(time, 21, length(time) - 26) ELSE '' END || '000000', 1, 6) || 'Z'`) +
	sqliteField("actor_type") + sqliteField("actor_id") + sqliteField("action") + sqliteField("resource_type") +
	sqliteField("resource_id") + sqliteField("outcome") + sqliteField("ip") + sqliteField("user_agent") +
	sqliteField("request_id") + sqliteField("details") + ` AS BLOB) AS b FROM audit_events) AS e;
DROP TABLE audit_events;
ALTER TABLE audit_head DROP COLUMN prev;
DROP TABLE audit_inbox;
CREATE TABLE audit_inbox (
	n      INTEGER PRIMARY KEY,
	fields BLOB NOT NULL
);`

var segmentsPostgres = `CREATE TABLE audit_segments (
	seq_start BIGINT PRIMARY KEY,
	seq_end   BIGINT NOT NULL,
	events    BYTEA NOT NULL
);
CREATE TABLE audit_blooms (
	block BIGINT PRIMARY KEY,
	bits  BYTEA NOT NULL
);
INSERT INTO audit_segments (seq_start, seq_end, events)
SELECT seq, seq, int4send(length(b)) || b || hash FROM (SELECT seq, hash, int8send(seq)` +
	postgresField(`to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`, true) +
	postgresField("actor_type", false) + postgresField("actor_id", false) + postgresField("action", false) +
	postgresField("resource_type", false) + postgresField("resource_id", false) + postgresField("outcome", false) +
	postgresField("ip", false) + postgresField("user_agent", false) + postgresField("request_id", false) +
	postgresField("details", false) + ` AS b FROM audit_events) AS e;
DROP TABLE audit_events;
ALTER TABLE audit_head DROP COLUMN prev;
CREATE TABLE audit_inbox_fields (
	n      BIGSERIAL PRIMARY KEY,
	fields BYTEA NOT NULL
);
INSERT INTO audit_inbox_fields (n, fields)
SELECT n, ''::bytea` + postgresField(`to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`, true) +
	postgresField("actor_type", false) + postgresField("actor_id", false) + postgresField("action", false) +
	postgresField("resource_type", false) + postgresField("resource_id", false) + postgresField("outcome", false) +
	postgresField("ip", false) + postgresField("user_agent", false) + postgresField("request_id", false) +
	postgresField("details", false) + ` FROM audit_inbox;
SELECT setval(pg_get_serial_sequence('audit_inbox_fields', 'n'), COALESCE((SELECT MAX(n) FROM audit_inbox_fields), 0) + 1, false);
DROP TABLE audit_inbox;
ALTER TABLE audit_inbox_fields RENAME TO audit_inbox;`

// inboxUnkeyed drops the inbox's primary key (migration 8): every
// append on PostgreSQL wrote an entry of that one index, which all the
// log's appending transactions share (measured with pgbench, 32 clients,
// the insert sent with the COMMIT: 16% of the transaction's throughput
// with the key, 12.5% with the sequence's value and no index, 11% with
// neither). n stays, from its sequence, for chaining to take events in
// the order they were appended. SQLite's n is the rowid, no index: there
// is nothing to do.
const inboxUnkeyedSQLite = `-- SQLite's inbox has no index (n is the rowid).`

const inboxUnkeyedPostgres = `DO $$
DECLARE
	pk text;
BEGIN
	SELECT conname INTO pk FROM pg_constraint WHERE conrelid = 'audit_inbox'::regclass AND contype = 'p';
	IF pk IS NOT NULL THEN
		EXECUTE format('ALTER TABLE audit_inbox DROP CONSTRAINT %I', pk);
	END IF;
END $$;
DO $$
BEGIN
	ALTER TABLE audit_segments ALTER COLUMN events SET COMPRESSION lz4;
	ALTER TABLE audit_blooms ALTER COLUMN bits SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;
END $$;`

// sqliteField is the SQLite expression of a text field's part of a
// record: its length in bytes (4, big-endian), then its bytes. (SQLite's
// || makes text of blobs, keeping every byte; the record is cast back to
// a blob, whose length counts bytes.)
func sqliteField(x string) string {
	return "\n\t|| unhex(printf('%08x', length(CAST((" + x + ") AS BLOB)))) || CAST((" + x + ") AS BLOB)"
}

// postgresField is sqliteField on PostgreSQL; withID puts the event id
// before x (the id comes first in a record, the time second).
func postgresField(x string, withID bool) string {
	f := func(x string) string {
		return "\n\t|| int4send(octet_length(" + x + ")) || convert_to(" + x + ", 'UTF8')"
	}
	if withID {
		return f("id") + f(x)
	}
	return f(x)
}

// pg turns the SQLite text into PostgreSQL's.
func pg(s string) string {
	return strings.NewReplacer("seq           INTEGER PRIMARY KEY", "seq           BIGINT PRIMARY KEY", "BLOB", "BYTEA", "TIMESTAMP", "TIMESTAMPTZ", "X''", "''::bytea").Replace(s)
}

const checkpointsTable = `CREATE TABLE audit_checkpoints (
	log_id     TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	hash       BLOB NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('periodic', 'on_demand', 'retention')),
	created_at TIMESTAMP NOT NULL,
	kid        TEXT NOT NULL,
	signature  BLOB NOT NULL,
	PRIMARY KEY (log_id, seq, kind)
);`

// ControlSchema returns the tables of package audit in the control
// database: the control-plane log (audit_events, audit_head) and
// audit_checkpoints, the signed heads of every log (the control log's
// and each org's), kept apart from the logs they vouch for so that
// replacing or truncating an org's whole database is detected.
func ControlSchema() store.Schema {
	return store.Schema{Name: "audit", Scope: store.ControlScope, Migrations: []store.Migration{{
		Version:  1,
		Name:     "audit_log_and_checkpoints",
		SQLite:   eventsTable + "\n" + checkpointsTable,
		Postgres: pg(eventsTable + "\n" + checkpointsTable),
	}, {
		Version: 2,
		Name:    "audit_events_outcome_time",
		SQLite:  outcomeTimeIndex,
	}, {
		Version:  3,
		Name:     "audit_head_prev",
		SQLite:   headPrev,
		Postgres: pg(headPrev),
	}, {
		Version:  4,
		Name:     "audit_events_lean_indexes",
		SQLite:   leanIndexesSQLite,
		Postgres: leanIndexesPostgres,
	}, {
		Version:  5,
		Name:     "audit_events_no_time_index",
		SQLite:   dropTimeIndex,
		Postgres: dropTimeIndex,
	}, {
		Version:  6,
		Name:     "audit_inbox",
		SQLite:   inboxSQLite,
		Postgres: inboxPostgres,
	}, {
		Version:  7,
		Name:     "audit_segments",
		SQLite:   segmentsSQLite,
		Postgres: segmentsPostgres,
	}, {
		Version:  8,
		Name:     "audit_inbox_unkeyed_lz4",
		SQLite:   inboxUnkeyedSQLite,
		Postgres: inboxUnkeyedPostgres,
	}}}
}

// OrgSchema returns the tables of package audit in every org database:
// the org's log.
func OrgSchema() store.Schema {
	return store.Schema{Name: "audit", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version:  1,
		Name:     "audit_log",
		SQLite:   eventsTable,
		Postgres: pg(eventsTable),
	}, {
		Version: 2,
		Name:    "audit_events_outcome_time",
		SQLite:  outcomeTimeIndex,
	}, {
		Version:  3,
		Name:     "audit_head_prev",
		SQLite:   headPrev,
		Postgres: pg(headPrev),
	}, {
		Version:  4,
		Name:     "audit_events_lean_indexes",
		SQLite:   leanIndexesSQLite,
		Postgres: leanIndexesPostgres,
	}, {
		Version:  5,
		Name:     "audit_events_no_time_index",
		SQLite:   dropTimeIndex,
		Postgres: dropTimeIndex,
	}, {
		Version:  6,
		Name:     "audit_inbox",
		SQLite:   inboxSQLite,
		Postgres: inboxPostgres,
	}, {
		Version:  7,
		Name:     "audit_segments",
		SQLite:   segmentsSQLite,
		Postgres: segmentsPostgres,
	}, {
		Version:  8,
		Name:     "audit_inbox_unkeyed_lz4",
		SQLite:   inboxUnkeyedSQLite,
		Postgres: inboxUnkeyedPostgres,
	}}}
}
