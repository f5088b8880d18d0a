package keys

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// Sealed names one column of Seal's ciphertexts in the org databases, so
// that values sealed with an old data key version can be re-encrypted
// after a rotation. Capability packages that store sealed values declare
// theirs; the application passes them all to NewReencryptor.
type Sealed struct {
	// Name is stable (it keys the saved progress), e.g. "records.data".
	Name string
	// Table is the SQL table, Key its primary key column (text; the scan
	// runs in its order) and Column the column holding the ciphertext
	// (NULL is skipped).
	Table, Key, Column string
	// ADColumn, when not "", is another column of the row that the
	// value's associated data depends on; AD gets its value.
	ADColumn string
	// AD returns the associated data the value was sealed with.
	AD func(key, adValue string) AD
}

var sqlName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (s Sealed) check() error {
	for _, n := range []string{s.Table, s.Key, s.Column} {
		if !sqlName.MatchString(n) {
			return fmt.Errorf("keys: sealed column %q: %q is not a plain SQL name", s.Name, n)
		}
	}
	if s.ADColumn != "" && !sqlName.MatchString(s.ADColumn) {
		return fmt.Errorf("keys: sealed column %q: %q is not a plain SQL name", s.Name, s.ADColumn)
	}
	if s.Name == "" || s.AD == nil {
		return fmt.Errorf("keys: sealed column %q needs a name and an AD function", s.Table+"."+s.Column)
	}
	return nil
}

// Progress is the state of one org's re-encryption.
type Progress struct {
	OrgID    string
	Target   int   // every value sealed with an older version is re-encrypted
	Scanned  int64 // rows looked at so far, of Total
	Total    int64
	Rewrote  int64 // values re-encrypted (by this run)
	Failed   int64 // values that did not open and were left as they are (by this run)
	Finished bool
}

// Reencryptor re-encrypts the values of the Sealed columns of an org that
// were sealed with a data key version older than the job's target, after
// RotateOrg recorded a job. Work is done in batches, each in one
// transaction of the org database together with the saved position, so a
// run stopped at any point (crash, Ctrl-C) continues where it was. A lease
// in the control database keeps two processes from working on one org at
// once; a value changed meanwhile by a writer is left to that writer
// (compare-and-swap), so a re-encryption never loses a write.
type Reencryptor struct {
	ring  *Ring
	st    *store.Store
	cols  []Sealed
	owner string
	// reencrypted counts values re-encrypted, for Prometheus.
	reencrypted prometheus.Counter
	// Batch is how many rows one transaction covers; Lease how long a
	// claim lasts without renewal. Set before the first use.
	Batch int
	Lease time.Duration
}

// NewReencryptor returns a Reencryptor over the ring's store for cols.
func NewReencryptor(r *Ring, cols []Sealed) (*Reencryptor, error) {
	seen := map[string]bool{}
	for _, c := range cols {
		if err := c.check(); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("keys: sealed column %q declared twice", c.Name)
		}
		seen[c.Name] = true
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_keys_reencrypted_total",
		Help: "Values re-encrypted with a newer data key version after a rotation."})
	if reg := r.opts.Registerer; reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("keys: register metrics: %w", err)
		}
	}
	return &Reencryptor{ring: r, st: r.st, cols: cols, owner: hex.EncodeToString(b[:]), reencrypted: c, Batch: 200, Lease: time.Minute}, nil
}

