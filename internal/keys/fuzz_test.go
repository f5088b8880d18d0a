package keys

import (
	"bytes"
	"context"
	"io"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// FuzzOpen feeds arbitrary bytes to Open: it must answer with invalid (or
// the plaintext, for the one ciphertext sealed here), never panic, never
// open anything else.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	st := openStore(f, store.Options{Driver: store.SQLite, DataDir: f.TempDir()})
	r := newRing(f, st, newLocalKEK(f), Options{})
	org := newOrg(f, st, r)
	if _, err := r.RotateOrg(ctx, org); err != nil {
		f.Fatal(err)
	}
	ad := AD{"records", "r1", "note"}
	plaintext := []byte("the one sealed value")
	ct, err := r.Seal(ctx, org, ad, plaintext)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ct)
	f.Fuzz(func(t *testing.T, ciphertext []byte) {
		pt, err := r.Open(ctx, org, ad, ciphertext)
		if err == nil {
			if !bytes.Equal(ciphertext, ct) || !bytes.Equal(pt, plaintext) {
				t.Fatalf("Open accepted a ciphertext that was never sealed: %x -> %q", ciphertext, pt)
			}
			return
		}
		if c := apperr.CodeOf(err); c != apperr.Invalid {
			t.Fatalf("Open(%x): %v (code %s), want invalid", ciphertext, err, c)
		}
	})
}

// FuzzStreamReaderAt feeds arbitrary bytes to NewReaderAt as a file, and
// reads them at arbitrary offsets: it must never panic, answer only with
// invalid, never give a byte that is not the one file written here at
// that offset, and never open a file whose headers or size changed.
func FuzzStreamReaderAt(f *testing.F) {
	ctx := context.Background()
	st := openStore(f, store.Options{Driver: store.SQLite, DataDir: f.TempDir()})
	r := newRing(f, st, newLocalKEK(f), Options{})
	org := newOrg(f, st, r)
	ad := AD{"files", "f1", "content"}
	plaintext := make([]byte, 3*4080+1000) // 4 segments, the last partial
	for i := range plaintext {
		plaintext[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	w, err := r.NewEncryptingWriter(ctx, org, ad, &buf)
	if err != nil {
		f.Fatal(err)
	}
	w.Write(plaintext)
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	file := buf.Bytes()
	const headers = streamHeaderSize + 40
	f.Add(file, int64(0), uint16(100))
	f.Add(file, int64(4000), uint16(200))
	f.Add(file, int64(len(plaintext)-1), uint16(10))
	f.Add(file[:len(file)-1], int64(0), uint16(10))
	f.Add(file[:headers+4096], int64(0), uint16(10))
	f.Add(append(bytes.Clone(file[:headers+4096-40]), file[headers+4096-40+4096:]...), int64(5000), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, off int64, n uint16) {
		sr, err := r.NewReaderAt(ctx, org, ad, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if c := apperr.CodeOf(err); c != apperr.Invalid {
				t.Fatalf("NewReaderAt: %v (code %s), want invalid", err, c)
			}
			return
		}
		if len(data) != len(file) || !bytes.Equal(data[:headers], file[:headers]) || sr.Size() != int64(len(plaintext)) {
			t.Fatalf("opened a file of %d bytes whose headers or size changed (size %d)", len(data), sr.Size())
		}
		p := make([]byte, n)
		got, err := sr.ReadAt(p, off)
		if err != nil && err != io.EOF && apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
		}
		if got > 0 && (off < 0 || off+int64(got) > int64(len(plaintext)) || !bytes.Equal(p[:got], plaintext[off:off+int64(got)])) {
			t.Fatalf("ReadAt(%d, %d) gave %d bytes that are not the file's", n, off, got)
		}
		whole := make([]byte, sr.Size())
		if got, err := sr.ReadAt(whole, 0); err == nil {
			if !bytes.Equal(data, file) {
				t.Fatal("read a changed file in full without an error")
			}
		} else if !bytes.Equal(whole[:got], plaintext[:got]) {
			t.Fatalf("reading in full gave %d bytes that are not the file's before %v", got, err)
		}
	})
}
