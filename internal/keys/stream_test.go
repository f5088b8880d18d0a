package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// The layout of the ring's files: the 9-byte header, Tink's 40-byte
// header, then segments of 4096 bytes (4080 of plaintext; the first holds
// 40 bytes less).
const (
	testSegment      = 4096
	testPlain        = testSegment - gcmhkdfTagSize
	testFirstPlain   = testPlain - 40
	testSegmentsFrom = streamHeaderSize // segment i > 0 starts at testSegmentsFrom + i*testSegment
)

// writeFile encrypts pt for the org and ad, in writes of odd sizes.
func writeFile(t testing.TB, r *Ring, org string, ad AD, pt []byte) []byte {
	t.Helper()
	var file bytes.Buffer
	w, err := r.NewEncryptingWriter(context.Background(), org, ad, &file)
	if err != nil {
		t.Fatalf("NewEncryptingWriter: %v", err)
	}
	for rest := pt; len(rest) > 0; {
		n := min(len(rest), 1+mrand.IntN(10000))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return file.Bytes()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func openFile(r *Ring, org string, ad AD, file []byte) (*StreamReader, error) {
	return r.NewReaderAt(context.Background(), org, ad, bytes.NewReader(file), int64(len(file)))
}

func TestStreamFile_ReadsBackAtAnyOffsetAsTinksReaderDoes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		ad := AD{Table: "files", RowID: "f1", Field: "content"}
		for _, size := range []int{0, 1, testFirstPlain, testFirstPlain + 1, testFirstPlain + testPlain, 3<<20 + 17} {
			pt := randomBytes(size)
			file := writeFile(t, r, org, ad, pt)
			if want := streamHeaderSize + 40 + size + gcmhkdfTagSize*(1+max(0, (size-testFirstPlain+testPlain-1)/testPlain)); len(file) != want {
				t.Fatalf("size %d: file of %d bytes, want %d", size, len(file), want)
			}
			if bytes.Contains(file, pt[:min(size, 64)]) && size >= 16 {
				t.Fatalf("size %d: the file holds the plaintext", size)
			}

			// Tink's own reader, from the start.
			k, err := r.streamKey(ctx, org, 1)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := k.stream.aead.NewDecryptingReader(bytes.NewReader(file[streamHeaderSize:]), streamAD(file[:streamHeaderSize], org, ad))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(tr); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d: Tink's reader gave %d bytes, %v", size, len(got), err)
			}

			sr, err := openFile(r, org, ad, file)
			if err != nil {
				t.Fatalf("size %d: NewReaderAt: %v", size, err)
			}
			if sr.Size() != int64(size) {
				t.Fatalf("size %d: Size() = %d", size, sr.Size())
			}
			if got, err := io.ReadAll(sr.NewSectionReader(0, sr.Size())); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d: the whole file through a section reader: %d bytes, %v", size, len(got), err)
			}
			checkReadAt(t, sr, pt, 0, int64(size)+10)
			if size > 0 {
				checkReadAt(t, sr, pt, int64(size)-1, 1) // the last byte
			}
			for b := int64(testFirstPlain); b <= int64(size)+1; b += testPlain {
				for _, off := range []int64{b - 1, b, b + 1} {
					for _, n := range []int64{1, 2, 4096, testPlain + 2} {
						checkReadAt(t, sr, pt, off, n)
						checkReadAt(t, sr, pt, max(0, off-n+1), n)
					}
				}
			}
			for i := 0; i < 300; i++ {
				checkReadAt(t, sr, pt, mrand.Int64N(int64(size)+2), 1+mrand.Int64N(3*testSegment))
			}
			if size > 100 {
				part := sr.NewSectionReader(50, 40)
				if got, err := io.ReadAll(part); err != nil || !bytes.Equal(got, pt[50:90]) {
					t.Fatalf("size %d: a section: %v", size, err)
				}
			}
		}
	})
}

