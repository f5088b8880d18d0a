package audit

import (
	"crypto/sha256"
	"encoding/binary"
)

// The chain hash as specified, written out apart from the code that
// computes it (encodeFields, chainSegments, sumOf): the tests hold that
// code to it, and build with it what an attacker or an older version
// would have written.

// chainHash is SHA-256 over the log id, the previous hash and a canonical
// encoding of every field of the event (each length-prefixed, so no two
// events encode alike). details is the stored canonical JSON. It returns
// the hash and the encoding, built in buf.
func chainHash(buf []byte, logID string, prev []byte, e *Event, details []byte) ([]byte, []byte) {
	b := hashInput(buf, logID, prev, e.Seq, eventFieldsOf(e), details)
	sum := sha256.Sum256(b)
	return sum[:], b
}

// eventFieldsOf returns the hashed text fields of e, in hashInput's order.
func eventFieldsOf(e *Event) *[eventFields]string {
	return &[eventFields]string{e.ID, timeText(e.Time), e.Actor.Type, e.Actor.ID, e.Action, e.Resource.Type,
		e.Resource.ID, e.Outcome, e.IP, e.UserAgent, e.RequestID}
}

// hashInput builds, in buf, the encoding that chainHash hashes. fields are
// the event's id, time (timeText), actor type and id, action, resource
// type and id, outcome, ip, user agent and request id, in that order.
func hashInput[T ~string | ~[]byte](buf []byte, logID string, prev []byte, seq int64, fields *[eventFields]T, details []byte) []byte {
	b := buf[:0]
	b = lp(b, "bulwark/audit/event/v1")
	b = lp(b, logID)
	b = lpb(b, prev)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return lpb(b, details)
}
