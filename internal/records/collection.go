package records

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// The types of a field.
const (
	TypeText   = "text"
	TypeNumber = "number"
	TypeBool   = "bool"
	TypeTime   = "time"
	TypeJSON   = "json"
)

// Limits of collections and records. They are documented in docs/api.md.
const (
	MaxCollections  = 1000    // per org
	MaxFields       = 200     // per collection
	MaxRecordBytes  = 1 << 20 // a record's fields as JSON
	MaxIndexedText  = 1024    // bytes of an indexed text value
	MaxJSONDepth    = 32      // nesting of a json value
	MaxRetentionDay = 36500   // retention_days: at most 100 years
)

// nameRe is what collection and field names look like: they appear in
// paths and query strings, never in SQL text.
var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// reserved are the names a field cannot have: they are the record's own.
var reserved = map[string]bool{"id": true, "created_at": true, "updated_at": true, "version": true, "masked": true}

// Field is one field of a collection.
type Field struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Required  bool   `json:"required"`
	Indexed   bool   `json:"indexed"`
	Sensitive bool   `json:"sensitive"`
}

// Collection is a named set of records with the same fields.
type Collection struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Fields        []Field   `json:"fields"`
	RetentionDays int       `json:"retention_days"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`

	// stored is the fields' text as read from the database ("" for a
	// collection not read from it): what a later read compares to tell
	// whether the collection is still the same.
	stored string
}

