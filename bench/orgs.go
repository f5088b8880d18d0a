package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"bulwark/internal/org"
	"bulwark/internal/store"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// storage gives a scenario fresh, empty storage on driver and a function
// that removes it again.
func storage(ctx context.Context, driver string, maxOpen int) (store.Options, func(), error) {
	opts := store.Options{
		Driver:         store.Driver(driver),
		MaxOpenOrgs:    maxOpen,
		IdleTimeout:    time.Hour,
		MaxConnsPerOrg: 2,
		BusyTimeout:    5 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	dir, err := os.MkdirTemp("", "bulwark-bench")
	if err != nil {
		return opts, nil, err
	}
	opts.DataDir = dir
	if driver == "sqlite" {
		return opts, func() { os.RemoveAll(dir) }, nil
	}
	server := os.Getenv("BULWARK_BENCH_POSTGRES")
	if server == "" {
		os.RemoveAll(dir)
		return opts, nil, fmt.Errorf("BULWARK_BENCH_POSTGRES is not set (make bench starts a throwaway server)")
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return opts, nil, err
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "bench_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return opts, nil, err
	}
	u, err := url.Parse(server)
	if err != nil {
		return opts, nil, err
	}
	u.Path = "/" + name
	opts.URL = u.String()
	cleanup := func() {
		defer admin.Close()
		defer os.RemoveAll(dir)
		if os.Getenv("BULWARK_BENCH_THROWAWAY") != "" {
			return // scripts/bench.sh discards the whole cluster
		}
		rows, err := admin.QueryContext(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, name+"%")
		if err != nil {
			return
		}
		var names []string
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				names = append(names, n)
			}
		}
		rows.Close()
		for _, n := range names {
			admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+n+`" WITH (FORCE)`)
		}
	}
	return opts, cleanup, nil
}

func openOrgs(ctx context.Context, opts store.Options) (*store.Store, *org.Service, error) {
	st, err := store.Open(ctx, opts, org.ControlSchema(), org.OrgSchema())
	if err != nil {
		return nil, nil, err
	}
	return st, org.NewService(st, opts.Logger), nil
}

// orgCreate measures creating n orgs one after another: a control row, a new
// database and its migrations, each.
func orgCreate(ctx context.Context, driver string, n int, emit func(row)) error {
	opts, cleanup, err := storage(ctx, driver, 100)
	if err != nil {
		return err
	}
	defer cleanup()
	st, svc, err := openOrgs(ctx, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	lat := make(latencies, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := svc.Create(ctx, fmt.Sprintf("Org %d", i), fmt.Sprintf("org-%d", i)); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	total := time.Since(start)
	emit(row{OpsPerS: float64(n) / total.Seconds(), P50: lat.pct(0.50), P99: lat.pct(0.99),
		Note: fmt.Sprintf("%d orgs, serial, each a new database", n)})
	return nil
}

// orgOpen registers many orgs, keeps 1,000 handles open, reads the RSS, and
// measures cold opens of handles that are not open (each evicts the least
// recently used one, as under real load at the cap).
func orgOpen(ctx context.Context, driver string, emit func(row)) error {
	// 10,000 orgs as the issue asks on SQLite. On PostgreSQL each org is a
	// CREATE DATABASE (80 ms and 7.5 MB of disk here), so the default is the
	// 2,000 that the measurement needs; BULWARK_BENCH_ORGS=10000 for more.
	registered := 10000
	cold := 2000
	if driver == "postgres" {
		registered, cold = 2000, 1000
	}
	if v, err := strconv.Atoi(os.Getenv("BULWARK_BENCH_ORGS")); err == nil && v > 0 {
		registered = v
	}
	const open = 1000
	if registered < open+cold {
		registered = open + cold
	}
	opts, cleanup, err := storage(ctx, driver, open)
	if err != nil {
		return err
	}
	defer cleanup()
	st, svc, err := openOrgs(ctx, opts)
	if err != nil {
		return err
	}
	defer st.Close()

	ids, err := createMany(ctx, svc, registered)
	if err != nil {
		return err
	}
	use := func(id string) (time.Duration, error) {
		t0 := time.Now()
		h, err := st.AcquireOrg(ctx, id)
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		defer h.Release()
		var one int
		return d, h.DB().SQL().QueryRowContext(ctx, "SELECT 1").Scan(&one)
	}
	for _, id := range ids[:open] {
		if _, err := use(id); err != nil {
			return err
		}
	}
	if got := st.OpenOrgs(); got != open {
		return fmt.Errorf("%d handles open, want %d", got, open)
	}
	runtime.GC()
	rss := vmRSS()
	target := "-"
	ratio := 0.0
	if driver == "sqlite" {
		target, ratio = "RSS < 300 MiB", rss/300
	}
	emit(row{Scenario: "org-handles-1000/" + driver, RSSMiB: rss, Target: target, Ratio: ratio,
		Note: fmt.Sprintf("RSS with %d org handles open, %d orgs registered", open, registered)})

	// Warm: handles already open.
	warm := make(latencies, 0, open)
	start := time.Now()
	for _, id := range ids[:open] {
		d, err := use(id)
		if err != nil {
			return err
		}
		warm = append(warm, d)
	}
	emit(row{Scenario: "org-open-warm/" + driver, OpsPerS: float64(open) / time.Since(start).Seconds(),
		P50: warm.pct(0.5), P99: warm.pct(0.99), Note: "p50/p99: acquire of an open handle; ops/s: acquire + SELECT 1"})

	lat := make(latencies, 0, cold)
	start = time.Now()
	for _, id := range ids[open : open+cold] {
		d, err := use(id)
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	total := time.Since(start)
	p99 := lat.pct(0.99)
	r := row{Scenario: "org-open-cold/" + driver, OpsPerS: float64(cold) / total.Seconds(), P50: lat.pct(0.5), P99: p99,
		Note: fmt.Sprintf("%d registered, %d open; p50/p99: acquire (gate, open, migration and owner check, LRU eviction)", registered, open)}
	if driver == "sqlite" { // the issue sets the target on SQLite; PostgreSQL is reported
		r.Target, r.Ratio = "p99 < 10 ms", p99/10
	} else {
		r.Note += "; each a new server connection"
	}
	emit(r)
	return nil
}

// createMany registers n orgs with a few workers and returns their IDs in
// creation order.
func createMany(ctx context.Context, svc *org.Service, n int) ([]string, error) {
	ids := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o, err := svc.Create(ctx, fmt.Sprintf("Org %d", i), fmt.Sprintf("org-%d", i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ids[i] = o.ID
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
		if i%1000 == 999 {
			fmt.Fprintf(os.Stderr, "bench: %d/%d orgs registered\n", i+1, n)
		}
	}
	close(next)
	wg.Wait()
	return ids, firstErr
}

// vmRSS reads the resident set size of this process in MiB.
func vmRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
