package audit

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// eventIDs gives events their ids: UUIDv7 (RFC 9562), the Unix time in
// milliseconds then 74 random bits, the randomness read from crypto/rand
// 4 KiB at a time rather than 10 bytes per event (uuid.NewV7 read the
// system's generator for each one: a seventh of an append's checks and
// encoding, which on SQLite run in the group commit's leader).
var eventIDs idSource

type idSource struct {
	mu  sync.Mutex
	buf [4096]byte
	off int // bytes of buf used; len(buf) when empty
}

func init() { eventIDs.off = len(eventIDs.buf) }

// next returns a new UUIDv7 at t, in its text form.
func (s *idSource) next(t time.Time) (string, error) {
	var u [16]byte
	s.mu.Lock()
	if s.off+10 > len(s.buf) {
		if _, err := rand.Read(s.buf[:]); err != nil {
			s.mu.Unlock()
			return "", fmt.Errorf("audit: event id: %w", err)
		}
		s.off = 0
	}
	copy(u[6:], s.buf[s.off:s.off+10])
	clear(s.buf[s.off : s.off+10]) // used randomness is not kept
	s.off += 10
	s.mu.Unlock()
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint16(u[0:], uint16(ms>>32))
	binary.BigEndian.PutUint32(u[2:], uint32(ms))
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // variant 10
	return uuid.UUID(u).String(), nil
}
