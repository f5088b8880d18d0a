package token

import (
	"bulwark/internal/storetest"
	"context"
	"testing"
	"time"
)

// The target: 200,000 verifications/s per core with warm keys.

// benchIssuer returns a warm Issuer on the real clock, as in production.
func benchIssuer(b *testing.B) (*Issuer, *memKeys, *clock, string) {
	clk := storetest.NewClock(time.Now()) // for golang-jwt; the Issuer has time.Now
	k := newMemKeys(b)
	is, err := NewIssuer(k, Options{Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := is.Issue(context.Background(), "0192f3a4-5b6c-7d8e-9f00-112233445566",
		"0192f3a4-5b6c-7d8e-9f00-665544332211", []string{"pwd", "otp"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := is.Verify(context.Background(), tok); err != nil { // warm
		b.Fatal(err)
	}
	return is, k, clk, tok
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

func BenchmarkVerify(b *testing.B) {
	is, _, _, tok := benchIssuer(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkVerify_Parallel(b *testing.B) {
	is, _, _, tok := benchIssuer(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := is.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// BenchmarkVerify_Refused: a forged signature under a valid kid costs what a
// verification costs, and an unknown kid less.
func BenchmarkVerify_Refused(b *testing.B) {
	is, _, _, tok := benchIssuer(b)
	ctx := context.Background()
	forged := tok[:len(tok)-2] + "AA"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Verify(ctx, forged); err == nil {
			b.Fatal("verified")
		}
	}
}

func BenchmarkVerify_GolangJWT(b *testing.B) {
	_, k, clk, tok := benchIssuer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := libParse(tok, k, clk); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkIssue(b *testing.B) {
	is, _, _, _ := benchIssuer(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := is.Issue(ctx, "0192f3a4-5b6c-7d8e-9f00-112233445566",
			"0192f3a4-5b6c-7d8e-9f00-665544332211", []string{"pwd", "otp"}); err != nil {
			b.Fatal(err)
		}
	}
}
