package audit

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkPrepareEvent is the work Append does for each event before it
// is chained: on SQLite it runs inside the group commit's leader.
func BenchmarkPrepareEvent(b *testing.B) {
	src := Source{
		Actor:     Actor{Type: ActorUser, ID: "u-0042"},
		IP:        "198.51.100.7",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
		RequestID: "req-0123456789abcdef",
	}
	now := time.Now().UTC()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := src.Event("note.created", Resource{Type: "note", ID: "n" + strconv.Itoa(i)}, Success,
			map[string]string{"changed": "title,text", "size": "97"})
		p, err := prepareEvent(&e, nil, now)
		if err != nil {
			b.Fatal(err)
		}
		_ = p
	}
}
