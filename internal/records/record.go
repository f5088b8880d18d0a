package records

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// Record is one record as a caller sees it.
type Record struct {
	ID        string
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Fields    values
	// Masked are the sensitive fields left out for a caller who may not
	// read them.
	Masked []string
}

// MarshalJSON writes the record as the API shows it: id, created_at,
// updated_at, then the fields, and "masked" when some were left out.
func (r Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	id, _ := json.Marshal(r.ID)
	b.Write(id)
	b.WriteString(`,"created_at":"`)
	b.WriteString(r.CreatedAt.UTC().Format(time.RFC3339Nano))
	b.WriteString(`","updated_at":"`)
	b.WriteString(r.UpdatedAt.UTC().Format(time.RFC3339Nano))
	b.WriteByte('"')
	names := make([]string, 0, len(r.Fields))
	for name := range r.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b.WriteString(`,"`)
		b.WriteString(name) // field names are [a-z0-9_]
		b.WriteString(`":`)
		b.Write(r.Fields[name])
	}
	if len(r.Masked) > 0 {
		b.WriteString(`,"masked":`)
		m, _ := json.Marshal(r.Masked)
		b.Write(m)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// ETag is the record's entity tag (a quoted version).
func (r Record) ETag() string { return `"` + strconv.FormatInt(r.Version, 10) + `"` }

// ParseETag reads an If-Match value as a version; ok is false for a value
// that is not one of ours (it matches nothing).
func ParseETag(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	v, err := strconv.ParseInt(s[1:len(s)-1], 10, 64)
	return v, err == nil && v > 0
}

var errNoRecord = apperr.Errorf(apperr.NotFound, "record not found")

// errStale is the answer to a write whose If-Match is not the record's.
var errStale = apperr.Errorf(apperr.PreconditionFailed, "the record has changed since you read it (If-Match does not match its ETag)")

func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && len(id) == 36 && u.String() == id
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Create adds a record to the collection, sealed, with its index keys,
// audited in the same transaction. Callers with records.write may call
// it. Returns not_found for an unknown collection, invalid naming the bad
// field.
func (s *Service) Create(ctx context.Context, src audit.Source, orgID, collection string, body []byte) (Record, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Record{}, err
	}
	rec := Record{ID: id.String(), Version: 1}
	// Validating, sealing and computing the index keys is CPU work: it is
	// done before the transaction, against the collection as known then,
	// so that the org's one writer (SQLite) only runs the statements. The
	// transaction checks that the collection is still that one (same id,
	// same fields) and otherwise does it all again against the
	// collection it reads; so does a request that the known collection
	// refuses, which the current one might take.
	var row createRow
	ready := false
	if c, err := s.collection(ctx, orgID, collection); err == nil {
		if row, err = s.prepareCreate(ctx, orgID, c, rec.ID, body); err == nil {
			ready = true
		}
	}
	err = s.inTx(ctx, orgID, func(tx *store.Tx) error {
		if ready {
			same, err := sameCollection(ctx, tx, row.c)
			if err != nil {
				return err
			}
			ready = same
		}
		if !ready {
			c, err := findCollection(ctx, tx, collection)
			if err != nil {
				return err
			}
			if row, err = s.prepareCreate(ctx, orgID, c, rec.ID, body); err != nil {
				return err
			}
		}
		rec.CreatedAt, rec.UpdatedAt = tx.Now, tx.Now
		// The record's id is new: nothing in this transaction reads the
		// row back, so on PostgreSQL it goes with the COMMIT, as do its
		// index keys and its event (one round trip for the three).
		if err := tx.ExecAtCommit(ctx, `INSERT INTO records (id, collection_id, version, data, created_at, updated_at)
VALUES ($1, $2, 1, $3, $4, $4)`, rec.ID, row.c.ID, row.sealed, tx.Now); err != nil {
			return err
		}
		if err := insertKeys(ctx, tx, row.c.ID, rec.ID, row.keys, false); err != nil {
			return err
		}
		return s.event(ctx, tx, orgID, src.Event("record.created", audit.Resource{Type: "record", ID: rec.ID}, audit.Success,
			map[string]string{"collection": row.c.Name}))
	})
	if err != nil {
		return Record{}, err
	}
	rec.Fields = row.fields
	return rec, nil
}

// createRow is what creating a record writes, worked out from its body
// and its collection.
type createRow struct {
	c      Collection
	fields values
	sealed []byte
	keys   []fieldKey
}

