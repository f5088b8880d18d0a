package keys

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func openStore(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), opts, ControlSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newLocalKEK(t testing.TB) KEK {
	t.Helper()
	k, err := OpenLocalKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t testing.TB, st *store.Store, kek KEK, opts Options) *Ring {
	t.Helper()
	r, err := NewRing(context.Background(), st, kek, opts)
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	return r
}

// newOrg creates keys for a new org id, as the org creation hook does.
func newOrg(t testing.TB, st *store.Store, r *Ring) string {
	t.Helper()
	id := uuid.NewString()
	err := st.Control().InTx(context.Background(), func(tx *store.Tx) error {
		return r.CreateOrgKeys(context.Background(), tx, id)
	})
	if err != nil {
		t.Fatalf("CreateOrgKeys: %v", err)
	}
	return id
}

// switchKEK is a real KEK behind a switch that makes it fail as a provider
// that is down does, and that counts its calls.
type switchKEK struct {
	KEK
	down     atomic.Bool
	encrypts atomic.Int64
	decrypts atomic.Int64
}

var errConnRefused = errors.New("dial tcp 10.0.0.1:8200: connect: connection refused")

func (k *switchKEK) Encrypt(ctx context.Context, pt, ad []byte) ([]byte, error) {
	k.encrypts.Add(1)
	if k.down.Load() {
		return nil, errConnRefused
	}
	return k.KEK.Encrypt(ctx, pt, ad)
}

func (k *switchKEK) Decrypt(ctx context.Context, ct, ad []byte) ([]byte, error) {
	k.decrypts.Add(1)
	if k.down.Load() {
		return nil, errConnRefused
	}
	return k.KEK.Decrypt(ctx, ct, ad)
}

// recorder is an EventSink that keeps what it gets.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) KeyEvent(_ context.Context, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) actions(orgID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.OrgID == orgID {
			out = append(out, e.Action)
		}
	}
	return out
}