func TestNewReaderAt_OpensOnlyWhereItWasWritten(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		orgA, orgB := newOrg(t, st, r), newOrg(t, st, r)
		ad := AD{Table: "files", RowID: "row-1", Field: "content"}
		pt := randomBytes(10000)
		file := writeFile(t, r, orgA, ad, pt)
		for _, tc := range []struct {
			name string
			org  string
			ad   AD
		}{
			{"other row", orgA, AD{"files", "row-2", "content"}},
			{"other field", orgA, AD{"files", "row-1", "thumbnail"}},
			{"other table", orgA, AD{"avatars", "row-1", "content"}},
			{"other org", orgB, ad},
			{"shifted boundary", orgA, AD{"files", "row-1c", "ontent"}},
		} {
			if sr, err := openFile(r, tc.org, tc.ad, file); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("%s: NewReaderAt = %v, %v; want invalid", tc.name, sr, err)
			}
		}
		if _, err := openFile(r, orgA, AD{Table: "files", Field: "content"}, file); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("NewReaderAt without a row id: %v, want invalid", err)
		}
		if _, err := openFile(r, "00000000-0000-0000-0000-000000000000", ad, file); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("NewReaderAt for an org without keys: %v, want not_found", err)
		}
		var dst bytes.Buffer
		if _, err := r.NewEncryptingWriter(context.Background(), orgA, AD{Table: "files", RowID: "r"}, &dst); apperr.CodeOf(err) != apperr.Invalid || dst.Len() != 0 {
			t.Errorf("NewEncryptingWriter without a field: %v, %d bytes written; want invalid, none", err, dst.Len())
		}
		if again := writeFile(t, r, orgA, ad, pt); bytes.Equal(again[:200], file[:200]) {
			t.Error("two files of one plaintext begin alike: salts or nonces repeat")
		}
	})
}

// mustNotOpen checks that file, a damaged copy of a file of pt, gives an
// error and never a byte that is not pt's: NewReaderAt fails, or reading
// the whole file does.
func mustNotOpen(t *testing.T, r *Ring, org string, ad AD, pt []byte, name string, file []byte) {
	t.Helper()
	sr, err := openFile(r, org, ad, file)
	if err != nil {
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("%s: NewReaderAt: %v (code %s), want invalid", name, err, apperr.CodeOf(err))
		}
		return
	}
	if sr.Size() != int64(len(pt)) {
		t.Errorf("%s: opened with size %d, want an error", name, sr.Size())
		return
	}
	buf := make([]byte, len(pt))
	n, err := sr.ReadAt(buf, 0)
	if err == nil || apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("%s: reading the whole file: %d bytes, %v; want invalid", name, n, err)
	}
	if !bytes.Equal(buf[:n], pt[:n]) {
		t.Errorf("%s: ReadAt gave %d bytes that are not the file's", name, n)
	}
}

