package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// Options configure a Service.
type Options struct {
	// IPKey pseudonymizes IP addresses found inside details (the log's
	// HashIP key). The ip field of an event is stored as given.
	IPKey []byte
	// Now is the clock of checkpoints and retention; time.Now if nil.
	Now func() time.Time
	// Registerer, when not nil, gets the audit metrics.
	Registerer prometheus.Registerer
}

// Service writes, checkpoints, verifies, queries and prunes audit logs:
// the control-plane log in the control database and each org's log in the
// org's own database.
type Service struct {
	st   *store.Store
	ring *keys.Ring
	opts Options

	mu    sync.Mutex
	dirty map[string]bool // logs appended to since their last checkpoint by this process
	// unchained: the logs this process appended to since their last
	// chaining (PostgreSQL's inbox, chain.go) and indexing (index.go), with
	// the events appended since; waitingSince: when ChainDue first found
	// each waiting (chain.go).
	unchained    map[string]int
	waitingSince map[string]time.Time
	// heads: where each SQLite log's end stood after this process's last
	// commit to it; headRows: what this process last wrote to its head
	// row, and when (append.go).
	heads    map[string]headAt
	headRows map[string]headRow
	// written: the highest seq this process wrote or chained in each log;
	// indexed: how many of its blocks it knows have blooms (index.go).
	written, indexed map[string]int64
	// taken: the events chaining took out of each PostgreSQL log's inbox
	// since it last vacuumed it (chain.go).
	taken map[string]int64

	// feed: the blooms built from the events this process committed
	// (bloomfeed.go); blocksReadBack counts the blocks index read back
	// instead.
	feed           bloomFeed
	blocksReadBack atomic.Int64

	timelineMu sync.Mutex
	timelines  map[string]timeline // what queries learnt of each log's times (window.go)

	appended prometheus.Counter
}

// New returns a Service over st, signing checkpoints with ring's
// audit_checkpoint key. st must have been opened with ControlSchema and
// OrgSchema.
func New(st *store.Store, ring *keys.Ring, opts Options) (*Service, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{st: st, ring: ring, opts: opts, dirty: map[string]bool{}, unchained: map[string]int{},
		waitingSince: map[string]time.Time{}, heads: map[string]headAt{}, headRows: map[string]headRow{},
		written: map[string]int64{}, indexed: map[string]int64{}, taken: map[string]int64{},
		appended: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_audit_events_total",
			Help: "Audit events appended (committed or not) by this process."})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.appended); err != nil {
			return nil, fmt.Errorf("audit: register metrics: %w", err)
		}
	}
	return s, nil
}

// Source is where an action came from: the actor and, for a request, its
// client address, user agent and request id.
type Source struct {
	Actor     Actor
	IP        string
	UserAgent string
	RequestID string
}

// Event returns an event of this source.
func (src Source) Event(action string, res Resource, outcome string, details map[string]string) Event {
	return Event{Actor: src.Actor, Action: action, Resource: res, Outcome: outcome,
		IP: src.IP, UserAgent: src.UserAgent, RequestID: src.RequestID, Details: details}
}

// System is the source of Bulwark's own background work.
var System = Source{Actor: Actor{Type: ActorSystem, ID: "bulwark"}}