// field returns the field called name.
func (c Collection) field(name string) (Field, bool) {
	for _, f := range c.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// sensitive reports whether the collection has a sensitive field.
func (c Collection) sensitive() bool {
	for _, f := range c.Fields {
		if f.Sensitive {
			return true
		}
	}
	return false
}

func fieldErr(field, code, format string, args ...any) error {
	return apperr.WithFields(fmt.Sprintf(format, args...), apperr.FieldError{Field: field, Code: code})
}

// checkFields validates a collection's fields; prefix names them in
// errors ("fields[3].name").
func checkFields(fields []Field) error {
	if len(fields) > MaxFields {
		return fieldErr("fields", "too_many", "a collection has at most %d fields", MaxFields)
	}
	seen := make(map[string]bool, len(fields))
	for i, f := range fields {
		at := "fields[" + strconv.Itoa(i) + "]"
		switch {
		case !nameRe.MatchString(f.Name):
			return fieldErr(at+".name", "invalid", "a field name is 1 to 63 lower-case letters, digits or _, starting with a letter")
		case reserved[f.Name]:
			return fieldErr(at+".name", "reserved", "%q is the record's own; choose another field name", f.Name)
		case seen[f.Name]:
			return fieldErr(at+".name", "duplicate", "field %q is given twice", f.Name)
		}
		seen[f.Name] = true
		switch f.Type {
		case TypeText, TypeNumber, TypeBool, TypeTime:
		case TypeJSON:
			if f.Indexed {
				return fieldErr(at+".indexed", "not_indexable", "a json field cannot be indexed")
			}
		default:
			return fieldErr(at+".type", "invalid", "type must be text, number, bool, time or json")
		}
	}
	return nil
}

// NewCollection is what makes a collection.
type NewCollection struct {
	Name          string  `json:"name"`
	Fields        []Field `json:"fields"`
	RetentionDays int     `json:"retention_days"`
}

func checkRetention(days int) error {
	if days < 0 || days > MaxRetentionDay {
		return fieldErr("retention_days", "out_of_range", "retention_days is 0 (keep) to %d", MaxRetentionDay)
	}
	return nil
}

// CreateCollection makes a collection in the org's database, audited in
// the same transaction. Any member with collections.manage may call it.
// Returns invalid naming the bad field, conflict when the name is taken,
// invalid "too_many" past MaxCollections.
func (s *Service) CreateCollection(ctx context.Context, src audit.Source, orgID string, in NewCollection) (Collection, error) {
	if !nameRe.MatchString(in.Name) {
		return Collection{}, fieldErr("name", "invalid", "a collection name is 1 to 63 lower-case letters, digits or _, starting with a letter")
	}
	if in.Fields == nil {
		in.Fields = []Field{}
	}
	if err := checkFields(in.Fields); err != nil {
		return Collection{}, err
	}
	if err := checkRetention(in.RetentionDays); err != nil {
		return Collection{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Collection{}, err
	}
	c := Collection{ID: id.String(), Name: in.Name, Fields: in.Fields, RetentionDays: in.RetentionDays}
	err = s.inTx(ctx, orgID, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM collections").Scan(&n); err != nil {
			return err
		}
		if n >= MaxCollections {
			return fieldErr("name", "too_many", "an org has at most %d collections", MaxCollections)
		}
		var taken int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM collections WHERE name = $1", c.Name).Scan(&taken); err != nil {
			return err
		}
		if taken > 0 {
			return &apperr.Error{Code: apperr.Conflict, Message: "a collection with this name exists",
				Fields: []apperr.FieldError{{Field: "name", Code: "taken"}}}
		}
		c.CreatedAt, c.UpdatedAt = tx.Now, tx.Now
		fields, err := json.Marshal(c.Fields)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO collections (id, name, fields, retention_days, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)`, c.ID, c.Name, string(fields), c.RetentionDays, tx.Now, tx.Now); err != nil {
			return err
		}
		return s.event(ctx, tx, orgID, src.Event("collection.created", audit.Resource{Type: "collection", ID: c.ID}, audit.Success,
			map[string]string{"collection": c.Name, "field_count": strconv.Itoa(len(c.Fields))}))
	})
	if err != nil {
		return Collection{}, err
	}
	s.forget(orgID)
	return c, nil
}

// CollectionChange is what UpdateCollection changes: nil leaves a part as
// it is. AddFields are appended; they cannot be required (records that
// exist would break the rule). Existing fields cannot be changed or
// removed: their values are sealed and indexed as they were defined.
type CollectionChange struct {
	RetentionDays *int    `json:"retention_days"`
	AddFields     []Field `json:"add_fields"`
}

// UpdateCollection changes a collection's retention or adds fields,
// audited. Returns not_found for an unknown collection, invalid naming
// the bad field.
func (s *Service) UpdateCollection(ctx context.Context, src audit.Source, orgID, name string, ch CollectionChange) (Collection, error) {
	if ch.RetentionDays != nil {
		if err := checkRetention(*ch.RetentionDays); err != nil {
			return Collection{}, err
		}
	}
	for i, f := range ch.AddFields {
		if f.Required {
			return Collection{}, fieldErr("add_fields["+strconv.Itoa(i)+"].required", "not_allowed",
				"a field added to a collection cannot be required: its records have no value for it")
		}
	}
	var c Collection
	err := s.inTx(ctx, orgID, func(tx *store.Tx) error {
		var err error
		if c, err = findCollection(ctx, tx, name); err != nil {
			return err
		}
		details := map[string]string{"collection": c.Name}
		if ch.RetentionDays != nil {
			c.RetentionDays = *ch.RetentionDays
			details["retention_days"] = strconv.Itoa(c.RetentionDays)
		}
		if len(ch.AddFields) > 0 {
			all := append(append([]Field{}, c.Fields...), ch.AddFields...)
			if err := checkFields(all); err != nil {
				return err
			}
			c.Fields = all
			details["fields_added"] = strconv.Itoa(len(ch.AddFields))
			// Records that exist have no value for an added field: an
			// indexed one that is not sensitive gets the absent key for
			// each, so that a sort on it lists them too (first).
			for _, f := range ch.AddFields {
				if f.Indexed && !f.Sensitive {
					if _, err := tx.ExecContext(ctx, `INSERT INTO record_keys (record_id, collection_id, field, key)
SELECT id, collection_id, $1, $2 FROM records WHERE collection_id = $3`, f.Name, absentKey, c.ID); err != nil {
						return err
					}
				}
			}
		}
		c.UpdatedAt = tx.Now
		fields, err := json.Marshal(c.Fields)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE collections SET fields = $1, retention_days = $2, updated_at = $3 WHERE id = $4",
			string(fields), c.RetentionDays, tx.Now, c.ID); err != nil {
			return err
		}
		return s.event(ctx, tx, orgID, src.Event("collection.updated", audit.Resource{Type: "collection", ID: c.ID}, audit.Success, details))
	})
	if err != nil {
		return Collection{}, err
	}
	s.forget(orgID)
	return c, nil
}

// DeleteCollection deletes a collection and every record in it, audited
// with the number of records. Returns not_found for an unknown collection.
func (s *Service) DeleteCollection(ctx context.Context, src audit.Source, orgID, name string) error {
	err := s.inTx(ctx, orgID, func(tx *store.Tx) error {
		c, err := findCollection(ctx, tx, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM record_keys WHERE collection_id = $1", c.ID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM records WHERE collection_id = $1", c.ID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM collections WHERE id = $1", c.ID); err != nil {
			return err
		}
		return s.event(ctx, tx, orgID, src.Event("collection.deleted", audit.Resource{Type: "collection", ID: c.ID}, audit.Success,
			map[string]string{"collection": c.Name, "count": strconv.FormatInt(n, 10)}))
	})
	if err != nil {
		return err
	}
	s.forget(orgID)
	return nil
}

// Collection returns the collection called name. Returns not_found.
func (s *Service) Collection(ctx context.Context, orgID, name string) (Collection, error) {
	return s.collection(ctx, orgID, name)
}

// Collections lists the org's collections by name, limit at a time after
// the name `after` ("" for the first page).
func (s *Service) Collections(ctx context.Context, orgID string, limit int, after string) ([]Collection, error) {
	return s.queryCollections(ctx, orgID, "SELECT "+collectionColumns+" FROM collections WHERE name > $1 ORDER BY name LIMIT $2", after, limit)
}

// queryCollections reads the collections a query of collectionColumns
// returns.
func (s *Service) queryCollections(ctx context.Context, orgID, query string, args ...any) ([]Collection, error) {
	var out []Collection
	err := s.withDB(ctx, orgID, func(db *store.DB) error {
		rows, err := db.SQL().QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCollection(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

const collectionColumns = "id, name, fields, retention_days, created_at, updated_at"

var errNoCollection = apperr.Errorf(apperr.NotFound, "collection not found")

func scanCollection(row interface{ Scan(...any) error }) (Collection, error) {
	var c Collection
	var fields string
	if err := row.Scan(&c.ID, &c.Name, &fields, &c.RetentionDays, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return Collection{}, err
	}
	if err := json.Unmarshal([]byte(fields), &c.Fields); err != nil {
		return Collection{}, fmt.Errorf("collection %s: fields: %w", c.ID, err)
	}
	c.stored = fields
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// findCollection reads a collection by name in tx.
func findCollection(ctx context.Context, tx *store.Tx, name string) (Collection, error) {
	if !nameRe.MatchString(name) {
		return Collection{}, errNoCollection
	}
	c, err := scanCollection(tx.QueryRowOnce(ctx, "SELECT "+collectionColumns+" FROM collections WHERE name = $1", name))
	if errors.Is(err, sql.ErrNoRows) {
		return Collection{}, errNoCollection
	}
	return c, err
}
