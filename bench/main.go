package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// row is one line of the table. A scenario prints its rows as JSON lines.
type row struct {
	Scenario string  `json:"scenario"`
	OpsPerS  float64 `json:"ops_per_s,omitempty"`
	P50      float64 `json:"p50_ms,omitempty"`
	P99      float64 `json:"p99_ms,omitempty"`
	RSSMiB   float64 `json:"rss_mib,omitempty"` // a reading the scenario took itself (e.g. RSS with N handles open)
	Target   string  `json:"target,omitempty"`  // e.g. "p99 < 10 ms"
	Ratio    float64 `json:"ratio,omitempty"`   // measured / target: ≤ 1 meets a "less than" target
	Note     string  `json:"note,omitempty"`
	PeakMiB  float64 `json:"-"`
}

// scenario is one load scenario, run in its own process.
type scenario struct {
	name string
	run  func(ctx context.Context, emit func(row)) error
}

func scenarios() []scenario {
	return []scenario{
		{"org-create/sqlite", func(ctx context.Context, emit func(row)) error { return orgCreate(ctx, "sqlite", 1000, emit) }},
		{"org-create/postgres", func(ctx context.Context, emit func(row)) error { return orgCreate(ctx, "postgres", 300, emit) }},
		{"org-open/sqlite", func(ctx context.Context, emit func(row)) error { return orgOpen(ctx, "sqlite", emit) }},
		{"org-open/postgres", func(ctx context.Context, emit func(row)) error { return orgOpen(ctx, "postgres", emit) }},
		{"keys-seal-open", keysSealOpen},
		{"identity-login/sqlite", func(ctx context.Context, emit func(row)) error { return identityLogin(ctx, "sqlite", emit) }},
		{"identity-login/postgres", func(ctx context.Context, emit func(row)) error { return identityLogin(ctx, "postgres", emit) }},
		{"identity-login-flood/sqlite", func(ctx context.Context, emit func(row)) error { return identityLoginFlood(ctx, "sqlite", emit) }},
		{"identity-login-flood/postgres", func(ctx context.Context, emit func(row)) error { return identityLoginFlood(ctx, "postgres", emit) }},
		{"identity-authed-get-under-flood/sqlite", func(ctx context.Context, emit func(row)) error {
			return identityAuthedGetUnderFlood(ctx, "sqlite", emit)
		}},
		{"identity-authed-get-under-flood/postgres", func(ctx context.Context, emit func(row)) error {
			return identityAuthedGetUnderFlood(ctx, "postgres", emit)
		}},
		{"identity-token-verify", identityTokenVerify},
		{"audit-write/sqlite", func(ctx context.Context, emit func(row)) error { return auditWrite(ctx, "sqlite", emit) }},
		{"audit-write/postgres", func(ctx context.Context, emit func(row)) error { return auditWrite(ctx, "postgres", emit) }},
		{"audit-read/sqlite", func(ctx context.Context, emit func(row)) error { return auditRead(ctx, "sqlite", 1000000, emit) }},
		// 200,000 events on PostgreSQL: a million take 9 minutes to append
		// here (a round trip per statement); BULWARK_BENCH_AUDIT_EVENTS sets it.
		{"audit-read/postgres", func(ctx context.Context, emit func(row)) error { return auditRead(ctx, "postgres", 200000, emit) }},
		{"records-http/sqlite", func(ctx context.Context, emit func(row)) error { return recordsHTTP(ctx, "sqlite", emit) }},
		{"records-http/postgres", func(ctx context.Context, emit func(row)) error { return recordsHTTP(ctx, "postgres", emit) }},
	}
}

func main() {
	only := flag.String("only", "", "run only scenarios whose name contains this")
	child := flag.String("scenario", "", "run one scenario in this process (used by the runner)")
	flag.Parse()
	ctx := context.Background()
	if *child != "" {
		if err := runChild(ctx, *child); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", *child, err)
			os.Exit(1)
		}
		return
	}
	var rows []row
	failed := 0
	for _, s := range scenarios() {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: running %s\n", s.name)
		got, err := runParent(s.name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", s.name, err)
			rows = append(rows, row{Scenario: s.name, Note: "FAILED: " + err.Error()})
			failed++
			continue
		}
		rows = append(rows, got...)
	}
	printTable(rows)
	if failed > 0 {
		os.Exit(1)
	}
}

func runChild(ctx context.Context, name string) error {
	for _, s := range scenarios() {
		if s.name == name {
			if dir := os.Getenv("BULWARK_BENCH_CPUPROFILE"); dir != "" {
				f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".pprof"))
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			enc := json.NewEncoder(os.Stdout)
			return s.run(ctx, func(r row) {
				if r.Scenario == "" {
					r.Scenario = name
				}
				enc.Encode(r)
			})
		}
	}
	return fmt.Errorf("no scenario %q", name)
}

func runParent(name string) ([]row, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-scenario", name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var rows []row
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var r row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("bad output line %q", sc.Text())
		}
		rows = append(rows, r)
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	peak := 0.0
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peak = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	for i := range rows {
		rows[i].PeakMiB = peak
	}
	return rows, nil
}

func printTable(rows []row) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tops/s\tp50\tp99\tRSS\tpeak RSS\ttarget\tratio\tnote\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, num(r.OpsPerS, "%.0f"), ms(r.P50), ms(r.P99),
			mib(r.RSSMiB), mib(r.PeakMiB), r.Target, num(r.Ratio, "%.2f"), r.Note)
	}
	tw.Flush()
}

func num(v float64, f string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(f, v)
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	if v < 0.001 {
		return fmt.Sprintf("%.0fns", v*1e6)
	}
	if v < 1 {
		return fmt.Sprintf("%.0fµs", v*1000)
	}
	return fmt.Sprintf("%.2fms", v)
}

func mib(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fMiB", v)
}

// latencies collects durations and reports percentiles in milliseconds.
type latencies []time.Duration

func (l latencies) pct(p float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}
