package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"bulwark/internal/store"
)

// Report is the result of Verify.
type Report struct {
	OK            bool        `json:"ok"`
	EventsChecked int64       `json:"events_checked"`
	Head          HeadInfo    `json:"head"`
	Checkpoint    *Checkpoint `json:"checkpoint"`    // the latest checkpoint, null if none
	FirstBadSeq   *int64      `json:"first_bad_seq"` // null when ok
	Problem       string      `json:"problem,omitempty"`
}

// HeadInfo is the last event's seq and hash (hex).
type HeadInfo struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Verify walks log logID from its start (its first event, or the signed
// retention checkpoint it was pruned to) to its head, recomputing every
// hash, and checks every signed checkpoint of the log against it. The
// report names the first seq that is wrong: an edited event (its hash), a
// deleted one (a gap), two swapped (their hashes and links), a removed
// tail or a database replaced by an older copy (a checkpoint, or the head
// row, beyond the last event). Errors are for failures to read, not for a
// log that does not verify.
//
// A long log is read in ranges on several of the database's connections
// at once (see walk).
func (s *Service) Verify(ctx context.Context, logID string) (Report, error) {
	var rep Report
	cps, badCP, err := s.checkpoints(ctx, logID)
	if err != nil {
		return rep, err
	}
	if n := len(cps); n > 0 {
		latest := cps[n-1]
		rep.Checkpoint = &latest
	}
	fail := func(seq int64, format string, args ...any) (Report, error) {
		rep.OK = false
		rep.FirstBadSeq = &seq
		rep.Problem = fmt.Sprintf(format, args...)
		return rep, nil
	}
	if badCP != nil {
		return fail(badCP.Seq, "the checkpoint at seq %d does not carry a valid signature of this server's keyring", badCP.Seq)
	}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		if err := s.chain(ctx, db, logID); err != nil {
			return err
		}
		var err error
		rep, err = s.walk(ctx, db, logID, cps, rep)
		return err
	})
	return rep, err
}

// walk checks the log from its start to its head. Reading rows is what
// bounds it (the drivers' cost per column), so it first tries confirm,
// which reads the log in ranges on several connections at once and hashes
// as it reads; confirm only ever says that a log is sound. If it has any
// doubt, walkSequential walks the log again in one query, one snapshot,
// and names the first bad seq.
func (s *Service) walk(ctx context.Context, db *store.DB, logID string, cps []Checkpoint, rep Report) (Report, error) {
	confirmed, ok, err := s.confirm(ctx, db, logID, cps, rep)
	if err != nil || ok {
		return confirmed, err
	}
	return s.walkSequential(ctx, db, logID, cps, rep)
}

// verifyChunk is how many seqs one range of confirm holds (a variable
// for tests).
var verifyChunk int64 = 8192

// verifyReaders is how many ranges confirm reads at once.
func verifyReaders() int { return min(max(runtime.GOMAXPROCS(0), 2), 4) }

// verifyRange is one range of seqs [lo, hi] as read by readRange.
type verifyRange struct {
	lo, hi int64
	links  []link
	arena  []byte // the bytes of links' hashes
	doubt  bool   // a row that readRange does not take: walkSequential judges
	err    error
	done   chan struct{}
}

// link is one event as confirm checks it: its seq, its stored previous
// hash and hash, and the hash recomputed over its content and its stored
// previous hash (which confirm checks against the event before it).
type link struct {
	seq             int64
	prev, hash, sum []byte
}

// add appends the link of event seq, copying the stored hashes (the
// driver's bytes are only valid until its next row) and the recomputed
// one into the range's arena.
func (r *verifyRange) add(seq int64, prev, hash []byte, sum [sha256.Size]byte) {
	if r.links == nil {
		n := int(r.hi - r.lo + 1)
		r.links = make([]link, 0, n)
		r.arena = make([]byte, 0, n*3*sha256.Size)
	}
	start := len(r.arena)
	r.arena = append(r.arena, prev...)
	r.arena = append(r.arena, hash...)
	r.arena = append(r.arena, sum[:]...)
	r.links = append(r.links, link{
		seq:  seq,
		prev: r.arena[start : start+len(prev)],
		hash: r.arena[start+len(prev) : start+len(prev)+len(hash)],
		sum:  r.arena[start+len(prev)+len(hash):],
	})
}