// startReencrypt records that the org's values must be brought to target,
// in the rotation's transaction. A job still running for an older target
// takes the new one (its saved positions are then started over).
func startReencrypt(ctx context.Context, tx *store.Tx, orgID string, target int) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO reencrypt_jobs (org_id, target_version, created_at, updated_at)
VALUES ($1, $2, $3, $3)
ON CONFLICT (org_id) DO UPDATE SET target_version = excluded.target_version, created_at = excluded.created_at,
	updated_at = excluded.updated_at, finished_at = NULL, rows_rewritten = 0, rows_failed = 0`, orgID, target, tx.Now)
	if err != nil {
		return fmt.Errorf("keys: record re-encryption: %w", err)
	}
	return nil
}

// Job is a recorded re-encryption.
type Job struct {
	OrgID                 string
	Target                int
	Created, Updated      time.Time
	Finished              *time.Time
	Rewritten, FailedRows int64
	LeasedUntil           *time.Time
}

// Jobs lists the recorded re-encryptions, unfinished first.
func (x *Reencryptor) Jobs(ctx context.Context) ([]Job, error) {
	rows, err := x.st.Control().SQL().QueryContext(ctx, `SELECT org_id, target_version, created_at, updated_at, finished_at,
	rows_rewritten, rows_failed, lease_until FROM reencrypt_jobs ORDER BY finished_at IS NOT NULL, created_at, org_id`)
	if err != nil {
		return nil, fmt.Errorf("keys: list re-encryptions: %w", err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		var j Job
		var fin, lease sql.NullTime
		if err := rows.Scan(&j.OrgID, &j.Target, &j.Created, &j.Updated, &fin, &j.Rewritten, &j.FailedRows, &lease); err != nil {
			return nil, fmt.Errorf("keys: list re-encryptions: %w", err)
		}
		if fin.Valid {
			t := fin.Time.UTC()
			j.Finished = &t
		}
		if lease.Valid {
			t := lease.Time.UTC()
			j.LeasedUntil = &t
		}
		j.Created, j.Updated = j.Created.UTC(), j.Updated.UTC()
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// errLeased is returned by Run when another process holds the org's job.
var errLeased = apperr.Errorf(apperr.Conflict, "the re-encryption of this org is running in another process; it continues there")

// IsLeased reports whether err says that another process runs the job.
func IsLeased(err error) bool { return errors.Is(err, errLeased) }

// claim takes the org's unfinished job for this Reencryptor until now +
// Lease. It returns the target, or 0 when there is no unfinished job.
func (x *Reencryptor) claim(ctx context.Context, orgID string) (int, error) {
	now := x.ring.now()
	res, err := x.st.Control().SQL().ExecContext(ctx, `UPDATE reencrypt_jobs SET lease_owner = $1, lease_until = $2
WHERE org_id = $3 AND finished_at IS NULL AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $1)`,
		x.owner, now.Add(x.Lease), orgID, now)
	if err != nil {
		return 0, fmt.Errorf("keys: claim re-encryption: %w", err)
	}
	var target int
	var finished sql.NullTime
	err = x.st.Control().SQL().QueryRowContext(ctx,
		"SELECT target_version, finished_at FROM reencrypt_jobs WHERE org_id = $1", orgID).Scan(&target, &finished)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && finished.Valid) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("keys: claim re-encryption: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, errLeased
	}
	return target, nil
}

// renew extends the lease and adds this batch's counts. It fails when the
// lease was lost (it ran out and another process took the job).
func (x *Reencryptor) renew(ctx context.Context, orgID string, rewrote, failed int64) error {
	now := x.ring.now()
	res, err := x.st.Control().SQL().ExecContext(ctx, `UPDATE reencrypt_jobs SET lease_until = $1, updated_at = $2,
	rows_rewritten = rows_rewritten + $3, rows_failed = rows_failed + $4