// prepareCreate validates body against c and seals it as record id's.
func (s *Service) prepareCreate(ctx context.Context, orgID string, c Collection, id string, body []byte) (createRow, error) {
	row := createRow{c: c}
	var err error
	if row.fields, err = parseBody(c, body, false); err != nil {
		return createRow{}, err
	}
	if row.sealed, err = s.seal(ctx, orgID, c, id, row.fields); err != nil {
		return createRow{}, err
	}
	if row.keys, err = s.keys(ctx, orgID, c, row.fields); err != nil {
		return createRow{}, err
	}
	return row, nil
}

// sameCollection reports whether c, as read from the database before,
// is still the collection of its name in tx: the same id and the same
// fields, byte for byte as stored. (Not its change time: the clocks of two
// nodes need not agree, and a test's clock stands still.)
func sameCollection(ctx context.Context, tx *store.Tx, c Collection) (bool, error) {
	if c.stored == "" {
		return false, nil
	}
	var id, fields string
	err := tx.QueryRowOnce(ctx, "SELECT id, fields FROM collections WHERE name = $1", c.Name).Scan(&id, &fields)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return id == c.ID && fields == c.stored, nil
}

// seal encodes and seals a record's fields.
func (s *Service) seal(ctx context.Context, orgID string, c Collection, id string, v values) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(plain) > MaxRecordBytes {
		return nil, fieldErr(largest(v), "too_large", "a record holds at most %d bytes of fields", MaxRecordBytes)
	}
	return s.ring.Seal(ctx, orgID, recordAD(c.ID, id), plain)
}

// largest names the field with the largest value.
func largest(v values) string {
	name, size := "", -1
	for n, x := range v {
		if len(x) > size || len(x) == size && n < name {
			name, size = n, len(x)
		}
	}
	return name
}

// fieldKey is the index key of one field of a record.
type fieldKey struct {
	field string
	key   []byte
}

// keys returns the index keys of a record's indexed fields.
func (s *Service) keys(ctx context.Context, orgID string, c Collection, v values) ([]fieldKey, error) {
	var keys []fieldKey
	for _, f := range c.Fields {
		if !f.Indexed {
			continue
		}
		val := v[f.Name]
		if f.Sensitive && val == nil {
			continue // nothing to find by
		}
		key, err := s.key(ctx, orgID, c, f, val)
		if err != nil {
			return nil, err
		}
		keys = append(keys, fieldKey{f.Name, key})
	}
	return keys, nil
}

// insertKeys writes a record's index keys; with replace, the old ones are
// removed first.
func insertKeys(ctx context.Context, tx *store.Tx, collectionID, id string, keys []fieldKey, replace bool) error {
	if replace {
		if _, err := tx.ExecOnce(ctx, "DELETE FROM record_keys WHERE record_id = $1", id); err != nil {
			return err
		}
	}
	for _, k := range keys {
		// Nothing reads a record's keys in the transaction that writes
		// them: on PostgreSQL they go with the COMMIT.
		if err := tx.ExecAtCommit(ctx, "INSERT INTO record_keys (record_id, collection_id, field, key) VALUES ($1, $2, $3, $4)",
			id, collectionID, k.field, k.key); err != nil {
			return err
		}
	}
	return nil
}

// writeKeys writes the index keys of a record's indexed fields; with
// replace, the old ones are removed first.
func (s *Service) writeKeys(ctx context.Context, tx *store.Tx, orgID string, c Collection, id string, v values, replace bool) error {
	keys, err := s.keys(ctx, orgID, c, v)
	if err != nil {
		return err
	}
	return insertKeys(ctx, tx, c.ID, id, keys, replace)
}

// key is a value's index key: its sort key in clear, or for a sensitive
// field the blind index of it (bound to the collection and field).
func (s *Service) key(ctx context.Context, orgID string, c Collection, f Field, v json.RawMessage) ([]byte, error) {
	k, err := encodeKey(f, v)
	if err != nil || !f.Sensitive {
		return k, err
	}
	return s.ring.BlindIndex(ctx, orgID, "records/"+c.ID+"/"+f.Name, k)
}

