package keys

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/streamingaead/aesgcmhkdf"
)

// newTestStreamKey makes a one-key AES-GCM-HKDF keyset with p.
func newTestStreamKey(t testing.TB, p aesgcmhkdf.ParametersOpts) *streamKey {
	t.Helper()
	params, err := aesgcmhkdf.NewParameters(p)
	if err != nil {
		t.Fatal(err)
	}
	km := keyset.NewManager()
	id, err := km.AddNewKeyFromParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	if err := km.SetPrimary(id); err != nil {
		t.Fatal(err)
	}
	h, err := km.Handle()
	if err != nil {
		t.Fatal(err)
	}
	k, err := newStreamKey(h)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkReadAt reads [off, off+n) through s and compares it with pt, as
// io.ReaderAt promises: all of it, or what there is with io.EOF.
func checkReadAt(t *testing.T, s io.ReaderAt, pt []byte, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	got, err := s.ReadAt(p, off)
	size := int64(len(pt))
	want := max(0, min(n, size-off))
	if got != int(want) || !bytes.Equal(p[:got], pt[min(off, size):min(off, size)+want]) {
		t.Fatalf("ReadAt(%d bytes, off %d) of %d = %d, %v: wrong bytes", n, off, size, got, err)
	}
	switch {
	case want < n && err != io.EOF:
		t.Fatalf("ReadAt(%d bytes, off %d) of %d: %v, want io.EOF", n, off, size, err)
	case want == n && err != nil:
		t.Fatalf("ReadAt(%d bytes, off %d) of %d: %v", n, off, size, err)
	}
}

// TestStreamSegments_AgreeWithTinksReader encrypts with Tink's writer and
// reads back with Tink's decrypting reader and with streamSegments at every
// segment boundary ±1 and at random ranges, for several parameter sets:
// the ring's (4 KiB segments), the smallest segments Tink allows, 1 MiB
// segments, and other hashes and key sizes.
func TestStreamSegments_AgreeWithTinksReader(t *testing.T) {
	for _, p := range []aesgcmhkdf.ParametersOpts{
		{KeySizeInBytes: 32, DerivedKeySizeInBytes: 32, HKDFHashType: aesgcmhkdf.SHA256, SegmentSizeInBytes: 4096},
		{KeySizeInBytes: 32, DerivedKeySizeInBytes: 32, HKDFHashType: aesgcmhkdf.SHA256, SegmentSizeInBytes: 57},
		{KeySizeInBytes: 16, DerivedKeySizeInBytes: 16, HKDFHashType: aesgcmhkdf.SHA1, SegmentSizeInBytes: 100},
		{KeySizeInBytes: 32, DerivedKeySizeInBytes: 16, HKDFHashType: aesgcmhkdf.SHA512, SegmentSizeInBytes: 1000},
		{KeySizeInBytes: 32, DerivedKeySizeInBytes: 32, HKDFHashType: aesgcmhkdf.SHA256, SegmentSizeInBytes: 1 << 20},
	} {
		t.Run(fmt.Sprintf("%s-%d-%d-%d", p.HKDFHashType, p.KeySizeInBytes, p.DerivedKeySizeInBytes, p.SegmentSizeInBytes), func(t *testing.T) {
			k := newTestStreamKey(t, p)
			seg := int(p.SegmentSizeInBytes)
			plain := seg - gcmhkdfTagSize
			first := plain - k.headerLen()
			sizes := []int{0, 1, first - 1, first, first + 1, first + plain - 1, first + plain, first + plain + 1, first + 5*plain + 17, 37*seg + 5}
			reads := 200
			if seg >= 10000 { // each read decrypts a large segment: fewer of them
				sizes, reads = []int{0, 1, first, first + 1, first + plain + 1, 3*seg + 12345}, 20
			}
			for _, size := range sizes {
				if size < 0 {
					continue
				}
				pt := make([]byte, size)
				rand.Read(pt)
				aad := []byte(fmt.Sprintf("aad of %d", size))
				// A prefix before the stream, as the file header is.
				var file bytes.Buffer
				file.WriteString("prefix")
				w, err := k.aead.NewEncryptingWriter(&file, aad)
				if err != nil {
					t.Fatal(err)
				}
				for rest := pt; len(rest) > 0; { // writes of odd sizes
					n := min(len(rest), 1+mrand.IntN(3*seg))
					if _, err := w.Write(rest[:n]); err != nil {
						t.Fatal(err)
					}
					rest = rest[n:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				ct := file.Bytes()

				tr, err := k.aead.NewDecryptingReader(bytes.NewReader(ct[6:]), aad)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(tr); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("size %d: Tink's reader: %d bytes, %v", size, len(got), err)
				}

				s, err := openSegments(k, bytes.NewReader(ct), 6, int64(len(ct)), aad)
				if err != nil {
					t.Fatalf("size %d: openSegments: %v", size, err)
				}
				if s.size != int64(size) {
					t.Fatalf("size %d: derived size %d", size, s.size)
				}
				r := readerAtFunc(s.readAt)
				checkReadAt(t, r, pt, 0, int64(size))
				checkReadAt(t, r, pt, 0, int64(size)+1)
				checkReadAt(t, r, pt, int64(size), 1)
				checkReadAt(t, r, pt, int64(size)+5, 1)
				if size > 0 {
					checkReadAt(t, r, pt, int64(size)-1, 1) // the last byte
				}
				ns := []int64{1, 2, 100}
				if seg < 10000 {
					ns = append(ns, int64(plain), int64(plain)+2)
				}
				for b := int64(first); b <= int64(size)+1; b += int64(plain) {
					for _, off := range []int64{b - 1, b, b + 1} {
						if off < 0 {
							continue
						}
						for _, n := range ns {
							checkReadAt(t, r, pt, off, n)
							checkReadAt(t, r, pt, max(0, off-n+1), n) // ending at the boundary
						}
					}
				}
				for i := 0; i < reads; i++ {
					off := mrand.Int64N(int64(size) + 2)
					n := mrand.Int64N(int64(min(3*seg, 20000))) + 1
					checkReadAt(t, r, pt, off, n)
				}
				if _, err := s.readAt(make([]byte, 1), -1); err == nil {
					t.Fatal("ReadAt at a negative offset: no error")
				}
			}
		})
	}
}

type readerAtFunc func(p []byte, off int64) (int, error)

func (f readerAtFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }
