package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// KeyEvents writes the keyring's events (unwraps, rotations, creations,
// destructions of keys) to the control-plane log. The keyring reports
// them synchronously, sometimes from inside a transaction of the control
// database, so KeyEvents only queues them and one goroutine (Run) appends
// them in batches, each batch one transaction: an event is in the log
// within moments of the key use, and a process that crashes may lose at
// most the batch in flight (a server logs the events too).
type KeyEvents struct {
	log   *slog.Logger
	queue chan queued

	mu      sync.RWMutex // held for reading while sending, so Close never closes the queue under a sender
	closed  bool
	dropped prometheus.Counter
	done    chan struct{}
}

type queued struct {
	src Source
	e   keys.Event
}

// keyEventQueue bounds the events waiting to be written.
const keyEventQueue = 8192

// NewKeyEvents returns a KeyEvents; pass it to keys.Options.Events, then
// start Run once the Service exists.
func NewKeyEvents(log *slog.Logger, reg prometheus.Registerer) (*KeyEvents, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeyEvents{log: log, queue: make(chan queued, keyEventQueue), done: make(chan struct{}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_audit_key_events_dropped_total",
			Help: "Key events not written to the audit log because its queue stayed full."})}
	if reg != nil {
		if err := reg.Register(k.dropped); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// KeyEvent queues e. When the queue is full it waits up to a second, then
// drops the event with an error log line and a metric: the keyring must
// not stall for long behind the log.
func (k *KeyEvents) KeyEvent(ctx context.Context, e keys.Event) {
	q := queued{src: SourceFrom(ctx), e: e}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.closed {
		select {
		case k.queue <- q:
			return
		default:
		}
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case k.queue <- q:
			return
		case <-t.C:
		}
	}
	k.dropped.Inc()
	k.log.Error("key event not written to the audit log", "action", e.Action, "org_id", e.OrgID)
}

// Run writes queued events to svc's control log until Close, then writes
// what is left and returns.
func (k *KeyEvents) Run(svc *Service) {
	defer close(k.done)
	ctx := context.Background()
	batch := make([]queued, 0, 256)
	for {
		q, ok := <-k.queue
		if !ok {
			return
		}
		batch = append(batch[:0], q)
	more:
		for len(batch) < cap(batch) {
			select {
			case q, ok := <-k.queue:
				if !ok {
					break more
				}
				batch = append(batch, q)
			default:
				break more
			}
		}
		err := svc.InLogTx(ctx, ControlLog, func(tx *store.Tx) error {
			for _, q := range batch {
				res := Resource{Type: "org_keys", ID: q.e.OrgID}
				if q.e.OrgID == "" {
					res = Resource{Type: "keyring"}
				}
				if _, err := svc.Append(ctx, tx, ControlLog, q.src.Event(q.e.Action, res, Success, q.e.Details)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			k.dropped.Add(float64(len(batch)))
			k.log.Error("key events not written to the audit log", "events", len(batch), "error", err.Error())
		}
	}
}

// Close stops taking events and waits (up to timeout) until Run has
// written the queued ones.
func (k *KeyEvents) Close(timeout time.Duration) {
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		close(k.queue)
	}
	k.mu.Unlock()
	select {
	case <-k.done:
	case <-time.After(timeout):
	}
}