WHERE org_id = $5 AND lease_owner = $6 AND finished_at IS NULL`, now.Add(x.Lease), now, rewrote, failed, orgID, x.owner)
	if err != nil {
		return fmt.Errorf("keys: save re-encryption progress: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errLeased
	}
	return nil
}

// Run brings the org's values to its job's target version, calling
// progress (if not nil) after every batch. It returns a finished Progress
// with nothing done when the org has no unfinished job, and an error for
// which IsLeased is true when another process runs it. A cancelled ctx
// stops it between batches; the next Run continues. Values that do not
// open (damaged) are counted in Failed and left as they are.
func (x *Reencryptor) Run(ctx context.Context, orgID string, progress func(Progress)) (Progress, error) {
	for {
		p, err := x.run(ctx, orgID, progress)
		if err != nil && !errors.Is(err, errRetargeted) && !IsLeased(err) {
			// Let another process continue at once rather than after the lease.
			x.release(context.WithoutCancel(ctx), orgID)
		}
		if !errors.Is(err, errRetargeted) {
			return p, err
		}
		// Rotated again meanwhile: go on towards the new target.
	}
}

// release gives up this Reencryptor's lease on the org's job, if it has it.
func (x *Reencryptor) release(ctx context.Context, orgID string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _ = x.st.Control().SQL().ExecContext(ctx,
		"UPDATE reencrypt_jobs SET lease_owner = NULL, lease_until = NULL WHERE org_id = $1 AND lease_owner = $2", orgID, x.owner)
}

func (x *Reencryptor) run(ctx context.Context, orgID string, progress func(Progress)) (Progress, error) {
	p := Progress{OrgID: orgID}
	target, err := x.claim(ctx, orgID)
	if err != nil || target == 0 {
		p.Finished = err == nil
		return p, err
	}
	p.Target = target
	odb, err := x.st.AcquireOrg(ctx, orgID)
	if apperr.CodeOf(err) == apperr.NotFound {
		// The org is gone, and its keys with it: nothing is left to do.
		return p, x.finish(ctx, orgID, &p)
	}
	if err != nil {
		return p, fmt.Errorf("keys: re-encrypt: %w", err)
	}
	defer odb.Release()
	db := odb.DB()
	for _, c := range x.cols {
		var n int64
		if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+c.Table).Scan(&n); err != nil {
			return p, fmt.Errorf("keys: re-encrypt %s: %w", c.Name, err)
		}
		p.Total += n
	}
	for _, c := range x.cols {
		if err := x.runColumn(ctx, db, c, &p, progress); err != nil {
			return p, err
		}
	}
	if err := x.finish(ctx, orgID, &p); err != nil {
		return p, err
	}
	if progress != nil {
		progress(p)
	}
	x.ring.emit(ctx, orgID, ActionReencrypted, map[string]string{"version": strconv.Itoa(target),
		"rewritten": strconv.FormatInt(p.Rewrote, 10), "failed": strconv.FormatInt(p.Failed, 10)})
	return p, nil
}

// errRetargeted: the org was rotated again while a run was under way.
var errRetargeted = errors.New("keys: re-encryption target changed")

func (x *Reencryptor) finish(ctx context.Context, orgID string, p *Progress) error {
	now := x.ring.now()
	res, err := x.st.Control().SQL().ExecContext(ctx, `UPDATE reencrypt_jobs SET finished_at = $1, updated_at = $1,
	lease_owner = NULL, lease_until = NULL WHERE org_id = $2 AND lease_owner = $3 AND target_version = $4`, now, orgID, x.owner, p.Target)
	if err != nil {
		return fmt.Errorf("keys: finish re-encryption: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errRetargeted
	}
	p.Finished = true
	return nil
}

// runColumn works through one column from its saved position.
func (x *Reencryptor) runColumn(ctx context.Context, db *store.DB, c Sealed, p *Progress, progress func(Progress)) error {
	orgID := p.OrgID
	adCol := "''"
	if c.ADColumn != "" {
		adCol = c.ADColumn
	}
	sel := fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s > $1 ORDER BY %s LIMIT %d",
		c.Key, adCol, c.Column, c.Table, c.Key, c.Key, x.Batch)
	upd := fmt.Sprintf("UPDATE %s SET %s = $1 WHERE %s = $2 AND %s = $3", c.Table, c.Column, c.Key, c.Column)
	for first := true; ; first = false {
		if err := ctx.Err(); err != nil {
			return err
		}
		var scanned, rewrote, failed, resumed int64
		var last bool
		err := db.InTx(ctx, func(tx *store.Tx) error {
			scanned, rewrote, failed, resumed, last = 0, 0, 0, 0, false
			var after string
			var target int
			var done int64
			err := tx.QueryRowContext(ctx, "SELECT after_key, target_version, scanned FROM reencrypt_positions WHERE name = $1", c.Name).
				Scan(&after, &target, &done)
			if errors.Is(err, sql.ErrNoRows) || (err == nil && target != p.Target) {
				after, done = "", 0
			} else if err != nil {
				return err
			}
			if first {
				resumed = done // what earlier runs looked at
			}
			type row struct {
				key, adv string
				ct       []byte
			}
			var batch []row
			rows, err := tx.QueryContext(ctx, sel, after)
			if err != nil {
				return err
			}
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.key, &r.adv, &r.ct); err != nil {
					rows.Close()
					return err
				}
				batch = append(batch, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			last = len(batch) < x.Batch
			for _, r := range batch {
				scanned++
				after = r.key
				if r.ct == nil {
					continue
				}
				v, err := parseHeader(r.ct)
				if err == nil && v >= p.Target {
					continue
				}
				ad := c.AD(r.key, r.adv)
				var pt []byte
				if err == nil {
					pt, err = x.ring.Open(ctx, orgID, ad, r.ct)
				}
				if apperr.CodeOf(err) == apperr.Invalid {
					failed++
					continue
				}
				if err != nil {
					return err
				}
				ct, err := x.ring.Seal(ctx, orgID, ad, pt)
				if err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, upd, ct, r.key, r.ct)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 1 {
					rewrote++
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO reencrypt_positions (name, target_version, after_key, scanned, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE SET target_version = excluded.target_version, after_key = excluded.after_key,
	scanned = excluded.scanned, updated_at = excluded.updated_at`, c.Name, p.Target, after, done+scanned, tx.Now)
			return err
		})
		if err != nil {
			if apperr.CodeOf(err) == apperr.Unavailable || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("keys: re-encrypt %s: %w", c.Name, err)
		}
		p.Scanned += resumed + scanned
		p.Rewrote += rewrote
		p.Failed += failed
		x.reencrypted.Add(float64(rewrote))
		if err := x.renew(ctx, orgID, rewrote, failed); err != nil {
			return err
		}
		if progress != nil {
			progress(*p)
		}
		if last {
			return nil
		}
	}
}

