package keys

import (
	"context"
	"time"
)

// The actions of key events.
const (
	ActionUnwrapped  = "key.unwrapped"   // an org key was unwrapped by the KEK (a cache miss)
	ActionCreated    = "key.created"     // an org's keys were created
	ActionRotated    = "key.rotated"     // an org got a new data key version
	ActionKEKRotated = "key.kek_rotated" // every stored key was re-wrapped under a new KEK
	ActionDestroyed  = "key.destroyed"   // every key of an org was destroyed
	// ActionReencrypted: the values an org had sealed with older data key
	// versions were re-encrypted with the job's version.
	ActionReencrypted = "key.reencrypted"
)

// Event is one use or change of a key, for the audit log. Details never
// hold key material: they name purposes, versions and KEK ids.
type Event struct {
	OrgID   string // "" for events about the KEK itself
	Action  string
	Time    time.Time
	Details map[string]string
}

// EventSink receives key events. KeyEvent is called synchronously, after
// the change it reports is stored (for CreateOrgKeys: after its rows are
// written in the caller's transaction, which may still roll back), and
// must not block for long or call back into the Ring.
type EventSink interface {
	KeyEvent(ctx context.Context, e Event)
}

func (r *Ring) emit(ctx context.Context, orgID, action string, details map[string]string) {
	if r.opts.Events == nil {
		return
	}
	r.opts.Events.KeyEvent(ctx, Event{OrgID: orgID, Action: action, Time: r.now(), Details: details})
}
