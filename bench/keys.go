package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// keysSealOpen measures Seal and Open of 256 B and 4 KiB values with a warm
// key cache, next to raw AES-256-GCM (crypto/cipher, a random nonce per
// seal, as Seal does) in the same run, and the cold path: Seal of an org
// whose key is not cached, unwrapped through the local KEK; and reads of an
// encrypted file at random offsets (keysStreamReadAt).
func keysSealOpen(ctx context.Context, emit func(row)) error {
	opts, cleanup, err := storage(ctx, "sqlite", 100)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := store.Open(ctx, opts, keys.ControlSchema())
	if err != nil {
		return err
	}
	defer st.Close()
	kek, err := keys.OpenLocalKEK(opts.DataDir)
	if err != nil {
		return err
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{CacheSize: 100000, CacheTTL: time.Hour})
	if err != nil {
		return err
	}
	newOrg := func() (string, error) {
		id := uuid.NewString()
		return id, st.Control().InTx(ctx, func(tx *store.Tx) error { return ring.CreateOrgKeys(ctx, tx, id) })
	}
	org, err := newOrg()
	if err != nil {
		return err
	}
	ad := keys.AD{Table: "records", RowID: "01J00000000000000000000000", Field: "record"}

	for _, size := range []int{256, 4096} {
		pt := make([]byte, size)
		rand.Read(pt)
		// Raw AES-256-GCM.
		key := make([]byte, 32)
		rand.Read(key)
		block, _ := aes.NewCipher(key)
		gcm, _ := cipher.NewGCM(block)
		nonce := make([]byte, gcm.NonceSize())
		rawSeal := func() error {
			rand.Read(nonce)
			out := make([]byte, 0, len(nonce)+len(pt)+gcm.Overhead())
			out = append(out, nonce...)
			gcm.Seal(out, nonce, pt, nil)
			return nil
		}
		rawCT := gcm.Seal(append([]byte(nil), nonce...), nonce, pt, nil)
		rawOpen := func() error {
			_, err := gcm.Open(nil, rawCT[:12], rawCT[12:], nil)
			return err
		}
		sealed, err := ring.Seal(ctx, org, ad, pt)
		if err != nil {
			return err
		}
		seal := func() error { _, err := ring.Seal(ctx, org, ad, pt); return err }
		open := func() error { _, err := ring.Open(ctx, org, ad, sealed); return err }

		rs, err := measure(rawSeal)
		if err != nil {
			return err
		}
		ro, err := measure(rawOpen)
		if err != nil {
			return err
		}
		ks, err := measure(seal)
		if err != nil {
			return err
		}
		ko, err := measure(open)
		if err != nil {
			return err
		}
		target, limit := "overhead ≤ 2×", 2.0
		if size == 4096 {
			target, limit = "overhead ≤ +15%", 1.15
		}
		sealRatio, err := pairedRatio(rawSeal, seal)
		if err != nil {
			return err
		}
		openRatio, err := pairedRatio(rawOpen, open)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%dB", size)
		if size == 4096 {
			name = "4KiB"
		}
		emit(row{Scenario: "aes-gcm-raw-seal/" + name, OpsPerS: rs.opsPerS, P50: rs.p50, P99: rs.p99, Note: "crypto/cipher, same run"})
		emit(row{Scenario: "aes-gcm-raw-open/" + name, OpsPerS: ro.opsPerS, P50: ro.p50, P99: ro.p99, Note: "crypto/cipher, same run"})
		emit(row{Scenario: "keys-seal-warm/" + name, OpsPerS: ks.opsPerS, P50: ks.p50, P99: ks.p99, Target: target,
			Ratio: sealRatio / limit, Note: fmt.Sprintf("%.2f× the raw time (median of %d alternating rounds)", sealRatio, rounds)})
		emit(row{Scenario: "keys-open-warm/" + name, OpsPerS: ko.opsPerS, P50: ko.p50, P99: ko.p99, Target: target,
			Ratio: openRatio / limit, Note: fmt.Sprintf("%.2f× the raw time (median of %d alternating rounds)", openRatio, rounds)})
	}

	if err := keysStreamReadAt(ctx, ring, org, emit); err != nil {
		return err
	}

	// Cold: every org's first seal unwraps its keyset through the KEK.
	const cold = 500
	ids := make([]string, cold)
	for i := range ids {
		if ids[i], err = newOrg(); err != nil {
			return err
		}
	}
	fresh, err := keys.NewRing(ctx, st, kek, keys.Options{CacheSize: 100000, CacheTTL: time.Hour})
	if err != nil {
		return err
	}
	lat := make(latencies, 0, cold)
	pt := make([]byte, 256)
	start := time.Now()
	for _, id := range ids {
		t0 := time.Now()
		if _, err := fresh.Seal(ctx, id, ad, pt); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	emit(row{Scenario: "keys-seal-cold/256B", OpsPerS: float64(cold) / time.Since(start).Seconds(), P50: lat.pct(0.5), P99: lat.pct(0.99),
		Note: "uncached org key: read from the control DB (SQLite) + unwrap by the local KEK"})
	fmt.Fprintln(os.Stderr, "bench: keys done")
	return nil
}

// keysStreamReadAt measures reads of an encrypted file at random offsets:
// ReadAt of 4 KiB in a 64 MiB file, which decrypts the one or two 4 KiB
// segments that hold it, and NewReaderAt with a warm key cache, which reads
// the headers and authenticates the last segment.
func keysStreamReadAt(ctx context.Context, ring *keys.Ring, org string, emit func(row)) error {
	ad := keys.AD{Table: "files", RowID: "01J00000000000000000000000", Field: "content"}
	pt := make([]byte, 64<<20)
	rand.Read(pt)
	var write time.Duration
	file := bytes.NewBuffer(make([]byte, 0, len(pt)+len(pt)/100+4096))
	for _, dst := range []io.Writer{file, io.Discard} { // the second one timed
		w, err := ring.NewEncryptingWriter(ctx, org, ad, dst)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := w.Write(pt); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		write = time.Since(start)
	}
	src := bytes.NewReader(file.Bytes())
	sr, err := ring.NewReaderAt(ctx, org, ad, src, src.Size())
	if err != nil {
		return err
	}
	p := make([]byte, 4096)
	readAt := func() error {
		_, err := sr.ReadAt(p, mrand.Int64N(sr.Size()-int64(len(p))))
		return err
	}
	open := func() error {
		_, err := ring.NewReaderAt(ctx, org, ad, src, src.Size())
		return err
	}
	ra, err := measure(readAt)
	if err != nil {
		return err
	}
	op, err := measure(open)
	if err != nil {
		return err
	}
	emit(row{Scenario: "keys-stream-readat/4KiB", OpsPerS: ra.opsPerS, P50: ra.p50, P99: ra.p99,
		Note: fmt.Sprintf("random offset in a 64 MiB file in memory; writing one encrypts %.0f MB/s", float64(len(pt))/write.Seconds()/1e6)})
	emit(row{Scenario: "keys-stream-open", OpsPerS: op.opsPerS, P50: op.p50, P99: op.p99,
		Note: "NewReaderAt, key cached: headers + last segment"})
	return nil
}

type measured struct{ opsPerS, p50, p99 float64 }

// measure runs fn in a tight loop for a second for throughput, then times
// 20,000 single calls for the percentiles.
func measure(fn func() error) (measured, error) {
	var m measured
	for i := 0; i < 2000; i++ { // warm up
		if err := fn(); err != nil {
			return m, err
		}
	}
	n := 0
	start := time.Now()
	for time.Since(start) < time.Second {
		for i := 0; i < 500; i++ {
			if err := fn(); err != nil {
				return m, err
			}
		}
		n += 500
	}
	m.opsPerS = float64(n) / time.Since(start).Seconds()
	lat := make(latencies, 0, 20000)
	for i := 0; i < 20000; i++ {
		t0 := time.Now()
		if err := fn(); err != nil {
			return m, err
		}
		lat = append(lat, time.Since(t0))
	}
	m.p50, m.p99 = lat.pct(0.5), lat.pct(0.99)
	return m, nil
}

const rounds = 21

// pairedRatio runs raw and ours in alternating 50 ms rounds and returns the
// median of ours' time per call over raw's, so that a change in machine
// load hits both sides alike.
func pairedRatio(raw, ours func() error) (float64, error) {
	rate := func(fn func() error) (float64, error) {
		n := 0
		start := time.Now()
		for time.Since(start) < 50*time.Millisecond {
			for i := 0; i < 100; i++ {
				if err := fn(); err != nil {
					return 0, err
				}
			}
			n += 100
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	ratios := make([]float64, 0, rounds)
	for i := 0; i < rounds; i++ {
		r, err := rate(raw)
		if err != nil {
			return 0, err
		}
		o, err := rate(ours)
		if err != nil {
			return 0, err
		}
		ratios = append(ratios, r/o)
	}
	sort.Float64s(ratios)
	return ratios[len(ratios)/2], nil
}
