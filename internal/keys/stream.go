package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// The file format of NewEncryptingWriter:
//
//	magic "BWKS" (4 bytes) | format (1 byte, streamFormatV1) | stream key version (4 bytes, big endian) | Tink stream
//
// streamFormatV1 is Tink's AES-GCM-HKDF streaming AEAD under the org's
// stream key of that version, with streamAD as associated data: the
// header is authenticated with the org, table, row and field. The
// segment size is the key's (4 KiB for keys made here).
const (
	streamMagic      = "BWKS"
	streamFormatV1   = 0x01
	streamHeaderSize = len(streamMagic) + 1 + 4
)

var streamDomain = "bulwark/keys/stream/v1"

// streamAD is the associated data of a file: the domain, the header, then
// the org id, table, row id and field, each with its length in front.
func streamAD(header []byte, orgID string, ad AD) []byte {
	b := appendLP(nil, streamDomain)
	b = append(b, header...)
	b = appendLP(b, orgID)
	b = appendLP(b, ad.Table)
	b = appendLP(b, ad.RowID)
	return appendLP(b, ad.Field)
}

// NewEncryptingWriter returns a writer that encrypts what is written to it
// for the org with the current version of its stream key, bound to the org
// and to ad, and writes the file to dst: a header, then Tink's stream, one
// segment (4 KiB) per Write to dst, so an unbuffered dst is best wrapped
// in a bufio.Writer. Close writes the last segment and must succeed for
// the file to be whole; it does not close dst. A file that was not closed,
// or was cut, does not open. Capability packages call it to store a file;
// NewReaderAt reads it. Returns invalid for an incomplete ad, not_found
// when the org has no keys (unknown or destroyed), unavailable when the
// key is not cached and the KEK provider cannot be used: then nothing was
// written to dst.
func (r *Ring) NewEncryptingWriter(ctx context.Context, orgID string, ad AD, dst io.Writer) (io.WriteCloser, error) {
	if err := ad.check(); err != nil {
		return nil, err
	}
	if !store.ValidOrgID(orgID) {
		return nil, errNoOrgKeys
	}
	k, err := r.streamKey(ctx, orgID, 0)
	if err != nil {
		return nil, err
	}
	header := make([]byte, 0, streamHeaderSize)
	header = append(header, streamMagic...)
	header = append(header, streamFormatV1)
	header = binary.BigEndian.AppendUint32(header, uint32(k.version))
	if _, err := dst.Write(header); err != nil {
		return nil, fmt.Errorf("keys: write file: %w", err)
	}
	w, err := k.stream.aead.NewEncryptingWriter(dst, streamAD(header, orgID, ad))
	if err != nil {
		return nil, fmt.Errorf("keys: write file: %w", err)
	}
	return &streamWriter{w: w, closed: func() {
		r.metrics.seals.Inc()
		r.use.of(orgID).seals.Add(1)
	}}, nil
}

// streamWriter is Tink's encrypting writer with a sticky error, so that a
// file whose writing failed is never closed as whole, and the count of a
// seal when it is.
type streamWriter struct {
	w      io.WriteCloser
	err    error
	done   bool
	closed func()
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("keys: write to a closed file writer")
	}
	n, err := w.w.Write(p)
	if err != nil {
		w.err = fmt.Errorf("keys: write file: %w", err)
	}
	return n, w.err
}

func (w *streamWriter) Close() error {
	if w.err != nil || w.done {
		return w.err
	}
	w.done = true
	if err := w.w.Close(); err != nil {
		w.err = fmt.Errorf("keys: write file: %w", err)
		return w.err
	}
	w.closed()
	return nil
}

// StreamReader reads a file of NewEncryptingWriter at any offset: ReadAt
// reads and decrypts only the segments that hold the bytes asked for, and
// fails (invalid) for a segment that does not authenticate, never giving
// its bytes. It is safe for concurrent use.
type StreamReader struct {
	s    *streamSegments
	fail func()
}

// NewReaderAt opens the file src of size bytes, written by
// NewEncryptingWriter for the org and ad, for reads at any offset. It
// reads the header and authenticates the last segment, so that Size is
// the size the file was written with; a file cut or extended anywhere, or
// with any header byte changed, fails here. Capability packages call it
// to serve a file or a range of one. Returns invalid for an incomplete ad,
// a malformed or damaged file, one written for another org, table, row or
// field, or one naming a version the org does not have; not_found when
// the org has no keys (unknown or destroyed); unavailable when the key is
// not cached and the KEK provider cannot be used.
func (r *Ring) NewReaderAt(ctx context.Context, orgID string, ad AD, src io.ReaderAt, size int64) (*StreamReader, error) {
	s, err := r.openStream(ctx, orgID, ad, src, size)
	if err != nil {
		if apperr.CodeOf(err) == apperr.Invalid {
			r.metrics.openFailures.Inc()
		}
		return nil, err
	}
	r.metrics.opens.Inc()
	r.use.of(orgID).opens.Add(1)
	return &StreamReader{s: s, fail: r.metrics.openFailures.Inc}, nil
}

