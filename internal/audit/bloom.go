package audit

import (
	"strings"

	"bulwark/internal/apperr"
)

// Filters are served without an index entry per event: the log is cut
// into blocks of blockEvents seqs, and each complete block gets a Bloom
// filter of the keys its events can be filtered by (and of each actor's
// actions, so that an actor and an action together, rare where each is
// common, skip blocks too) (audit_blooms: one row
// of bloomBytes per block, written after the block is complete, by
// index). A query walks the blooms of its range and reads only the blocks
// whose bloom holds every key of its filter, plus the blocks that have no
// bloom yet (the newest); it tests every event it reads against the
// filter itself, so a false positive costs a block's read, never a wrong
// result. A bloom is only ever a superset of its block's keys: it is
// built from the stored events, never from events still in flight.

const (
	blockEvents = 512
	bloomBytes  = 4000 // 32,000 bits, so that a bloom's row fits in a page of SQLite's (no overflow page to read)
	bloomHashes = 6
)

// blockOf is the block of seq (seqs start at 1).
func blockOf(seq int64) int64 { return (seq - 1) / blockEvents }

// blockSeqs is the seq range of block b.
func blockSeqs(b int64) seqRange { return seqRange{b*blockEvents + 1, (b + 1) * blockEvents} }

// The kinds of key, one byte before the key's text.
const (
	keyActor        = 'a' // actor id
	keyActorTyped   = 'A' // actor type, actor id
	keyAction       = 'v' // action
	keyActionPrefix = 'p' // each prefix of the action before a dot
	keyResourceType = 'r' // resource type
	keyResource     = 'R' // resource type, resource id
	keyOutcome      = 'o' // outcome
	keyActorAction  = 'x' // actor id, action: an actor's action, or a prefix of it
)

// keyHash hashes a key: its kind and one or two parts (FNV-1a, 64 bits,
// the parts separated by a byte that no part holds, then a finalizer that
// spreads the bits).
func keyHash(kind byte, a, b []byte) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	h = (h ^ uint64(kind)) * prime
	for _, c := range a {
		h = (h ^ uint64(c)) * prime
	}
	if b != nil {
		h = (h ^ 0xff) * prime
		for _, c := range b {
			h = (h ^ uint64(c)) * prime
		}
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// bloom is one block's filter.
type bloom []byte

func (f bloom) add(h uint64) {
	h1, h2 := uint32(h), uint32(h>>32)|1
	for i := range uint32(bloomHashes) {
		p := (h1 + i*h2) % (bloomBytes * 8)
		f[p/8] |= 1 << (p % 8)
	}
}

func (f bloom) has(h uint64) bool {
	if len(f) != bloomBytes { // (a bloom written with another size)
		return true // not a bloom this code wrote: read the block
	}
	h1, h2 := uint32(h), uint32(h>>32)|1
	for i := range uint32(bloomHashes) {
		p := (h1 + i*h2) % (bloomBytes * 8)
		if f[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

// addEvent adds the keys of an event.
func (f bloom) addEvent(e *fields) {
	actor, action := e.f[fActorID], e.f[fAction]
	f.add(keyHash(keyActor, actor, nil))
	f.add(keyHash(keyActorTyped, e.f[fActorType], actor))
	f.add(keyHash(keyAction, action, nil))
	f.add(keyHash(keyActorAction, actor, action))
	for i, c := range action {
		if c == '.' {
			f.add(keyHash(keyActionPrefix, action[:i], nil))
			f.add(keyHash(keyActorAction, actor, action[:i+1]))
		}
	}
	f.add(keyHash(keyResourceType, e.f[fResourceType], nil))
	f.add(keyHash(keyResource, e.f[fResourceType], e.f[fResourceID]))
	f.add(keyHash(keyOutcome, e.f[fOutcome], nil))
}

// keys returns the hashes of the keys that every event matching f has;
// none when f filters on time alone or on nothing.
func (f Filter) keys() []uint64 {
	var ks []uint64
	if f.Actor != "" {
		ks = append(ks, valueKey(f.Actor, keyActor, keyActorTyped))
	}
	if f.Action != "" {
		prefix, isPrefix := strings.CutSuffix(f.Action, ".*")
		if isPrefix {
			ks = append(ks, keyHash(keyActionPrefix, []byte(prefix), nil))
		} else {
			ks = append(ks, keyHash(keyAction, []byte(f.Action), nil))
		}
		if f.Actor != "" { // an actor's actions have a key of their own
			id := f.Actor
			if _, after, ok := strings.Cut(f.Actor, ":"); ok {
				id = after
			}
			action := f.Action
			if isPrefix {
				action = prefix + "."
			}
			ks = append(ks, keyHash(keyActorAction, []byte(id), []byte(action)))
		}
	}
	if f.Resource != "" {
		ks = append(ks, valueKey(f.Resource, keyResourceType, keyResource))
	}
	if f.Outcome != "" {
		ks = append(ks, keyHash(keyOutcome, []byte(f.Outcome), nil))
	}
	return ks
}

// valueKey is the key of a filter's value v: of kind typed when v is
// TYPE:ID, of kind one otherwise.
func valueKey(v string, one, typed byte) uint64 {
	if typ, id, ok := strings.Cut(v, ":"); ok {
		return keyHash(typed, []byte(typ), []byte(id))
	}
	return keyHash(one, []byte(v), nil)
}

// mayHold reports whether a block with bloom f may hold an event with
// every key of ks.
func (f bloom) mayHold(ks []uint64) bool {
	for _, k := range ks {
		if !f.has(k) {
			return false
		}
	}
	return true
}

func invalidFilter(msg, field string) error {
	return apperr.WithFields(msg, apperr.FieldError{Field: field, Code: "invalid"})
}
