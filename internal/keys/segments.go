package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/streamingaead"
	"github.com/tink-crypto/tink-go/v2/streamingaead/aesgcmhkdf"
	"github.com/tink-crypto/tink-go/v2/tink"

	"bulwark/internal/apperr"
)

// Tink's streaming AEAD writes, and decrypts, only from the start of a
// stream. This file reads its AES-GCM-HKDF format at any offset
// (https://developers.google.com/tink/streaming-aead/aes_gcm_hkdf_streaming):
//
//	header:  header length (1 byte) | salt (derived key size) | nonce prefix (7)
//	segment: AES-GCM ciphertext | tag (16)
//
// The per-stream key is HKDF(main key, salt, associated data); segment i
// has the nonce prefix | i (4 bytes, big endian) | 1 for the last segment,
// else 0. Every segment holds the same number of ciphertext bytes but the
// first, which is shorter by the header, and the last, which may be
// shorter: so the segment count, hence the plaintext size and where each
// segment starts, follow from the stream's size alone.
const (
	gcmhkdfNoncePrefixSize = 7
	gcmhkdfTagSize         = 16
)

// streamKey is one version of an org's stream key: Tink's primitive, which
// writes streams, and the key material and parameters of its one key, from
// which streamSegments reads them at any offset. It holds key material and
// never leaves the package.
type streamKey struct {
	aead        tink.StreamingAEAD
	mainKey     []byte
	hash        func() hash.Hash
	derivedSize int   // the size of the per-stream key and of the salt
	segmentSize int64 // ciphertext bytes of a full segment
}

// newStreamKey reads the stream key of an unwrapped keyset: one
// AES-GCM-HKDF key.
func newStreamKey(h *keyset.Handle) (*streamKey, error) {
	if h.Len() != 1 {
		return nil, fmt.Errorf("stream keyset holds %d keys, want 1", h.Len())
	}
	entry, err := h.Primary()
	if err != nil {
		return nil, err
	}
	key, ok := entry.Key().(*aesgcmhkdf.Key)
	if !ok {
		return nil, fmt.Errorf("stream key is a %T, want an AES-GCM-HKDF key", entry.Key())
	}
	p := key.Parameters().(*aesgcmhkdf.Parameters)
	k := &streamKey{
		mainKey:     key.KeyBytes().Data(insecuresecretdataaccess.Token{}),
		derivedSize: p.DerivedKeySizeInBytes(),
		segmentSize: int64(p.SegmentSizeInBytes()),
	}
	switch p.HKDFHashType() {
	case aesgcmhkdf.SHA1:
		k.hash = sha1.New
	case aesgcmhkdf.SHA256:
		k.hash = sha256.New
	case aesgcmhkdf.SHA512:
		k.hash = sha512.New
	default:
		return nil, fmt.Errorf("stream key has an unknown HKDF hash")
	}
	if k.segmentSize <= int64(k.headerLen())+gcmhkdfTagSize {
		return nil, fmt.Errorf("stream key segments of %d bytes leave no room for plaintext", k.segmentSize)
	}
	if k.aead, err = streamingaead.New(h); err != nil {
		return nil, err
	}
	return k, nil
}

// headerLen is the size of Tink's stream header.
func (k *streamKey) headerLen() int { return 1 + k.derivedSize + gcmhkdfNoncePrefixSize }

// errNoFile is the one answer to a stream that does not open, or a
// segment of it that does not: it does not tell why.
var errNoFile = apperr.Errorf(apperr.Invalid, "file does not open: damaged, truncated, or encrypted for another org, table, row or field")

// streamSegments is one Tink stream in src, opened for reads at any
// offset: its header is read and its last segment authenticated, so that
// its size is known to be the one it was written with. It is safe for
// concurrent use.
type streamSegments struct {
	src         io.ReaderAt
	base        int64 // where the stream starts in src
	end         int64 // where it ends
	aead        cipher.AEAD
	noncePrefix [gcmhkdfNoncePrefixSize]byte
	header      int64 // Tink's header size
	segment     int64 // ciphertext bytes of a full segment
	count       int64 // segments
	size        int64 // plaintext bytes
}

