package audit

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// Event ids are UUIDv7 of the event's time, each one new, across many
// refills of the source's randomness.
func TestEventIDs_AreUUIDv7OfTheEventTime(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 30, 15, 123456789, time.UTC)
	seen := map[string]bool{}
	for i := range 5000 { // 12 refills of 4 KiB
		id, err := eventIDs.next(at)
		if err != nil {
			t.Fatal(err)
		}
		u, err := uuid.Parse(id)
		if err != nil || u.String() != id {
			t.Fatalf("id %d %q does not parse as a UUID in its text form: %v", i, id, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %q is version %d variant %v, want 7 and RFC 4122", id, u.Version(), u.Variant())
		}
		if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != at.UnixMilli() {
			t.Fatalf("id %q holds %v, want %v to the millisecond", id, time.Unix(sec, nsec).UTC(), at)
		}
		if seen[id] {
			t.Fatalf("id %q given twice", id)
		}
		seen[id] = true
	}
}