// open reads a record row's sealed data.
func (s *Service) open(ctx context.Context, orgID string, c Collection, id string, data []byte) (values, error) {
	plain, err := s.ring.Open(ctx, orgID, recordAD(c.ID, id), data)
	if err != nil {
		return nil, err
	}
	var v values
	if err := json.Unmarshal(plain, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// mask leaves out the sensitive fields of rec unless sensitive, and
// returns the names of the sensitive fields that rec shows in clear.
func mask(c Collection, rec *Record, sensitive bool) (shown []string) {
	for _, f := range c.Fields {
		if !f.Sensitive {
			continue
		}
		if _, ok := rec.Fields[f.Name]; !ok {
			continue
		}
		if sensitive {
			shown = append(shown, f.Name)
		} else {
			delete(rec.Fields, f.Name)
			rec.Masked = append(rec.Masked, f.Name)
		}
	}
	return shown
}

// Get returns a record. With sensitive (the caller has
// records.sensitive), sensitive fields are in clear and the read is
// recorded in the org's audit log in the same transaction; without, they
// are left out and named in Masked. Returns not_found for an unknown
// collection or record.
func (s *Service) Get(ctx context.Context, src audit.Source, orgID, collection, id string, sensitive bool) (Record, error) {
	c, err := s.collection(ctx, orgID, collection)
	if err != nil {
		return Record{}, err
	}
	if !validID(id) {
		return Record{}, errNoRecord
	}
	const q = "SELECT version, data, created_at, updated_at FROM records WHERE id = $1 AND collection_id = $2"
	read := func(row *sql.Row) (Record, error) {
		rec := Record{ID: id}
		var data []byte
		if err := row.Scan(&rec.Version, &data, &rec.CreatedAt, &rec.UpdatedAt); err != nil {
			if isNoRows(err) {
				return Record{}, errNoRecord
			}
			return Record{}, err
		}
		if rec.Fields, err = s.open(ctx, orgID, c, id, data); err != nil {
			return Record{}, err
		}
		return rec, nil
	}
	var rec Record
	if !sensitive || !c.sensitive() {
		err = s.withDB(ctx, orgID, func(db *store.DB) error {
			var err error
			rec, err = read(db.QueryRowPrepared(ctx, q, id, c.ID))
			return err
		})
		if err != nil {
			return Record{}, err
		}
		mask(c, &rec, false)
		return rec, nil
	}
	err = s.inTx(ctx, orgID, func(tx *store.Tx) error {
		var err error
		if rec, err = read(tx.QueryRowOnce(ctx, q, id, c.ID)); err != nil {
			return err
		}
		shown := mask(c, &rec, true)
		if len(shown) == 0 {
			return nil
		}
		return s.event(ctx, tx, orgID, src.Event("record.sensitive_read", audit.Resource{Type: "record", ID: id}, audit.Success,
			map[string]string{"collection": c.Name, "field_names": strings.Join(shown, ",")}))
	})
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// Page is one page of a list.
type Page struct {
	Items []Record
	Next  *Cursor // nil on the last page
}

// List returns a page of the collection's records that match q, in q's
// order. Sensitive fields as for Get: with sensitive, a page that shows
// any in clear is recorded (collection, count, fields, first and last
// record id) in the same transaction. Returns not_found for an unknown
// collection; a q for another collection's fields is invalid.
func (s *Service) List(ctx context.Context, src audit.Source, orgID, collection string, q Query, sensitive bool) (Page, error) {
	c, err := s.collection(ctx, orgID, collection)
	if err != nil {
		return Page{}, err
	}
	sqlText, args, err := s.listSQL(ctx, orgID, c, q)
	if err != nil {
		return Page{}, err
	}
	var page Page
	var lastKey []byte
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var rec Record
			var data, key []byte
			if err := rows.Scan(&rec.ID, &rec.Version, &data, &rec.CreatedAt, &rec.UpdatedAt, &key); err != nil {
				return err
			}
			if len(page.Items) == q.Limit {
				last := page.Items[len(page.Items)-1]
				page.Next = &Cursor{Sort: q.Sort, Desc: q.Desc, ID: last.ID, Key: lastKey}
				break
			}
			var err error
			if rec.Fields, err = s.open(ctx, orgID, c, rec.ID, data); err != nil {
				return err
			}
			page.Items = append(page.Items, rec)
			lastKey = key
		}
		return rows.Err()
	}
	if !sensitive || !c.sensitive() {
		err = s.withDB(ctx, orgID, func(db *store.DB) error {
			rows, err := db.SQL().QueryContext(ctx, sqlText, args...)
			if err != nil {
				return err
			}
			return scan(rows)
		})
		if err != nil {
			return Page{}, err
		}
		for i := range page.Items {
			mask(c, &page.Items[i], false)
		}
		return page, nil
	}
	err = s.inTx(ctx, orgID, func(tx *store.Tx) error {
		rows, err := tx.QueryContext(ctx, sqlText, args...)
		if err != nil {
			return err
		}
		if err := scan(rows); err != nil {
			return err
		}
		fields := map[string]bool{}
		n := 0
		for i := range page.Items {
			shown := mask(c, &page.Items[i], true)
			if len(shown) > 0 {
				n++
			}
			for _, f := range shown {
				fields[f] = true
			}
		}
		if n == 0 {
			return nil
		}
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		sort.Strings(names)
		return s.event(ctx, tx, orgID, src.Event("record.sensitive_read", audit.Resource{Type: "collection", ID: c.ID}, audit.Success,
			map[string]string{"collection": c.Name, "count": strconv.Itoa(n), "field_names": strings.Join(names, ","),
				"first_id": page.Items[0].ID, "last_id": page.Items[len(page.Items)-1].ID}))
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}

// listSQL builds the query of a list from constant fragments: the shape
// depends on how many filters there are and on the sort, never on the
// text of the request, whose values are all parameters.
//
// The query is driven by an index: with a sort, by the sort field's keys
// (collection, field, key, record id) in order; without one, by the
// first filter's keys (equal keys, in record id order), so that a page
// reads about as many rows as it returns; without either, by the
// records' (collection, id) index.
func (s *Service) listSQL(ctx context.Context, orgID string, c Collection, q Query) (string, []any, error) {
	var b strings.Builder
	args := []any{c.ID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := q.Where
	// drive is the table whose index gives the order: its record_id is the
	// record's id.
	drive, key := "r", "NULL"
	b.WriteString("SELECT r.id, r.version, r.data, r.created_at, r.updated_at, ")
	var cond strings.Builder
	switch {
	case q.Sort != "":
		drive, key = "s", "s.key"
		b.WriteString("s.key FROM record_keys s JOIN records r ON r.id = s.record_id")
		cond.WriteString(" WHERE s.collection_id = $1 AND s.field = " + arg(q.Sort))
	case len(where) > 0:
		drive = "w0"
		b.WriteString("NULL FROM record_keys w0 JOIN records r ON r.id = w0.record_id")
	default:
		b.WriteString("NULL FROM records r")
		cond.WriteString(" WHERE r.collection_id = $1")
	}
	for i, f := range where {
		if _, ok := c.field(f.Field.Name); !ok {
			return "", nil, fieldErr("where."+f.Field.Name, "unknown", "the collection has no field %q", f.Field.Name)
		}
		k, err := s.key(ctx, orgID, c, f.Field, f.Value)
		if err != nil {
			return "", nil, err
		}
		w := "w" + strconv.Itoa(i)
		match := w + ".collection_id = $1 AND " + w + ".field = " + arg(f.Field.Name) + " AND " + w + ".key = " + arg(k)
		if w == drive {
			cond.WriteString(" WHERE " + match)
			continue
		}
		b.WriteString(" JOIN record_keys " + w + " ON " + w + ".record_id = r.id AND " + match)
	}
	b.WriteString(cond.String())
	id := drive + ".record_id"
	if drive == "r" {
		id = "r.id"
	}
	cmp, dir := ">", " ASC"
	if q.Desc {
		cmp, dir = "<", " DESC"
	}
	if q.After.ID != "" {
		if q.Sort != "" {
			k := arg(q.After.Key)
			b.WriteString(" AND (s.key " + cmp + " " + k + " OR (s.key = " + k + " AND " + id + " " + cmp + " " + arg(q.After.ID) + "))")
		} else {
			b.WriteString(" AND " + id + " " + cmp + " " + arg(q.After.ID))
		}
	}
	if q.Sort != "" {
		b.WriteString(" ORDER BY " + key + dir + ", " + id + dir)
	} else {
		b.WriteString(" ORDER BY " + id + dir)
	}
	b.WriteString(" LIMIT " + arg(q.Limit+1))
	return b.String(), args, nil
}

// Update changes the fields given in patch (a JSON object; null removes
// a value that is not required) and keeps the others, audited in the
// same transaction with the names of the changed fields. The record it
// returns leaves out (and names in Masked) the sensitive values that the
// patch did not set. With ifMatch > 0
// the record must still be at that version, or precondition_failed.
// Returns not_found, invalid naming the bad field.
func (s *Service) Update(ctx context.Context, src audit.Source, orgID, collection, id string, ifMatch int64, patch []byte) (Record, error) {
	if !validID(id) {
		return Record{}, errNoRecord
	}
	var rec Record
	err := s.inTx(ctx, orgID, func(tx *store.Tx) error {
		c, err := findCollection(ctx, tx, collection)
		if err != nil {
			return err
		}
		change, err := parseBody(c, patch, true)
		if err != nil {
			return err
		}
		rec = Record{ID: id}
		var data []byte
		err = tx.QueryRowOnce(ctx, "SELECT version, data, created_at FROM records WHERE id = $1 AND collection_id = $2"+forUpdate(tx), id, c.ID).
			Scan(&rec.Version, &data, &rec.CreatedAt)
		if isNoRows(err) {
			return errNoRecord
		}
		if err != nil {
			return err
		}
		if ifMatch > 0 && ifMatch != rec.Version {
			return errStale
		}
		if rec.Fields, err = s.open(ctx, orgID, c, id, data); err != nil {
			return err
		}
		changed := make([]string, 0, len(change))
		for name, v := range change {
			if v == nil {
				delete(rec.Fields, name)
			} else {
				rec.Fields[name] = v
			}
			changed = append(changed, name)
		}
		sort.Strings(changed)
		sealed, err := s.seal(ctx, orgID, c, id, rec.Fields)
		if err != nil {
			return err
		}
		res, err := tx.ExecOnce(ctx, "UPDATE records SET version = version + 1, data = $1, updated_at = $2 WHERE id = $3 AND version = $4",
			sealed, tx.Now, id, rec.Version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("record %s changed while locked (%d rows, %v)", id, n, err)
		}
		rec.Version++
		rec.UpdatedAt = tx.Now
		if err := s.writeKeys(ctx, tx, orgID, c, id, rec.Fields, true); err != nil {
			return err
		}
		// The answer shows a sensitive value only when this patch set it:
		// anything else would be a read in clear.
		for _, f := range c.Fields {
			if _, set := change[f.Name]; f.Sensitive && !set && rec.Fields[f.Name] != nil {
				delete(rec.Fields, f.Name)
				rec.Masked = append(rec.Masked, f.Name)
			}
		}
		return s.event(ctx, tx, orgID, src.Event("record.updated", audit.Resource{Type: "record", ID: id}, audit.Success,
			map[string]string{"collection": c.Name, "field_names": clipList(changed)}))
	})
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// forUpdate locks the row a write reads first, on PostgreSQL, so that a
// concurrent write waits rather than slipping between the read and the
// write (SQLite transactions here hold the database's write lock).
func forUpdate(tx *store.Tx) string {
	if tx.Driver() == store.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// clipList joins names within an audit detail's size.
func clipList(names []string) string {
	s := strings.Join(names, ",")
	if len(s) > 500 {
		s = s[:500]
		s = s[:strings.LastIndexByte(s, ',')] + ",..."
	}
	return s
}

// Delete removes a record, audited in the same transaction. With
// ifMatch > 0 the record must still be at that version. Returns
// not_found, precondition_failed.
func (s *Service) Delete(ctx context.Context, src audit.Source, orgID, collection, id string, ifMatch int64) error {
	if !validID(id) {
		return errNoRecord
	}
	return s.inTx(ctx, orgID, func(tx *store.Tx) error {
		c, err := findCollection(ctx, tx, collection)
		if err != nil {
			return err
		}
		var version int64
		err = tx.QueryRowOnce(ctx, "SELECT version FROM records WHERE id = $1 AND collection_id = $2"+forUpdate(tx), id, c.ID).Scan(&version)
		if isNoRows(err) {
			return errNoRecord
		}
		if err != nil {
			return err
		}
		if ifMatch > 0 && ifMatch != version {
			return errStale
		}
		// Index keys go with the record (ON DELETE CASCADE). The row is
		// locked since the read (SQLite: the whole database), so the
		// version checked is the one deleted.
		res, err := tx.ExecOnce(ctx, "DELETE FROM records WHERE id = $1 AND version = $2", id, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("record %s changed while locked (%d rows, %v)", id, n, err)
		}
		return s.event(ctx, tx, orgID, src.Event("record.deleted", audit.Resource{Type: "record", ID: id}, audit.Success,
			map[string]string{"collection": c.Name}))
	})
}