func TestNewReaderAt_DamagedFilesFailCleanly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		ad := AD{Table: "files", RowID: "f1", Field: "content"}
		pt := randomBytes(testFirstPlain + 4*testPlain + 1000) // 6 segments, the last partial
		file := writeFile(t, r, org, ad, pt)
		seg := func(i int) []byte { // segment i > 0
			start := testSegmentsFrom + i*testSegment
			return file[start:min(start+testSegment, len(file))]
		}
		join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
		cut := func(i int) []byte { return file[:testSegmentsFrom+i*testSegment] }

		for _, n := range []int{0, 1, 4, 8, 9, 10, 48, 49, 50, 65, 66, testSegmentsFrom + testSegment, testSegmentsFrom + 2*testSegment,
			testSegmentsFrom + 5*testSegment, testSegmentsFrom + 5*testSegment + 16, len(file) - 17, len(file) - 16, len(file) - 1} {
			mustNotOpen(t, r, org, ad, pt, fmt.Sprintf("cut to %d bytes", n), file[:n])
		}
		mustNotOpen(t, r, org, ad, pt, "one byte appended", join(file, []byte{0}))
		mustNotOpen(t, r, org, ad, pt, "last segment repeated", join(file, seg(5)))
		mustNotOpen(t, r, org, ad, pt, "segment 2 dropped", join(cut(2), file[testSegmentsFrom+3*testSegment:]))
		mustNotOpen(t, r, org, ad, pt, "segment 2 duplicated", join(cut(3), seg(2), file[testSegmentsFrom+3*testSegment:]))
		mustNotOpen(t, r, org, ad, pt, "segments 1 and 2 swapped", join(cut(1), seg(2), seg(1), file[testSegmentsFrom+3*testSegment:]))
		mustNotOpen(t, r, org, ad, pt, "last two segments swapped", join(cut(4), seg(5), seg(4)))
		for i := 0; i < streamHeaderSize+40; i++ {
			bad := bytes.Clone(file)
			bad[i] ^= 0x01
			if _, err := openFile(r, org, ad, bad); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("header byte %d changed: NewReaderAt = %v, want invalid", i, err)
			}
		}
		// Another key version named in the header: not a version the org has.
		bad := bytes.Clone(file)
		bad[streamHeaderSize-1] = 2
		if _, err := openFile(r, org, ad, bad); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("version 2 named: %v, want invalid", err)
		}

		// A byte changed inside segment 2 is found when, and only when, a
		// read covers it; the segments around it still read right.
		bad = bytes.Clone(file)
		bad[testSegmentsFrom+2*testSegment+100] ^= 0x80
		mustNotOpen(t, r, org, ad, pt, "a byte of segment 2 changed", bad)
		sr, err := openFile(r, org, ad, bad)
		if err != nil {
			t.Fatal(err)
		}
		seg2 := int64(testFirstPlain + testPlain) // where segment 2's plaintext starts
		p := make([]byte, 10)
		if n, err := sr.ReadAt(p, seg2+5); err == nil || n != 0 {
			t.Fatalf("ReadAt inside the changed segment: %d, %v; want 0 and an error", n, err)
		}
		p = make([]byte, 100)
		if n, err := sr.ReadAt(p, seg2-50); apperr.CodeOf(err) != apperr.Invalid || n != 50 || !bytes.Equal(p[:50], pt[seg2-50:seg2]) {
			t.Fatalf("ReadAt across into the changed segment: %d, %v; want the 50 bytes before it and invalid", n, err)
		}
		checkReadAt(t, sr, pt, 0, seg2)
		checkReadAt(t, sr, pt, seg2+testPlain, int64(len(pt))-seg2-testPlain)
	})
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func TestReadAt_ReadsOnlyTheSegmentsItCovers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		ad := AD{Table: "files", RowID: "f1", Field: "content"}
		pt := randomBytes(8 << 20)
		file := writeFile(t, r, org, ad, pt)
		src := &countingReaderAt{r: bytes.NewReader(file)}
		sr, err := r.NewReaderAt(ctx, org, ad, src, int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		opened := src.n.Load()
		p := make([]byte, 1)
		if _, err := sr.ReadAt(p, 4<<20); err != nil || p[0] != pt[4<<20] {
			t.Fatalf("ReadAt in the middle: %v", err)
		}
		// The headers and the last segment to open; one segment to read.
		if total := src.n.Load(); opened > int64(streamHeaderSize+40+testSegment) || total > int64(2*testSegment+streamHeaderSize+40) {
			t.Fatalf("opening read %d bytes and a 1-byte ReadAt %d more, of a %d-byte file; want at most a segment each", opened, total-opened, len(file))
		}
		before := src.n.Load()
		p = make([]byte, 4096)
		off := int64(1<<20 + 1234)
		if _, err := sr.ReadAt(p, off); err != nil || !bytes.Equal(p, pt[off:off+4096]) {
			t.Fatalf("ReadAt of 4 KiB: %v", err)
		}
		if n := src.n.Load() - before; n > 2*testSegment {
			t.Fatalf("a 4 KiB ReadAt read %d bytes, want at most 2 segments", n)
		}

		// Concurrent reads, as of a file served to many range requests.
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 20000)
				for range 50 {
					off := mrand.Int64N(int64(len(pt)) - int64(len(p)))
					if _, err := sr.ReadAt(p, off); err != nil || !bytes.Equal(p, pt[off:off+int64(len(p))]) {
						t.Errorf("concurrent ReadAt at %d: %v", off, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}

func TestStreamKey_MadeOnFirstUseOnceAcrossProcesses(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		setup := newRing(t, st, kek, Options{})
		org := newOrg(t, st, setup)
		// An org made before files had keys: no stream key.
		if _, err := st.Control().SQL().ExecContext(ctx, "DELETE FROM org_keys WHERE org_id = $1 AND purpose = 'stream'", org); err != nil {
			t.Fatal(err)
		}
		streamKeys := func(org string) (n int) {
			st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys WHERE org_id = $1 AND purpose = 'stream'", org).Scan(&n)
			return n
		}
		if s := statusOf(t, setup, org); len(s.Stream) != 0 || len(s.Data) != 1 || len(s.Index) != 1 {
			t.Fatalf("status before first use: %+v", s)
		}

		// Two rings, as two processes would be, race to write the first files.
		recs := []*recorder{{}, {}}
		rings := []*Ring{newRing(t, st, kek, Options{Events: recs[0]}), newRing(t, st, kek, Options{Events: recs[1]})}
		ad := AD{Table: "files", RowID: "f", Field: "content"}
		files := make([][]byte, 16)
		var wg sync.WaitGroup
		for i := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b bytes.Buffer
				w, err := rings[i%2].NewEncryptingWriter(ctx, org, ad, &b)
				if err != nil {
					t.Errorf("first writes: %v", err)
					return
				}
				w.Write(fmt.Appendf(nil, "file %d", i))
				if err := w.Close(); err != nil {
					t.Error(err)
				}
				files[i] = b.Bytes()
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if n := streamKeys(org); n != 1 {
			t.Fatalf("%d stream keys after concurrent first uses, want 1", n)
		}
		created := 0
		for _, rec := range recs {
			rec.mu.Lock()
			for _, e := range rec.events {
				if e.Action == ActionCreated && e.Details["purpose"] == purposeStream {
					created++
				}
			}
			rec.mu.Unlock()
		}
		if created != 1 {
			t.Fatalf("%d stream key creation events, want 1", created)
		}
		fresh := newRing(t, st, kek, Options{})
		for i, file := range files {
			sr, err := openFile(fresh, org, ad, file)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, sr.Size())
			if _, err := sr.ReadAt(got, 0); err != nil || string(got) != fmt.Sprintf("file %d", i) {
				t.Fatalf("file %d = %q, %v", i, got, err)
			}
		}
		if s := statusOf(t, fresh, org); len(s.Stream) != 1 || s.Stream[0].Version != 1 || s.Stream[0].KEKID != kek.ID() {
			t.Fatalf("status after first use: %+v", s)
		}
		// An org made now has its stream key from the start.
		if n := streamKeys(newOrg(t, st, setup)); n != 1 {
			t.Fatalf("a new org has %d stream keys, want 1", n)
		}

		// An org without keys gets none, and nothing is written.
		none := "0196a1b2-0000-7000-8000-00000000abcd"
		var dst bytes.Buffer
		if _, err := rings[0].NewEncryptingWriter(ctx, none, ad, &dst); apperr.CodeOf(err) != apperr.NotFound || dst.Len() != 0 {
			t.Fatalf("NewEncryptingWriter for an org without keys: %v, %d bytes; want not_found, none", err, dst.Len())
		}
		if n := streamKeys(none); n != 0 {
			t.Fatalf("an org without keys got %d stream keys", n)
		}
	})
}

