package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// The kinds of checkpoints.
const (
	Periodic  = "periodic"  // taken by the server for logs that grew
	OnDemand  = "on_demand" // asked for (bulwark audit checkpoint, tests)
	Retention = "retention" // taken before retention removes the events up to it
)

// Checkpoint is a log's head (seq, hash) signed with the keyring's
// Ed25519 audit_checkpoint key and kept in the control database.
type Checkpoint struct {
	LogID     string    `json:"-"`
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"` // hex
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	KID       string    `json:"kid"`

	hash, sig []byte
}

// checkpointMessage is what a checkpoint's signature covers.
func checkpointMessage(logID string, seq int64, hash []byte, kind string, at time.Time) []byte {
	b := lp(nil, "bulwark/audit/checkpoint/v1")
	b = lp(b, logID)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = lpb(b, hash)
	b = lp(b, kind)
	return lp(b, timeText(at))
}

// Checkpoint signs the current head of log logID and stores it. It
// returns nil and no error when the log is empty. A checkpoint of a head
// that has one of the same kind already is not stored twice.
func (s *Service) Checkpoint(ctx context.Context, logID, kind string) (*Checkpoint, error) {
	var h head
	err := s.logDB(ctx, logID, func(db *store.DB) error {
		if err := s.chain(ctx, db, logID); err != nil {
			return err
		}
		var err error
		if h, err = readHead(ctx, db.SQL()); err != nil {
			return err
		}
		// The head is signed into the control database: it must not be
		// lost by a crash that keeps the signature.
		return db.Sync()
	})
	if err != nil {
		return nil, err
	}
	if h.seq == 0 || h.seq == h.baseSeq {
		return nil, nil
	}
	return s.sign(ctx, logID, h.seq, h.hash, kind)
}

// sign stores a checkpoint of (seq, hash).
func (s *Service) sign(ctx context.Context, logID string, seq int64, hash []byte, kind string) (*Checkpoint, error) {
	kid, priv, err := s.ring.SigningKey(ctx, keys.SignAuditCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint key: %w", err)
	}
	at := s.opts.Now().UTC().Truncate(time.Microsecond)
	sig := ed25519.Sign(ed25519.PrivateKey(priv), checkpointMessage(logID, seq, hash, kind, at))
	if _, err := s.st.Control().SQL().ExecContext(ctx, `INSERT INTO audit_checkpoints (log_id, seq, hash, kind, created_at, kid, signature)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (log_id, seq, kind) DO NOTHING`, logID, seq, hash, kind, at, kid, sig); err != nil {
		return nil, fmt.Errorf("audit: store checkpoint: %w", err)
	}
	return &Checkpoint{LogID: logID, Seq: seq, Hash: hex.EncodeToString(hash), Kind: kind, CreatedAt: at, KID: kid, hash: hash, sig: sig}, nil
}

// checkpoints returns the log's checkpoints in seq order, each checked
// against the keyring's verification keys: bad is the first whose
// signature does not verify (nil if none).
func (s *Service) checkpoints(ctx context.Context, logID string) (all []Checkpoint, bad *Checkpoint, err error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT seq, hash, kind, created_at, kid, signature
FROM audit_checkpoints WHERE log_id = $1 ORDER BY seq, kind`, logID)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c := Checkpoint{LogID: logID}
		if err := rows.Scan(&c.Seq, &c.hash, &c.Kind, &c.CreatedAt, &c.KID, &c.sig); err != nil {
			return nil, nil, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		c.CreatedAt = c.CreatedAt.UTC()
		c.Hash = hex.EncodeToString(c.hash)
		all = append(all, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	if len(all) == 0 {
		return nil, nil, nil
	}
	pubs, err := s.ring.VerificationKeys(ctx, keys.SignAuditCheckpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: checkpoint keys: %w", err)
	}
	for i := range all {
		c := &all[i]
		pub, ok := pubs[c.KID]
		if !ok || len(pub) != ed25519.PublicKeySize ||
			!ed25519.Verify(ed25519.PublicKey(pub), checkpointMessage(logID, c.Seq, c.hash, c.Kind, c.CreatedAt), c.sig) {
			return all, c, nil
		}
	}
	return all, nil, nil
}

// CheckpointDirty checkpoints every log this process appended to since
// its last checkpoint. A server calls it periodically.
func (s *Service) CheckpointDirty(ctx context.Context) error {
	return s.eachPending(ctx, s.dirty, "checkpoint of", func(logID string) error {
		_, err := s.Checkpoint(ctx, logID, Periodic)
		return err
	})
}

// ForgetLog drops the checkpoints of a deleted org's log, and forgets that
// it has events to chain, index or sign, and where its head stood.
func (s *Service) ForgetLog(ctx context.Context, logID string) error {
	if _, err := s.st.Control().SQL().ExecContext(ctx, "DELETE FROM audit_checkpoints WHERE log_id = $1", logID); err != nil {
		return fmt.Errorf("audit: drop checkpoints: %w", err)
	}
	s.mu.Lock()
	delete(s.dirty, logID)
	delete(s.unchained, logID)
	delete(s.waitingSince, logID)
	delete(s.heads, logID)
	delete(s.headRows, logID)
	delete(s.written, logID)
	delete(s.indexed, logID)
	delete(s.taken, logID)
	s.mu.Unlock()
	s.feed.forget(logID)
	return nil
}