// openSegments opens the stream src[base:end] of k, written with the
// associated data aad. Returns errNoFile for a malformed stream, one that
// was cut or extended, or one written with another key or aad.
func openSegments(k *streamKey, src io.ReaderAt, base, end int64, aad []byte) (*streamSegments, error) {
	s := &streamSegments{src: src, base: base, end: end, header: int64(k.headerLen()), segment: k.segmentSize}
	body := end - base - s.header // the segments' bytes
	if body < gcmhkdfTagSize {
		return nil, errNoFile
	}
	header := make([]byte, s.header)
	if err := s.read(header, base); err != nil {
		return nil, err
	}
	if int64(header[0]) != s.header {
		return nil, errNoFile
	}
	salt := header[1 : 1+k.derivedSize]
	copy(s.noncePrefix[:], header[1+k.derivedSize:])
	key, err := hkdf.Key(k.hash, k.mainKey, salt, string(aad), k.derivedSize)
	if err != nil {
		return nil, fmt.Errorf("keys: derive stream key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: stream cipher: %w", err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("keys: stream cipher: %w", err)
	}

	// Tink's writer ends a segment only when more plaintext follows: the
	// last segment has 1 to segment bytes (only an empty stream's single
	// segment has just its tag).
	first := s.segment - s.header
	s.count = 1
	if body > first {
		s.count = 1 + (body-first+s.segment-1)/s.segment
	}
	if s.count > math.MaxUint32 { // Tink numbers segments with 32 bits
		return nil, errNoFile
	}
	start, stop := s.bounds(s.count - 1)
	if stop-start < gcmhkdfTagSize {
		return nil, errNoFile
	}
	s.size = body - s.count*gcmhkdfTagSize
	// The last segment authenticates the header, the key, aad and the
	// segment count: a stream cut or extended anywhere fails here.
	buf := make([]byte, stop-start)
	if err := s.read(buf, start); err != nil {
		return nil, err
	}
	if _, err := s.open(buf, s.count-1); err != nil {
		return nil, err
	}
	return s, nil
}

// bounds returns where segment i's ciphertext starts and ends in src.
// Segment 0 follows the header; the header and segment 0 fill a full
// segment's size, so segment i > 0 starts i full segments in.
func (s *streamSegments) bounds(i int64) (start, stop int64) {
	if i == 0 {
		start = s.base + s.header
	} else {
		start = s.base + i*s.segment
	}
	return start, min(s.base+(i+1)*s.segment, s.end)
}

// segmentOf returns the segment that holds plaintext byte off, and where
// that segment's plaintext starts.
func (s *streamSegments) segmentOf(off int64) (i, start int64) {
	plain := s.segment - gcmhkdfTagSize
	i = (off + s.header) / plain
	if i == 0 {
		return 0, 0
	}
	return i, i*plain - s.header
}

// open decrypts segment i in place and returns its plaintext.
func (s *streamSegments) open(ct []byte, i int64) ([]byte, error) {
	var nonce [gcmhkdfNoncePrefixSize + 5]byte
	copy(nonce[:], s.noncePrefix[:])
	binary.BigEndian.PutUint32(nonce[gcmhkdfNoncePrefixSize:], uint32(i))
	if i == s.count-1 {
		nonce[len(nonce)-1] = 1
	}
	pt, err := s.aead.Open(ct[:0], nonce[:], ct, nil)
	if err != nil {
		return nil, errNoFile
	}
	return pt, nil
}

// read fills p from src at off; a src shorter than the stream is a
// truncated stream.
func (s *streamSegments) read(p []byte, off int64) error {
	n, err := s.src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errNoFile
	}
	return fmt.Errorf("keys: read file: %w", err)
}

// readBatch bounds the ciphertext one src.ReadAt of readAt asks for.
const readBatch = 256 << 10

// readAt reads plaintext into p from off, reading and decrypting only the
// segments that hold [off, off+len(p)), as io.ReaderAt does. On an error,
// n counts the bytes of p read from segments that authenticated.
func (s *streamSegments) readAt(p []byte, off int64) (n int, err error) {
	if off < 0 {
		return 0, apperr.Errorf(apperr.Invalid, "negative offset")
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= s.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), s.size-off)
	first, firstStart := s.segmentOf(off)
	last, _ := s.segmentOf(off + want - 1)
	perBatch := max(1, readBatch/s.segment)
	var buf []byte
	plainStart := firstStart
	for i := first; i <= last; {
		j := min(last, i+perBatch-1)
		start, _ := s.bounds(i)
		_, stop := s.bounds(j)
		if int64(cap(buf)) < stop-start {
			buf = make([]byte, stop-start)
		}
		buf = buf[:stop-start]
		if err := s.read(buf, start); err != nil {
			return n, err
		}
		for ; i <= j; i++ {
			a, b := s.bounds(i)
			pt, err := s.open(buf[a-start:b-start], i)
			if err != nil {
				return n, err
			}
			// The part of this segment's plaintext that p wants.
			lo := max(off, plainStart)
			hi := min(off+want, plainStart+int64(len(pt)))
			n += copy(p[lo-off:hi-off], pt[lo-plainStart:hi-plainStart])
			plainStart += int64(len(pt))
		}
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}