func (r *Ring) openStream(ctx context.Context, orgID string, ad AD, src io.ReaderAt, size int64) (*streamSegments, error) {
	if err := ad.check(); err != nil {
		return nil, err
	}
	if size < int64(streamHeaderSize) {
		return nil, errNoFile
	}
	header := make([]byte, streamHeaderSize)
	if n, err := src.ReadAt(header, 0); n < len(header) {
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errNoFile
		}
		return nil, fmt.Errorf("keys: read file: %w", err)
	}
	if string(header[:len(streamMagic)]) != streamMagic {
		return nil, apperr.Errorf(apperr.Invalid, "not an encrypted file")
	}
	if header[len(streamMagic)] != streamFormatV1 {
		return nil, apperr.Errorf(apperr.Invalid, "unknown file format")
	}
	v := binary.BigEndian.Uint32(header[len(streamMagic)+1:])
	if v == 0 || v > 1<<31-1 {
		return nil, apperr.Errorf(apperr.Invalid, "file names an invalid key version")
	}
	if !store.ValidOrgID(orgID) {
		return nil, errNoOrgKeys
	}
	k, err := r.streamKey(ctx, orgID, int(v))
	if err != nil {
		return nil, err
	}
	return openSegments(k.stream, src, int64(streamHeaderSize), size, streamAD(header, orgID, ad))
}

// Size returns the size of the file's plaintext.
func (sr *StreamReader) Size() int64 { return sr.s.size }

// ReadAt reads len(p) bytes of plaintext from off, as io.ReaderAt does:
// fewer, with io.EOF, at the end of the file. A segment that does not
// authenticate gives invalid, and n counts only bytes of segments read
// before it that did.
func (sr *StreamReader) ReadAt(p []byte, off int64) (n int, err error) {
	n, err = sr.s.readAt(p, off)
	if errors.Is(err, errNoFile) {
		sr.fail()
	}
	return n, err
}

// NewSectionReader returns a reader of n bytes of plaintext from off,
// which also seeks: for a range request.
func (sr *StreamReader) NewSectionReader(off, n int64) *io.SectionReader {
	return io.NewSectionReader(sr, off, n)
}

// streamKey returns the org's stream key of version (0: the current one).
// An org made before files had keys of their own gets version 1 on first
// use (createStreamKey).
func (r *Ring) streamKey(ctx context.Context, orgID string, version int) (*unwrapped, error) {
	s := slot{orgID, purposeStream, version}
	if k := r.cache.get(s); k != nil {
		return k, nil
	}
	return r.cache.load(ctx, s, func(ctx context.Context) (*unwrapped, error) {
		k, err := r.loadKey(ctx, s)
		if version != 0 || !errors.Is(err, errNoOrgKeys) {
			return k, err
		}
		if err := r.createStreamKey(ctx, orgID); err != nil {
			return nil, err
		}
		return r.loadKey(ctx, s)
	})
}

// createStreamKey stores version 1 of the stream key of an org that has
// keys but no stream key yet. Another process may create it at the same
// time: the loser's insert fails on the primary key and it uses the
// winner's key. Returns not_found when the org has no keys.
func (r *Ring) createStreamKey(ctx context.Context, orgID string) error {
	var n int
	if err := r.st.Control().SQL().QueryRowContext(ctx,
		"SELECT COUNT(*) FROM org_keys WHERE org_id = $1 AND purpose = $2", orgID, purposeData).Scan(&n); err != nil {
		return fmt.Errorf("keys: read keys: %w", err)
	}
	if n == 0 {
		return errNoOrgKeys
	}
	// Under the read lock of the KEK, so that a RotateKEK of this ring
	// waits for the key to be stored, and re-wraps it.
	r.mu.RLock()
	defer r.mu.RUnlock()
	kek := r.kek
	h, err := newKeyset(purposeStream, 1)
	if err != nil {
		return err
	}
	// Wrap before the transaction: a remote KEK call must not hold the
	// control database's write lock.
	wrapped, err := r.wrap(ctx, kek, h, orgID, purposeStream, 1)
	if err != nil {
		return err
	}
	err = r.st.Control().InTx(ctx, func(tx *store.Tx) error {
		return insertStreamKey(ctx, tx, r.st.Driver(), orgID, kek.ID(), wrapped)
	})
	if store.IsUniqueViolation(err) {
		return nil
	}
	if err != nil {
		return err
	}
	r.emit(ctx, orgID, ActionCreated, map[string]string{"purpose": purposeStream, "stream_version": "1", "kek_id": kek.ID()})
	return nil
}

// insertStreamKey stores version 1 of the org's stream key in tx if the
// org still has its data key, which DestroyOrgKeys may be deleting at this
// moment. SQLite runs one writer at a time. On PostgreSQL, FOR SHARE waits
// for a DestroyOrgKeys that locked the org's keys first, and then finds
// them gone; a DestroyOrgKeys that comes second waits for this
// transaction, and its DELETE, which starts after, deletes this key too.
func insertStreamKey(ctx context.Context, tx *store.Tx, driver store.Driver, orgID, kekID string, wrapped []byte) error {
	q := "SELECT COUNT(*) FROM org_keys WHERE org_id = $1 AND purpose = $2"
	if driver == store.Postgres {
		q = "SELECT COUNT(*) FROM (SELECT 1 FROM org_keys WHERE org_id = $1 AND purpose = $2 FOR SHARE) AS k"
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, orgID, purposeData).Scan(&n); err != nil {
		return fmt.Errorf("keys: read keys: %w", err)
	}
	if n == 0 {
		return errNoOrgKeys
	}
	return insertKey(ctx, tx, orgID, purposeStream, 1, kekID, wrapped)
}
