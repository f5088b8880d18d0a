package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"bulwark/internal/store"
)

// BenchmarkAcquireOrg_ColdOpenWith1000Open measures a cold open of a SQLite
// org database while 1,000 others stay open, and the process's resident
// memory with them open. Targets: p99 < 10 ms, RSS < 300 MiB.
//
//	go test -run '^$' -bench ColdOpen -benchtime 1x ./internal/store
func BenchmarkAcquireOrg_ColdOpenWith1000Open(b *testing.B) {
	const resident = 1000
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Driver: store.SQLite, DataDir: b.TempDir(), MaxOpenOrgs: resident + 1}, notesSchema(2))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ids := make([]string, resident*2)
	for i := range ids {
		ids[i] = fmt.Sprintf("0190f5a0-0000-7000-8000-%012x", i)
		if err := st.CreateOrgDB(ctx, ids[i]); err != nil {
			b.Fatal(err)
		}
	}
	for _, id := range ids[:resident] {
		o, err := st.AcquireOrg(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.DB().SQL().Exec("INSERT INTO tags (name) VALUES ($1)", id); err != nil {
			b.Fatal(err)
		}
		o.Release()
	}
	b.ResetTimer()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		lat = lat[:0]
		for _, id := range ids[resident:] {
			start := time.Now()
			o, err := st.AcquireOrg(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			o.Release()
			st.Evict(id) // the next round opens it cold again
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(st.OpenOrgs()), "open-orgs")
	b.ReportMetric(rssMiB(), "rss-MiB")
}

// rssMiB reads VmRSS from /proc/self/status (Linux only; 0 elsewhere).
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
