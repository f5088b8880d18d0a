package records

import (
	"strings"

	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// OrgSchema returns the tables of package records in every org database.
// To be passed to store.Open.
//
//   - collections: the definition of each collection (its fields as JSON:
//     names, types and flags, never data).
//   - records: one row per record; data is the sealed JSON object of its
//     fields; version counts its changes (the ETag).
//   - record_keys: one row per record and indexed field: key is the
//     order-preserving encoding of a non-sensitive value (clear) or the
//     blind index of a sensitive one; a field without a value has the key
//     0x00 when it is clear, and no row when it is sensitive.
func OrgSchema() store.Schema {
	return store.Schema{Name: "records", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version: 1,
		Name:    "collections_records",
		// On SQLite the index keys are a WITHOUT ROWID table: their rows
		// are small, and the primary key is then the table itself rather
		// than a second B-tree beside it (one insert per key, not two).
		SQLite:   strings.Replace(recordTables, "PRIMARY KEY (record_id, field)\n)", "PRIMARY KEY (record_id, field)\n) WITHOUT ROWID", 1),
		Postgres: strings.NewReplacer("BLOB", "BYTEA", "TIMESTAMP", "TIMESTAMPTZ").Replace(recordTables),
	}}}
}

const recordTables = `CREATE TABLE collections (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL UNIQUE,
	fields         TEXT NOT NULL,
	retention_days INTEGER NOT NULL,
	created_at     TIMESTAMP NOT NULL,
	updated_at     TIMESTAMP NOT NULL
);
CREATE TABLE records (
	id            TEXT PRIMARY KEY,
	collection_id TEXT NOT NULL REFERENCES collections (id),
	version       BIGINT NOT NULL,
	data          BLOB NOT NULL,
	created_at    TIMESTAMP NOT NULL,
	updated_at    TIMESTAMP NOT NULL
);
CREATE INDEX records_collection ON records (collection_id, id);
CREATE INDEX records_created ON records (collection_id, created_at);
CREATE TABLE record_keys (
	record_id     TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
	collection_id TEXT NOT NULL,
	field         TEXT NOT NULL,
	key           BLOB NOT NULL,
	PRIMARY KEY (record_id, field)
);
CREATE INDEX record_keys_lookup ON record_keys (collection_id, field, key, record_id);`

// Sealed lists the columns of sealed values this package keeps in org
// databases, for re-encryption after a key rotation.
func Sealed() []keys.Sealed {
	return []keys.Sealed{{
		Name: "records.data", Table: "records", Key: "id", Column: "data", ADColumn: "collection_id",
		AD: func(id, collectionID string) keys.AD { return recordAD(collectionID, id) },
	}}
}

// recordAD is where a record's sealed data lives.
func recordAD(collectionID, recordID string) keys.AD {
	return keys.AD{Table: "records", RowID: recordID, Field: collectionID}
}
