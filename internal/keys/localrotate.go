package keys

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// RotateLocalKEK replaces the local KEK in DATA/keys/kek.json by a new key
// and re-wraps every stored key under it (no data is rewritten). Operators
// call it through `bulwark keys rotate-kek`.
//
// It is safe against a crash at any step: the new key is first added to
// the file beside the old one (both open, the new one wraps), then the
// keys are re-wrapped in one transaction, and only then is the old key
// removed from the file. A crash before the last step leaves a file with
// both keys, which opens everything; the next rotation removes the rest.
func RotateLocalKEK(ctx context.Context, r *Ring, dataDir string) (rewrapped int, err error) {
	path := filepath.Join(dataDir, "keys", "kek.json")
	cur, err := readLocalKEK(path)
	if err != nil {
		return 0, err
	}
	mgr := keyset.NewManagerFromHandle(cur.handle)
	newID, err := mgr.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return 0, fmt.Errorf("keys: new local KEK: %w", err)
	}
	if err := mgr.SetPrimary(newID); err != nil {
		return 0, fmt.Errorf("keys: new local KEK: %w", err)
	}
	both, err := mgr.Handle()
	if err != nil {
		return 0, fmt.Errorf("keys: new local KEK: %w", err)
	}
	if err := writeKeysetFile(path, both); err != nil {
		return 0, err
	}
	next, err := readLocalKEK(path)
	if err != nil {
		return 0, err
	}
	n, err := r.RotateKEK(ctx, next)
	if err != nil {
		return 0, err
	}
	// Every key is wrapped by the new key now: retire the old ones.
	for _, info := range both.KeysetInfo().GetKeyInfo() {
		if id := info.GetKeyId(); id != newID {
			if err := mgr.Delete(id); err != nil {
				return n, fmt.Errorf("keys: retire old local KEK: %w", err)
			}
		}
	}
	only, err := mgr.Handle()
	if err != nil {
		return n, fmt.Errorf("keys: retire old local KEK: %w", err)
	}
	if err := writeKeysetFile(path, only); err != nil {
		return n, err
	}
	return n, nil
}

// writeKeysetFile replaces path by the keyset atomically.
func writeKeysetFile(path string, h *keyset.Handle) error {
	tmp, err := writePrivateTemp(path, h)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keys: write local KEK: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}