// RunPending runs every unfinished job that no other process holds, one
// org after another, and returns the first error other than a lease held
// elsewhere. A server calls it periodically, so a rotation done by the CLI
// with --no-wait, or a run that stopped, is finished in the background.
func (x *Reencryptor) RunPending(ctx context.Context, progress func(Progress)) error {
	jobs, err := x.Jobs(ctx)
	if err != nil {
		return err
	}
	now := x.ring.now()
	var first error
	for _, j := range jobs {
		if j.Finished != nil {
			break
		}
		if j.LeasedUntil != nil && j.LeasedUntil.After(now) {
			continue
		}
		if _, err := x.Run(ctx, j.OrgID, progress); err != nil && !IsLeased(err) && first == nil {
			first = err
		}
	}
	return first
}

// reencryptJobsMigration creates the control table of re-encryption jobs:
// one row per org that was rotated, with the target version, the lease of
// the process working on it and its counts.
var reencryptJobsMigration = store.Migration{
	Name: "reencrypt_jobs",
	SQLite: `CREATE TABLE reencrypt_jobs (
	org_id         TEXT PRIMARY KEY,
	target_version INTEGER NOT NULL CHECK (target_version > 1),
	created_at     TIMESTAMP NOT NULL,
	updated_at     TIMESTAMP NOT NULL,
	finished_at    TIMESTAMP,
	rows_rewritten INTEGER NOT NULL DEFAULT 0,
	rows_failed    INTEGER NOT NULL DEFAULT 0,
	lease_owner    TEXT,
	lease_until    TIMESTAMP
);`,
	Postgres: `CREATE TABLE reencrypt_jobs (
	org_id         TEXT PRIMARY KEY,
	target_version INTEGER NOT NULL CHECK (target_version > 1),
	created_at     TIMESTAMPTZ NOT NULL,
	updated_at     TIMESTAMPTZ NOT NULL,
	finished_at    TIMESTAMPTZ,
	rows_rewritten BIGINT NOT NULL DEFAULT 0,
	rows_failed    BIGINT NOT NULL DEFAULT 0,
	lease_owner    TEXT,
	lease_until    TIMESTAMPTZ
);`,
}

// OrgSchema returns the tables of package keys in every org database:
// reencrypt_positions, where a re-encryption saves how far it got in each
// Sealed column, in the transaction of the batch it did.
func OrgSchema() store.Schema {
	return store.Schema{Name: "keys", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version: 1,
		Name:    "reencrypt_positions",
		SQLite: `CREATE TABLE reencrypt_positions (
	name           TEXT PRIMARY KEY,
	target_version INTEGER NOT NULL,
	after_key      TEXT NOT NULL,
	scanned        INTEGER NOT NULL,
	updated_at     TIMESTAMP NOT NULL
);`,
		Postgres: `CREATE TABLE reencrypt_positions (
	name           TEXT PRIMARY KEY,
	target_version INTEGER NOT NULL,
	after_key      TEXT NOT NULL,
	scanned        BIGINT NOT NULL,
	updated_at     TIMESTAMPTZ NOT NULL
);`,
	}}}
}