// Append writes e to the log logID (ControlLog, or the org id for the
// org's own log) in tx, which must be a transaction of that log's
// database: the event commits or rolls back with the change it records.
// It sets the event's id and time (tx.Now) and returns it. Its seq
// (gapless) and chain hash are given at the commit on SQLite, and when
// the committed event is chained (Chain) on PostgreSQL: the returned Seq
// is 0, except in a Tx made by hand, where the event is written at once
// (the head locked until tx ends) and has both.
// Details under secret or personal-data names are stored as "[redacted]"
// and secrets inside detail values are masked; an event that breaks the
// rules of Event is refused with invalid and nothing is written.
func (s *Service) Append(ctx context.Context, tx *store.Tx, logID string, e Event) (Event, error) {
	if tx == nil {
		if _, err := e.normalize(s.opts.IPKey); err != nil {
			return Event{}, err
		}
		return Event{}, errors.New("audit: append outside a transaction")
	}
	fields, err := prepareEvent(&e, s.opts.IPKey, tx.Now)
	if err != nil {
		return Event{}, err
	}
	switch {
	case tx.Driver() == store.SQLite:
		err = s.appendSQLite(ctx, tx, logID, &e, fields)
	case tx.Driver() == store.Postgres && s.appendPostgres(tx, logID, fields):
	default:
		err = appendPlain(ctx, tx, logID, &e, fields)
	}
	if err != nil {
		return Event{}, err
	}
	s.appended.Inc()
	s.mu.Lock()
	s.dirty[logID] = true
	s.unchained[logID]++
	s.mu.Unlock()
	return e, nil
}

// head is where a log stands: its end (seq and hash), the base (the last
// event retention removed), and its audit_head row (mark).
//
// The row holds the end on PostgreSQL, where chaining writes it with the
// segments. On SQLite a group commit writes it with a log's first batch of
// each second (headRowEvery), not with every batch, and a log that goes
// quiet has it written by the next ChainDue: the row may name an event a
// little before the end, and the end is the last segment's (its last
// record's seq and hash), or the base when retention removed every event.
// The row is a mark the log must reach: verify reports a log that ends
// before it, or whose event there has another hash.
type head struct {
	seq, baseSeq   int64
	hash, baseHash []byte
	mark           int64
	markHash       []byte
}

// readHeadSQL reads the head row and the end of the last segment: its
// seq_end and its last 32 bytes (the last record's hash), in one
// statement and so one snapshot.
const readHeadSQL = `SELECT h.seq, h.hash, h.base_seq, h.base_hash, s.seq_end, substr(s.events, length(s.events) - 31)
FROM audit_head h LEFT JOIN (SELECT seq_end, events FROM audit_segments ORDER BY seq_start DESC LIMIT 1) s ON true
WHERE h.id = 1`

func readHead(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (head, error) {
	var h head
	var end sql.NullInt64
	var endHash []byte
	err := q.QueryRowContext(ctx, readHeadSQL).Scan(&h.mark, &h.markHash, &h.baseSeq, &h.baseHash, &end, &endHash)
	if err != nil {
		return h, fmt.Errorf("audit: read head: %w", err)
	}
	h.seq, h.hash = h.mark, h.markHash
	if end.Valid && end.Int64 > h.seq {
		h.seq, h.hash = end.Int64, endHash
	}
	if h.baseSeq > h.seq { // retention removed every event, past the row
		h.seq, h.hash = h.baseSeq, h.baseHash
	}
	return h, nil
}

// logDB runs fn on the database of log logID.
func (s *Service) logDB(ctx context.Context, logID string, fn func(db *store.DB) error) error {
	if logID == ControlLog {
		return fn(s.st.Control())
	}
	odb, err := s.st.AcquireOrg(ctx, logID)
	if err != nil {
		return err
	}
	defer odb.Release()
	return fn(odb.DB())
}

// InLogTx runs fn in a transaction of the database of log logID.
func (s *Service) InLogTx(ctx context.Context, logID string, fn func(tx *store.Tx) error) error {
	return s.logDB(ctx, logID, func(db *store.DB) error { return db.InTx(ctx, fn) })
}

// Record appends one event to the log in a transaction of its own: for
// events that record no change of that database (a read, a denial, a
// change made in another database).
func (s *Service) Record(ctx context.Context, logID string, e Event) error {
	return s.InLogTx(ctx, logID, func(tx *store.Tx) error {
		_, err := s.Append(ctx, tx, logID, e)
		return err
	})
}

// rawEvent is one event as stored, for verification and reads.
type rawEvent struct {
	Event
	details []byte
}