// confirm checks what walkSequential checks, but reads the events in
// ranges of verifyChunk seqs on verifyReaders connections, each range in
// its own snapshot, and checks the chain in seq order as the ranges come
// in. Separate snapshots are sound for confirming: in a sound log the
// events up to the head read first never change (appends land past it,
// and retention removes a prefix). A prune that runs meanwhile may look
// like damage; that, and anything else that is not plainly right, is
// doubt: ok is false and rep is returned as given.
func (s *Service) confirm(ctx context.Context, db *store.DB, logID string, cps []Checkpoint, rep Report) (_ Report, ok bool, _ error) {
	h, err := readHead(ctx, db.SQL())
	if err != nil {
		return rep, false, err
	}
	prev, next := genesis(logID), int64(1)
	if h.baseSeq > 0 {
		found := false
		for _, c := range cps {
			if c.Kind == Retention && c.Seq == h.baseSeq && bytes.Equal(c.hash, h.baseHash) {
				found = true
			}
		}
		if !found {
			return rep, false, nil
		}
		prev, next = h.baseHash, h.baseSeq+1
	}
	ci := 0
	for ci < len(cps) && cps[ci].Seq < next {
		ci++
	}
	// The ranges start at next: an event before it is left to
	// walkSequential.
	var first sql.NullInt64
	if err := db.SQL().QueryRowContext(ctx, "SELECT MIN(seq) FROM audit_events").Scan(&first); err != nil {
		return rep, false, fmt.Errorf("audit: verify: %w", err)
	}
	if first.Valid && first.Int64 < next {
		return rep, false, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	readers := verifyReaders()
	// ordered bounds the ranges in flight: the dispatcher waits when the
	// checker is that far behind.
	ordered := make(chan *verifyRange, 2*readers)
	work := make(chan *verifyRange)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(ordered)
		for lo := next; lo <= h.seq; lo += verifyChunk {
			r := &verifyRange{lo: lo, hi: min(lo+verifyChunk-1, h.seq), done: make(chan struct{})}
			select {
			case ordered <- r:
			case <-ctx.Done():
				return
			}
			select {
			case work <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				readRange(ctx, db, logID, r)
			}
		}()
	}
	for r := range ordered {
		select {
		case <-r.done:
		case <-ctx.Done():
			return rep, false, ctx.Err()
		}
		if r.err != nil || r.doubt {
			// A read error happens again in walkSequential, which returns it.
			return rep, false, ctx.Err()
		}
		for _, l := range r.links {
			if l.seq != next || !bytes.Equal(l.prev, prev) || !bytes.Equal(l.sum, l.hash) {
				return rep, false, nil
			}
			for ci < len(cps) && cps[ci].Seq == l.seq {
				if !bytes.Equal(cps[ci].hash, l.sum) {
					return rep, false, nil
				}
				ci++
			}
			prev = l.sum
			rep.EventsChecked++
			next++
		}
	}
	last := next - 1
	if last != h.seq || (last > h.baseSeq && !bytes.Equal(prev, h.hash)) || ci < len(cps) {
		return rep, false, nil
	}
	rep.Head = HeadInfo{Seq: last, Hash: hex.EncodeToString(prev)}
	if last == h.baseSeq {
		rep.Head.Hash = hex.EncodeToString(h.baseHash)
	}
	rep.OK = true
	return rep, true, nil
}

// On SQLite, the query of readRange reads an event in four columns: its
// seq, its stored hashes and, in one text, its time and every hashed field
// joined by a unit separator (0x1f), the details last. The driver's cost
// is per column, and this is a third of what fifteen columns cost. No
// stored field can hold the separator (normalize drops control
// characters, JSON escapes them), so a text with other than eleven (a NULL
// field is left out by concat_ws) is a row that readRange does not take.
// The time is the stored text (sqliteTimeText turns it into the hashed
// form; a TEXT column holds only text, blobs, which are joined as their
// bytes, or NULL). PostgreSQL's rows are read raw (readRangeRaw).
const rangeSQLite = `SELECT seq, concat_ws(x'1f', time, id, actor_type, actor_id, action, resource_type, resource_id, outcome, ip,
	user_agent, request_id, details), prev_hash, hash FROM audit_events WHERE seq BETWEEN $1 AND $2 ORDER BY seq`

// fieldSep ends each field but the last in the text of rangeSQLite.
const fieldSep = 0x1f

