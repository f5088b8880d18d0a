package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// maxKEKFileSize bounds what OpenLocalKEK reads: a keyset of a few keys is
// well under 1 KiB.
const maxKEKFileSize = 64 << 10

// localKEK is a Tink AES-256-GCM keyset read from a file.
type localKEK struct {
	id     string
	aead   tink.AEAD
	handle *keyset.Handle
}

// OpenLocalKEK returns the local key-encryption key, a Tink AES-256-GCM
// keyset in DATA/keys/kek.json. The file is generated on first use (mode
// 0600, directory 0700) and read afterwards. It refuses a file that group
// or others may read or write, and a file that is not a usable keyset,
// with a message that names the file; it never replaces an existing file.
func OpenLocalKEK(dataDir string) (KEK, error) {
	dir := filepath.Join(dataDir, "keys")
	path := filepath.Join(dir, "kek.json")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	k, err := readLocalKEK(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createLocalKEK(path); err != nil {
			return nil, err
		}
		k, err = readLocalKEK(path)
	}
	return k, err
}

func readLocalKEK(path string) (*localKEK, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: the KEK file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keys: the KEK file %s may be read or written by group or others (mode %04o); "+
			"Bulwark will not use it. Make it private to the user Bulwark runs as: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKEKFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keys: local KEK: read %s: %w", path, err)
	}
	corrupted := func(why string) error {
		return fmt.Errorf("keys: the KEK file %s is corrupted (%s): restore it from a backup; "+
			"do not replace it with a new key, or nothing encrypted under the old one opens again", path, why)
	}
	if len(data) > maxKEKFileSize {
		return nil, corrupted("too large")
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(data)))
	if err != nil {
		return nil, corrupted("not a Tink keyset")
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, corrupted("not an AEAD keyset")
	}
	return &localKEK{id: "local:" + strconv.FormatUint(uint64(h.KeysetInfo().GetPrimaryKeyId()), 10), aead: a, handle: h}, nil
}

// createLocalKEK writes a new keyset to a temporary file and links it into
// place, so that the file is never seen half-written and two processes
// starting at once end up with one key.
func createLocalKEK(path string) error {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return fmt.Errorf("keys: generate local KEK: %w", err)
	}
	tmp, err := writePrivateTemp(path, h)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keys: write local KEK: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writePrivateTemp writes the keyset, in clear, to a new 0600 file beside
// path and syncs it; the caller links or renames it into place.
func writePrivateTemp(path string, h *keyset.Handle) (string, error) {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return "", fmt.Errorf("keys: write local KEK: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*.tmp")
	if err != nil {
		return "", fmt.Errorf("keys: write local KEK: %w", err)
	}
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(buf.Bytes())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("keys: write local KEK: %w", err)
	}
	return tmp.Name(), nil
}

// syncDir makes a new name in dir durable; a failure leaves a valid file.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (k *localKEK) ID() string { return k.id }

func (k *localKEK) Encrypt(_ context.Context, plaintext, associatedData []byte) ([]byte, error) {
	return k.aead.Encrypt(plaintext, associatedData)
}

func (k *localKEK) Decrypt(_ context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	pt, err := k.aead.Decrypt(ciphertext, associatedData)
	if err != nil {
		return nil, fmt.Errorf("local KEK %s: %w", k.id, ErrAuthentication)
	}
	return pt, nil
}
