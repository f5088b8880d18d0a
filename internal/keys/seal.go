package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"

	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"bulwark/internal/apperr"
)

// AD names where a sealed value lives. It is bound to the ciphertext, so
// a ciphertext copied to another table, row or field (or org) does not
// open.
type AD struct {
	Table, RowID, Field string
}

// The ciphertext of Seal:
//
//	format (1 byte, formatV1) | DEK version (4 bytes, big endian) | nonce (12) | ciphertext | tag (16)
//
// formatV1 is AES-256-GCM under a Tink keyset of the org's data key, with
// sealAD as associated data. The header is Tink's own output prefix (0x01
// and the key id): each version's key has the version as its key id, so
// Tink's ciphertext is Seal's ciphertext as is.
const (
	formatV1   = 0x01
	headerSize = 5
	nonceSize  = 12
	tagSize    = 16
	// Overhead is how many bytes Seal adds to a plaintext.
	Overhead = headerSize + nonceSize + tagSize
	// maxSealSize is the largest value Seal takes (a GCM message under
	// one nonce may hold at most 2^36-32 bytes; values are far smaller).
	maxSealSize = 1 << 30
)

var sealDomain = "bulwark/keys/seal/v1"

// sealAD is the associated data of a sealed value: the header, then the
// org id, table, row id and field, each with its length in front so that
// no two different contexts encode alike.
func sealAD(header []byte, orgID string, ad AD) []byte {
	return appendSealAD(make([]byte, 0, 4*5+len(sealDomain)+headerSize+len(orgID)+len(ad.Table)+len(ad.RowID)+len(ad.Field)), header, orgID, ad)
}

// appendSealAD appends sealAD's encoding to b.
func appendSealAD(b, header []byte, orgID string, ad AD) []byte {
	b = appendLP(b, sealDomain)
	b = append(b, header...)
	b = appendLP(b, orgID)
	b = appendLP(b, ad.Table)
	b = appendLP(b, ad.RowID)
	return appendLP(b, ad.Field)
}

// adBuffers holds buffers for the associated data of Seal and Open, which
// is built for every call and not kept by the AEAD: reusing them saves an
// allocation per call, a third of the cost of a small value.
var adBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func putADBuffer(buf *[]byte, used []byte) {
	if cap(used) <= 4096 { // do not keep buffers grown by an unusually long AD
		*buf = used[:0]
		adBuffers.Put(buf)
	}
}

func (ad AD) check() error {
	if ad.Table == "" || ad.RowID == "" || ad.Field == "" {
		return apperr.Errorf(apperr.Invalid, "associated data must name a table, a row and a field")
	}
	return nil
}

// Seal encrypts plaintext for the org with the current version of its
// data key, bound to the org and to ad. Capability packages call it before
// they write a value. Returns invalid for an incomplete ad, not_found when
// the org has no keys (unknown or destroyed), unavailable when the key is
// not cached and the KEK provider cannot be used; on error nothing was
// sealed and nothing should be written.
func (r *Ring) Seal(ctx context.Context, orgID string, ad AD, plaintext []byte) ([]byte, error) {
	if err := ad.check(); err != nil {
		return nil, err
	}
	k, err := r.key(ctx, slot{orgID, purposeData, 0})
	if err != nil {
		return nil, err
	}
	var header [headerSize]byte
	header[0] = formatV1
	binary.BigEndian.PutUint32(header[1:], uint32(k.version))
	buf := adBuffers.Get().(*[]byte)
	adata := appendSealAD((*buf)[:0], header[:], orgID, ad)
	if len(plaintext) > maxSealSize {
		putADBuffer(buf, adata)
		return nil, apperr.Errorf(apperr.Invalid, "value cannot be sealed")
	}
	ct := make([]byte, headerSize+nonceSize, Overhead+len(plaintext))
	copy(ct, header[:])
	if _, err := rand.Read(ct[headerSize:]); err != nil {
		putADBuffer(buf, adata)
		return nil, fmt.Errorf("keys: nonce: %w", err)
	}
	ct = k.gcm.Seal(ct, ct[headerSize:headerSize+nonceSize], plaintext, adata)
	putADBuffer(buf, adata)
	if len(ct) < headerSize || [headerSize]byte(ct[:headerSize]) != header {
		return nil, fmt.Errorf("keys: data key version %d does not write the ciphertext header", k.version)
	}
	r.metrics.seals.Inc()
	r.use.of(orgID).seals.Add(1)
	return ct, nil
}

