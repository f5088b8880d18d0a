// Package records is an org's own data: collections with typed fields and
// the records in them, in the org's own database.
//
// Every record is sealed as a whole with the org's data key (keys.Ring),
// its associated data binding the org, the table, the record id and the
// collection id, so a record copied to another row, collection or org does
// not open. A field is also kept outside the sealed value only when it is
// indexed: in clear when it is not sensitive (for filters and sort), as a
// keyed blind index when it is (equality filters only). Nothing else of a
// record is ever written in clear.
//
// Every change of a record and every read of a sensitive field in clear is
// recorded in the org's audit log in the same transaction. The package
// never decides who may do what: callers pass what the caller's role
// allows (the Sensitive flag of Get and List) after authz.Allowed.
package records
