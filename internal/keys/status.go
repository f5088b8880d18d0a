package keys

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"bulwark/internal/store"
)

// KeyVersion is one stored version of an org key.
type KeyVersion struct {
	Version   int
	KEKID     string    // the KEK that wraps it
	CreatedAt time.Time // UTC
}

// OrgKeyStatus describes the keys of one org and their use: the counts
// every process has flushed to the control database (FlushUse) plus those
// of this process not flushed yet. It holds no key material.
type OrgKeyStatus struct {
	OrgID        string
	Primary      int          // the data key version new values are sealed with
	Data         []KeyVersion // every data key version, oldest first
	Index        []KeyVersion // the blind-index key
	Stream       []KeyVersion // the stream key of files; none yet for an org made before stream keys that stored no file
	Seals        uint64
	Opens        uint64
	Unwraps      uint64
	BlindIndexes uint64
	LastUsed     time.Time // UTC; zero if the keys were never used
}

// keyUse is one org's use counts.
type keyUse struct {
	seals, opens, unwraps, blindIndexes uint64
	lastUsed                            time.Time
}

// Status returns the keys of every org that has keys, by org id. Operators
// call it (bulwark keys status).
func (r *Ring) Status(ctx context.Context) ([]OrgKeyStatus, error) {
	// Under flushMu, so that counts being flushed are not seen both in the
	// database and in memory.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	stored, err := r.storedUse(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: status: %w", err)
	}
	rows, err := r.st.Control().SQL().QueryContext(ctx,
		"SELECT org_id, purpose, version, kek_id, created_at FROM org_keys ORDER BY org_id, purpose, version")
	if err != nil {
		return nil, fmt.Errorf("keys: status: %w", err)
	}
	defer rows.Close()
	var out []OrgKeyStatus
	for rows.Next() {
		var org, purpose string
		var v KeyVersion
		if err := rows.Scan(&org, &purpose, &v.Version, &v.KEKID, &v.CreatedAt); err != nil {
			return nil, fmt.Errorf("keys: status: %w", err)
		}
		v.CreatedAt = v.CreatedAt.UTC()
		if len(out) == 0 || out[len(out)-1].OrgID != org {
			s, mem := stored[org], r.use.peek(org)
			st := OrgKeyStatus{OrgID: org,
				Seals:        s.seals + mem.seals.Load(),
				Opens:        s.opens + mem.opens.Load(),
				Unwraps:      s.unwraps + mem.unwraps.Load(),
				BlindIndexes: s.blindIndexes + mem.blindIndexes.Load(),
				LastUsed:     s.lastUsed,
			}
			if mem.seals.Load()|mem.opens.Load()|mem.unwraps.Load()|mem.blindIndexes.Load() != 0 {
				// Used since the last flush: now is as precise as orgUse is.
				if t := r.opts.Now().UTC(); t.After(st.LastUsed) {
					st.LastUsed = t
				}
			}
			out = append(out, st)
		}
		s := &out[len(out)-1]
		switch purpose {
		case purposeData:
			s.Data = append(s.Data, v)
			s.Primary = v.Version
		case purposeStream:
			s.Stream = append(s.Stream, v)
		default:
			s.Index = append(s.Index, v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: status: %w", err)
	}
	return out, nil
}

// storedUse reads the table org_key_use.
func (r *Ring) storedUse(ctx context.Context) (map[string]keyUse, error) {
	rows, err := r.st.Control().SQL().QueryContext(ctx,
		"SELECT org_id, seals, opens, unwraps, blind_indexes, last_used_at FROM org_key_use")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]keyUse{}
	for rows.Next() {
		var org string
		var seals, opens, unwraps, blind int64
		var last sql.NullTime
		if err := rows.Scan(&org, &seals, &opens, &unwraps, &blind, &last); err != nil {
			return nil, err
		}
		u := keyUse{seals: uint64(seals), opens: uint64(opens), unwraps: uint64(unwraps), blindIndexes: uint64(blind)}
		if last.Valid {
			u.lastUsed = last.Time.UTC()
		}
		out[org] = u
	}
	return out, rows.Err()
}

// FlushUse adds the key use this process counted since the last flush to
// the control table org_key_use, in one transaction, so that Status in any
// process shows it. Use counted while it runs is kept for the next flush:
// nothing is lost or counted twice. On error nothing is written and the
// counts stay in memory. Orgs whose keys are gone are skipped (their
// counts are dropped). The server calls it periodically and at shutdown;
// every command calls it before it exits.
func (r *Ring) FlushUse(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	type pending struct {
		org                                 string
		u                                   *orgUse
		seals, opens, unwraps, blindIndexes uint64
		lastUsed                            int64
	}
	var batch []pending
	r.use.m.Range(func(k, v any) bool {
		u := v.(*orgUse)
		p := pending{org: k.(string), u: u, lastUsed: r.opts.Now().UnixNano(),
			seals: u.seals.Load(), opens: u.opens.Load(), unwraps: u.unwraps.Load(), blindIndexes: u.blindIndexes.Load()}
		if p.seals|p.opens|p.unwraps|p.blindIndexes != 0 {
			batch = append(batch, p)
		}
		return true
	})
	if len(batch) == 0 {
		return nil
	}
	err := r.st.Control().InTx(ctx, func(tx *store.Tx) error {
		for _, p := range batch {
			// An org destroyed by another process: do not bring a row back.
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys WHERE org_id = $1", p.org).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			var last any // NULL when no use time was recorded yet
			if p.lastUsed != 0 {
				last = time.Unix(0, p.lastUsed).UTC().Truncate(time.Microsecond)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO org_key_use (org_id, seals, opens, unwraps, blind_indexes, last_used_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (org_id) DO UPDATE SET
	seals = org_key_use.seals + excluded.seals,
	opens = org_key_use.opens + excluded.opens,
	unwraps = org_key_use.unwraps + excluded.unwraps,
	blind_indexes = org_key_use.blind_indexes + excluded.blind_indexes,
	last_used_at = CASE WHEN org_key_use.last_used_at IS NULL OR excluded.last_used_at > org_key_use.last_used_at
		THEN excluded.last_used_at ELSE org_key_use.last_used_at END`,
				p.org, int64(p.seals), int64(p.opens), int64(p.unwraps), int64(p.blindIndexes), last); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("keys: flush key use: %w", err)
	}
	// Subtract what was written; what arrived meanwhile stays. The last use
	// time stays too: it is a time, not a count.
	for _, p := range batch {
		p.u.seals.Add(^(p.seals - 1))
		p.u.opens.Add(^(p.opens - 1))
		p.u.unwraps.Add(^(p.unwraps - 1))
		p.u.blindIndexes.Add(^(p.blindIndexes - 1))
	}
	return nil
}