// readRange reads the events of r and recomputes their hashes, each over
// the previous hash stored in its row. It closes r.done when it is done.
func readRange(ctx context.Context, db *store.DB, logID string, r *verifyRange) {
	defer close(r.done)
	if db.Driver() == store.Postgres {
		readRangeRaw(ctx, db, logID, r)
		return
	}
	rows, err := db.SQL().QueryContext(ctx, rangeSQLite, r.lo, r.hi)
	if err != nil {
		r.err = err
		return
	}
	defer rows.Close()
	var (
		seq              int64
		text, prev, hash sql.RawBytes
		col              [eventFields]sql.RawBytes
		timeBuf          [len(timeLayout)]byte
		dest             = []any{&seq, &text, &prev, &hash}
		buf              = make([]byte, 0, 1024)
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			r.err = err
			return
		}
		// The time, then the other ten fields, each up to its separator;
		// the details are what is left, with no separator in them.
		rest := text
		for i := range col {
			j := bytes.IndexByte(rest, fieldSep)
			if j < 0 {
				r.doubt = true
				return
			}
			col[i], rest = rest[:j], rest[j+1:]
		}
		if bytes.IndexByte(rest, fieldSep) >= 0 {
			r.doubt = true
			return
		}
		t, ok := sqliteTimeText(timeBuf[:0], col[0])
		if !ok {
			r.doubt = true
			return
		}
		col[0] = t
		// col holds time, id, ...; hashInput wants id, time, ...
		col[0], col[1] = col[1], col[0]
		buf = hashInput(buf, logID, prev, seq, &col, rest)
		r.add(seq, prev, hash, sha256.Sum256(buf))
	}
	r.err = rows.Err()
}

// rangeRaw reads a range of events on PostgreSQL for readRangeRaw, each
// column in the server's binary form.
const rangeRaw = `SELECT seq, time, id, actor_type, actor_id, action, resource_type, resource_id, outcome, ip, user_agent,
	request_id, details, prev_hash, hash FROM audit_events WHERE seq BETWEEN $1 AND $2 ORDER BY seq`

// pgEpoch is the zero of PostgreSQL's binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// readRangeRaw is readRange on PostgreSQL: the rows are read as they come
// off the wire (store.DB.RawRows), which costs a fraction of scanning
// them through database/sql, and the time, 8 bytes of microseconds, is
// formatted here. A row of any other shape (a NULL, a value of another
// length, a time that is ±infinity) is doubt.
func readRangeRaw(ctx context.Context, db *store.DB, logID string, r *verifyRange) {
	var (
		col     [eventFields]sql.RawBytes
		timeBuf [len(timeLayout) + 8]byte
		buf     = make([]byte, 0, 1024)
	)
	errDoubt := errors.New("doubt")
	err := db.RawRows(ctx, rangeRaw, []any{r.lo, r.hi}, func(v [][]byte) error {
		if len(v) != 15 || len(v[0]) != 8 || len(v[1]) != 8 {
			return errDoubt
		}
		for _, x := range v {
			if x == nil {
				return errDoubt
			}
		}
		seq := int64(binary.BigEndian.Uint64(v[0]))
		us := int64(binary.BigEndian.Uint64(v[1]))
		if us == math.MaxInt64 || us == math.MinInt64 {
			return errDoubt
		}
		col[0] = v[2] // id, then the time, as hashInput wants
		col[1] = pgEpoch.Add(time.Duration(us)*time.Microsecond).AppendFormat(timeBuf[:0], timeLayout)
		for i := 2; i < eventFields; i++ {
			col[i] = v[i+1]
		}
		prev, hash := v[13], v[14]
		buf = hashInput(buf, logID, prev, seq, &col, v[12])
		r.add(seq, prev, hash, sha256.Sum256(buf))
		return nil
	})
	switch {
	case errors.Is(err, errDoubt):
		r.doubt = true
	case err != nil:
		r.err = err
	}
}

