package password

import (
	"context"
	"testing"
)

// BenchmarkHashDefault is the cost of one new hash at DefaultParams: what a
// sign-up or password change spends, and what a Pool worker is busy for.
func BenchmarkHashDefault(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple", DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDefault is the cost of one login at DefaultParams.
func BenchmarkVerifyDefault(b *testing.B) {
	h, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := Verify(h, "correct horse battery staple", DefaultParams); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkPoolVerifyDefault is logins through a Pool of GOMAXPROCS
// workers from many goroutines: its ns/op is the server's login throughput.
func BenchmarkPoolVerifyDefault(b *testing.B) {
	h, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	p := NewPool(0, 1<<20)
	defer p.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := p.Verify(context.Background(), h, "correct horse battery staple"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}

func BenchmarkIsCommon(b *testing.B) {
	commonList()
	for b.Loop() {
		IsCommon("Qwerty123456")
	}
}