// errNoOpen is the one answer to a ciphertext that does not open under
// the key and context it names: it does not tell why.
var errNoOpen = apperr.Errorf(apperr.Invalid, "ciphertext does not open: damaged, or sealed for another org, table, row or field")

// parseHeader returns the DEK version a ciphertext names.
func parseHeader(ciphertext []byte) (version int, err error) {
	if len(ciphertext) < Overhead {
		return 0, apperr.Errorf(apperr.Invalid, "ciphertext is too short")
	}
	if ciphertext[0] != formatV1 {
		return 0, apperr.Errorf(apperr.Invalid, "unknown ciphertext format")
	}
	v := binary.BigEndian.Uint32(ciphertext[1:headerSize])
	if v == 0 || v > 1<<31-1 {
		return 0, apperr.Errorf(apperr.Invalid, "ciphertext names an invalid key version")
	}
	return int(v), nil
}

// Open decrypts a ciphertext of Seal for the org and ad, with the data key
// version it names. Capability packages call it after they read a value.
// Returns invalid for a malformed or damaged ciphertext, one sealed for
// another org, table, row or field, or one naming a version the org does
// not have; not_found when the org has no keys (unknown or destroyed);
// unavailable when the key is not cached and the KEK provider cannot be
// used.
func (r *Ring) Open(ctx context.Context, orgID string, ad AD, ciphertext []byte) ([]byte, error) {
	pt, err := r.open(ctx, orgID, ad, ciphertext)
	if err != nil {
		if apperr.CodeOf(err) != apperr.Unavailable {
			r.metrics.openFailures.Inc()
		}
		return nil, err
	}
	r.metrics.opens.Inc()
	r.use.of(orgID).opens.Add(1)
	return pt, nil
}

func (r *Ring) open(ctx context.Context, orgID string, ad AD, ciphertext []byte) ([]byte, error) {
	if err := ad.check(); err != nil {
		return nil, err
	}
	version, err := parseHeader(ciphertext)
	if err != nil {
		return nil, err
	}
	k, err := r.key(ctx, slot{orgID, purposeData, version})
	if err != nil {
		return nil, err
	}
	buf := adBuffers.Get().(*[]byte)
	adata := appendSealAD((*buf)[:0], ciphertext[:headerSize], orgID, ad)
	pt, err := k.gcm.Open(nil, ciphertext[headerSize:headerSize+nonceSize], ciphertext[headerSize+nonceSize:], adata)
	putADBuffer(buf, adata)
	if err != nil {
		return nil, errNoOpen
	}
	return pt, nil
}

// directGCM returns crypto/cipher's AES-GCM over the one key of a data
// keyset. Tink's AES-GCM ciphertext with its Tink prefix is exactly
// prefix (0x01, key id) | 12-byte nonce | ciphertext | 16-byte tag, with
// the caller's associated data alone authenticated, so Seal and Open can
// call the cipher directly and skip Tink's keyset dispatch, which costs
// as much as the AES itself for small values. The keyset's own primitive
// still opens what this seals, and the other way round (tested).
func directGCM(h *keyset.Handle, version int) (cipher.AEAD, error) {
	if h.Len() != 1 {
		return nil, fmt.Errorf("data keyset holds %d keys, want 1", h.Len())
	}
	entry, err := h.Primary()
	if err != nil {
		return nil, err
	}
	k, ok := entry.Key().(*aesgcm.Key)
	if !ok {
		return nil, fmt.Errorf("data key is a %T, want AES-GCM", entry.Key())
	}
	p := k.Parameters().(*aesgcm.Parameters)
	id, _ := k.IDRequirement()
	if p.IVSizeInBytes() != nonceSize || p.TagSizeInBytes() != tagSize || p.Variant() != aesgcm.VariantTink || id != uint32(version) {
		return nil, fmt.Errorf("data key version %d has parameters Seal does not write", version)
	}
	block, err := aes.NewCipher(k.KeyBytes().Data(insecuresecretdataaccess.Token{}))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