// sqliteTimeText turns a time as package store/sqlite stores it in UTC,
// "2006-01-02 15:04:05.999999999+00:00" (no fraction when it is zero),
// into its hashed form (timeText), appended to dst. It reports false for
// any other text, or a date that does not exist, which the caller leaves
// to the driver's parsing.
func sqliteTimeText(dst, s []byte) ([]byte, bool) {
	const zone = "+00:00"
	if len(s) < len("2006-01-02 15:04:05")+len(zone) || string(s[len(s)-len(zone):]) != zone {
		return nil, false
	}
	s = s[:len(s)-len(zone)]
	if s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return nil, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return nil, false
	}
	if time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() != day { // e.g. February 30
		return nil, false
	}
	frac := s[19:]
	if len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 || num(frac[1:]) < 0 {
			return nil, false
		}
		frac = frac[1:]
	}
	dst = append(dst, s[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, s[11:19]...)
	dst = append(dst, '.')
	for i := range 6 { // microseconds, cut as timeText cuts
		if i < len(frac) {
			dst = append(dst, frac[i])
		} else {
			dst = append(dst, '0')
		}
	}
	return append(dst, 'Z'), true
}

// walkSequential walks the log in one query, event by event: it names
// the first problem, where walk only confirms a log that has none.
func (s *Service) walkSequential(ctx context.Context, db *store.DB, logID string, cps []Checkpoint, rep Report) (Report, error) {
	fail := func(seq int64, format string, args ...any) (Report, error) {
		rep.OK = false
		rep.FirstBadSeq = &seq
		rep.Problem = fmt.Sprintf(format, args...)
		return rep, nil
	}
	// Read the head before the events: events appended meanwhile are past
	// it and not checked; the walk stops at it.
	h, err := readHead(ctx, db.SQL())
	if err != nil {
		return rep, err
	}
	prev, next := genesis(logID), int64(1)
	verified := int64(0) // seq of the last checkpoint matched
	if h.baseSeq > 0 {
		found := false
		for _, c := range cps {
			if c.Kind == Retention && c.Seq == h.baseSeq && bytes.Equal(c.hash, h.baseHash) {
				found = true
			}
		}
		if !found {
			return fail(h.baseSeq+1, "the log starts after seq %d, but no signed retention checkpoint says events up to it were removed", h.baseSeq)
		}
		prev, next, verified = h.baseHash, h.baseSeq+1, h.baseSeq
	}
	ci := 0
	for ci < len(cps) && cps[ci].Seq < next {
		ci++
	}
	rows, err := db.SQL().QueryContext(ctx, "SELECT "+eventColumns+" FROM audit_events WHERE seq <= $1 ORDER BY seq", h.seq)
	if err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	var e rawEvent
	buf := make([]byte, 0, 1024)
	for rows.Next() {
		if err := scanEvent(rows, &e); err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		if e.Seq < next {
			return fail(e.Seq, "event %d lies before the start of the log (seq %d)", e.Seq, next)
		}
		if e.Seq != next {
			return fail(next, "event %d is missing (the next one is %d)", next, e.Seq)
		}
		if !bytes.Equal(e.prevHash, prev) {
			return fail(e.Seq, "event %d does not link to the event before it (removed, reordered or rewritten)", e.Seq)
		}
		var sum []byte
		sum, buf = chainHash(buf, logID, prev, &e.Event, e.details)
		if !bytes.Equal(sum, e.hash) {
			return fail(e.Seq, "event %d was changed after it was written (its hash does not match its content)", e.Seq)
		}
		for ci < len(cps) && cps[ci].Seq == e.Seq {
			if !bytes.Equal(cps[ci].hash, sum) {
				return fail(verified+1, "the events from seq %d to %d are not those signed in the checkpoint at seq %d (rewritten)", verified+1, e.Seq, e.Seq)
			}
			verified = e.Seq
			ci++
		}
		prev = append(prev[:0:0], sum...)
		rep.EventsChecked++
		next++
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	last := next - 1
	rep.Head = HeadInfo{Seq: last, Hash: hex.EncodeToString(prev)}
	if last == h.baseSeq {
		rep.Head.Hash = hex.EncodeToString(h.baseHash)
	}
	if last != h.seq || (last > h.baseSeq && !bytes.Equal(prev, h.hash)) {
		return fail(last+1, "events after seq %d are missing: the log's head is at seq %d (truncated)", last, h.seq)
	}
	if ci < len(cps) {
		c := cps[len(cps)-1]
		return fail(last+1, "events after seq %d are missing: a checkpoint signed at %s covers seq %d (truncated, or replaced with an older copy)",
			last, c.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), c.Seq)
	}
	rep.OK = true
	return rep, nil
}