func TestDestroyOrgKeys_ShredsTheOrgsFiles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		r := newRing(t, st, kek, Options{})
		org, other := newOrg(t, st, r), newOrg(t, st, r)
		ad := AD{Table: "files", RowID: "f1", Field: "content"}
		pt := randomBytes(20000)
		file := writeFile(t, r, org, ad, pt) // a copy, as a backup holds
		otherFile := writeFile(t, r, other, ad, pt)
		if _, err := openFile(r, org, ad, file); err != nil {
			t.Fatal(err)
		}

		if err := r.DestroyOrgKeys(ctx, org); err != nil {
			t.Fatal(err)
		}
		for i, ring := range []*Ring{r, newRing(t, st, kek, Options{})} {
			if sr, err := openFile(ring, org, ad, file); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("ring %d: NewReaderAt after destruction = %v, %v; want not_found", i, sr, err)
			}
			// The key is not made again on first use.
			if _, err := ring.NewEncryptingWriter(ctx, org, ad, io.Discard); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("ring %d: NewEncryptingWriter after destruction: %v, want not_found", i, err)
			}
		}
		var n int
		st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys WHERE org_id = $1", org).Scan(&n)
		if n != 0 {
			t.Fatalf("%d keys of the destroyed org left", n)
		}
		if _, err := openFile(r, other, ad, otherFile); err != nil {
			t.Fatalf("another org's file after destruction: %v", err)
		}
		// Keys made anew under the same org id open none of the old files.
		if err := st.Control().InTx(ctx, func(tx *store.Tx) error { return r.CreateOrgKeys(ctx, tx, org) }); err != nil {
			t.Fatal(err)
		}
		if _, err := openFile(r, org, ad, file); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("NewReaderAt with recreated keys: %v, want invalid", err)
		}
	})
}

