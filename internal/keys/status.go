package keys

import (
	"context"
	"fmt"
	"time"
)

// KeyVersion is one stored version of an org key.
type KeyVersion struct {
	Version   int
	KEKID     string    // the KEK that wraps it
	CreatedAt time.Time // UTC
}

// OrgKeyStatus describes the keys of one org and their use since this
// process started. It holds no key material.
type OrgKeyStatus struct {
	OrgID        string
	Primary      int          // the data key version new values are sealed with
	Data         []KeyVersion // every data key version, oldest first
	Index        []KeyVersion // the blind-index key
	Seals        uint64
	Opens        uint64
	Unwraps      uint64
	BlindIndexes uint64
}

// Status returns the keys of every org that has keys, by org id. Operators
// call it (bulwark keys status).
func (r *Ring) Status(ctx context.Context) ([]OrgKeyStatus, error) {
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
			use := r.use.peek(org)
			out = append(out, OrgKeyStatus{OrgID: org, Seals: use.seals.Load(), Opens: use.opens.Load(),
				Unwraps: use.unwraps.Load(), BlindIndexes: use.blindIndexes.Load()})
		}
		s := &out[len(out)-1]
		if purpose == purposeData {
			s.Data = append(s.Data, v)
			s.Primary = v.Version
		} else {
			s.Index = append(s.Index, v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: status: %w", err)
	}
	return out, nil
}