// TestDestroyOrgKeys_RacingAFirstFileLeavesNoKey runs DestroyOrgKeys while
// an org's stream key is being made on first use, each way round: in the
// end the org has no key at all. (On PostgreSQL a DELETE does not see rows
// committed after it began: without the locks the key would outlive the
// org's other keys and open its files.)
func TestDestroyOrgKeys_RacingAFirstFileLeavesNoKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := newLocalKEK(t)
		r := newRing(t, st, kek, Options{})
		keysOf := func(org string) (n int) {
			st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM org_keys WHERE org_id = $1", org).Scan(&n)
			return n
		}
		oldOrg := func() string {
			org := newOrg(t, st, r)
			if _, err := st.Control().SQL().ExecContext(ctx, "DELETE FROM org_keys WHERE org_id = $1 AND purpose = 'stream'", org); err != nil {
				t.Fatal(err)
			}
			return org
		}
		// hold runs fn in a transaction that stays open until release is
		// closed.
		hold := func(fn func(tx *store.Tx) error) (started, release chan struct{}, done chan error) {
			started, release, done = make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				done <- st.Control().InTx(ctx, func(tx *store.Tx) error {
					err := fn(tx)
					close(started)
					<-release
					return err
				})
			}()
			<-started
			return started, release, done
		}

		t.Run("destruction first", func(t *testing.T) {
			org := oldOrg()
			// What DestroyOrgKeys does in its transaction.
			_, release, done := hold(func(tx *store.Tx) error {
				if st.Driver() == store.Postgres {
					if _, err := tx.ExecContext(ctx, "SELECT 1 FROM org_keys WHERE org_id = $1 FOR UPDATE", org); err != nil {
						return err
					}
				}
				_, err := tx.ExecContext(ctx, "DELETE FROM org_keys WHERE org_id = $1", org)
				return err
			})
			first := make(chan error, 1)
			go func() {
				_, err := r.NewEncryptingWriter(ctx, org, AD{"files", "f", "content"}, io.Discard)
				first <- err
			}()
			time.Sleep(300 * time.Millisecond) // the first use waits for the destruction
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := <-first; apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("first file of an org being destroyed: %v, want not_found", err)
			}
			if n := keysOf(org); n != 0 {
				t.Fatalf("%d keys left", n)
			}
		})

		t.Run("creation first", func(t *testing.T) {
			org := oldOrg()
			h, err := newKeyset(purposeStream, 1)
			if err != nil {
				t.Fatal(err)
			}
			wrapped, err := r.wrap(ctx, kek, h, org, purposeStream, 1)
			if err != nil {
				t.Fatal(err)
			}
			_, release, done := hold(func(tx *store.Tx) error {
				return insertStreamKey(ctx, tx, st.Driver(), org, kek.ID(), wrapped)
			})
			destroyed := make(chan error, 1)
			go func() { destroyed <- r.DestroyOrgKeys(ctx, org) }()
			time.Sleep(300 * time.Millisecond) // the destruction waits for the creation
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := <-destroyed; err != nil {
				t.Fatal(err)
			}
			if n := keysOf(org); n != 0 {
				t.Fatalf("%d keys left after DestroyOrgKeys", n)
			}
		})
	})
}

func TestControlSchema_Version4KeepsKeysAndAllowsStreamKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		v3 := ControlSchema()
		v3.Migrations = v3.Migrations[:3]
		old, err := store.Open(ctx, opts, v3)
		if err != nil {
			t.Fatal(err)
		}
		kek := newLocalKEK(t)
		r := newRing(t, old, kek, Options{})
		// Orgs of a version 3 database: data and index keys only, enough
		// of them for the table to span pages.
		org := "0196a1b2-0000-7000-8000-000000000042"
		var wrapped [][]byte // org's
		err = old.Control().InTx(ctx, func(tx *store.Tx) error {
			for i := range 40 {
				id := fmt.Sprintf("0196a1b2-0000-7000-8000-0000000000%02d", i+20)
				for _, purpose := range []string{purposeData, purposeIndex} {
					h, err := newKeyset(purpose, 1)
					if err != nil {
						return err
					}
					w, err := r.wrap(ctx, kek, h, id, purpose, 1)
					if err != nil {
						return err
					}
					if id == org {
						wrapped = append(wrapped, w)
					}
					if err := insertKey(ctx, tx, id, purpose, 1, kek.ID(), w); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ad := AD{Table: "files", RowID: "f1", Field: "content"}
		sealed, err := r.Seal(ctx, org, AD{"records", "r1", "note"}, []byte("sealed before"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.NewEncryptingWriter(ctx, org, ad, io.Discard); err == nil {
			t.Fatal("a version 3 database took a stream key")
		}
		old.Close()

		st := openStore(t, opts) // migrates to version 4
		r = newRing(t, st, kek, Options{})
		if pt, err := r.Open(ctx, org, AD{"records", "r1", "note"}, sealed); err != nil || string(pt) != "sealed before" {
			t.Fatalf("a value sealed before the migration: %q, %v", pt, err)
		}
		pt := randomBytes(10000)
		file := writeFile(t, r, org, ad, pt)
		sr, err := openFile(r, org, ad, file)
		if err != nil {
			t.Fatal(err)
		}
		checkReadAt(t, sr, pt, 0, int64(len(pt)))
		// The constraints hold: no other purpose, one row per version.
		if _, err := st.Control().SQL().ExecContext(ctx, `INSERT INTO org_keys (org_id, purpose, version, kek_id, wrapped, created_at)
VALUES ($1, 'other', 1, 'k', $2, $3)`, org, []byte("x"), st.Now()); err == nil {
			t.Fatal("org_keys took purpose 'other'")
		}
		if _, err := st.Control().SQL().ExecContext(ctx, `INSERT INTO org_keys (org_id, purpose, version, kek_id, wrapped, created_at)
VALUES ($1, 'stream', 1, 'k', $2, $3)`, org, []byte("x"), st.Now()); !store.IsUniqueViolation(err) {
			t.Fatalf("a second stream key version 1: %v, want a unique violation", err)
		}

		if err := r.DestroyOrgKeys(ctx, org); err != nil {
			t.Fatal(err)
		}
		if opts.Driver == store.SQLite {
			// The copy of the table the migration dropped does not keep the
			// destroyed keys in the database files.
			for _, name := range []string{"control.db", "control.db-wal"} {
				data, err := os.ReadFile(filepath.Join(opts.DataDir, name))
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				for _, w := range wrapped {
					if bytes.Contains(data, w[len(w)-48:]) {
						t.Errorf("%s still holds a destroyed wrapped key", name)
					}
				}
			}
		}
	})
}

func TestStreamFile_CountsUseAndFailsWhenTheKEKIsDown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := openStore(t, opts)
		kek := &switchKEK{KEK: newLocalKEK(t)}
		setup := newRing(t, st, kek, Options{})
		org, cold := newOrg(t, st, setup), newOrg(t, st, setup)
		rec := &recorder{}
		reg := prometheus.NewRegistry()
		r := newRing(t, st, kek, Options{Events: rec, Registerer: reg})
		ad := AD{Table: "files", RowID: "f1", Field: "content"}
		file := writeFile(t, r, org, ad, randomBytes(5000))
		if _, err := openFile(r, org, ad, file); err != nil {
			t.Fatal(err)
		}
		openFile(r, org, AD{"files", "f2", "content"}, file) // fails
		bad := bytes.Clone(file)
		bad[streamHeaderSize+40+1] ^= 1 // in segment 0: opens, but reads there fail
		sr, err := openFile(r, org, ad, bad)
		if err != nil {
			t.Fatal(err)
		}
		sr.ReadAt(make([]byte, 10), 0)

		for name, want := range map[string]float64{
			"bulwark_keys_seals_total":         1,
			"bulwark_keys_opens_total":         2,
			"bulwark_keys_open_failures_total": 2,
		} {
			if got := counterValue(t, reg, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		if s := statusOf(t, r, org); s.Seals != 1 || s.Opens != 2 || s.Unwraps != 1 {
			t.Errorf("status %+v: want 1 seal, 2 opens, 1 unwrap", s)
		}
		var unwrapped []string
		for _, e := range rec.events {
			if e.Action == ActionUnwrapped {
				unwrapped = append(unwrapped, e.Details["purpose"])
			}
		}
		if len(unwrapped) != 1 || unwrapped[0] != purposeStream {
			t.Errorf("unwrap events for purposes %v, want [stream]", unwrapped)
		}

		// A writer whose destination fails never closes as a whole file.
		w, err := r.NewEncryptingWriter(ctx, org, ad, &failingWriter{left: 100})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 20000)); err == nil {
			t.Fatal("Write to a failing destination: no error")
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close after a failed Write: no error")
		}
		if got := counterValue(t, reg, "bulwark_keys_seals_total"); got != 1 {
			t.Errorf("a failed file counted as a seal (%v)", got)
		}

		kek.down.Store(true)
		var dst bytes.Buffer
		if _, err := r.NewEncryptingWriter(ctx, cold, ad, &dst); apperr.CodeOf(err) != apperr.Unavailable || dst.Len() != 0 {
			t.Fatalf("NewEncryptingWriter (cold) with the KEK down: %v, %d bytes; want unavailable, none", err, dst.Len())
		}
		if _, err := openFile(r, org, ad, file); err != nil {
			t.Fatalf("NewReaderAt with a cached key while the KEK is down: %v", err)
		}
		if n := counterValue(t, reg, "bulwark_keys_open_failures_total"); n != 2 {
			t.Errorf("an unavailable KEK counted as an open failure (%v)", n)
		}
	})
}

// failingWriter accepts left bytes, then fails.
type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errors.New("disk full")
	}
	w.left -= len(p)
	return len(p), nil
}
