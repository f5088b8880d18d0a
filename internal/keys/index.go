package keys

import (
	"context"

	"bulwark/internal/apperr"
)

var indexDomain = "bulwark/keys/blind-index/v1"

// BlindIndex returns HMAC-SHA256 of value under the org's blind-index key,
// for equality lookups on a sealed field: equal values of one field in one
// org give equal outputs (32 bytes); other orgs and other fields give
// unrelated ones. The field name is part of the MAC input. The key is
// never rotated, so indexes stay valid. Returns invalid for an empty
// field, not_found when the org has no keys, unavailable when the key is
// not cached and the KEK provider cannot be used.
func (r *Ring) BlindIndex(ctx context.Context, orgID, field string, value []byte) ([]byte, error) {
	if field == "" {
		return nil, apperr.Errorf(apperr.Invalid, "blind index needs a field")
	}
	k, err := r.key(ctx, slot{orgID, purposeIndex, 0})
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, 8+len(indexDomain)+len(field)+len(value))
	msg = appendLP(msg, indexDomain)
	msg = appendLP(msg, field)
	msg = append(msg, value...)
	tag, err := k.mac.ComputeMAC(msg)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "value cannot be indexed")
	}
	r.metrics.blindIndexes.Inc()
	r.use.of(orgID).blindIndexes.Add(1)
	return tag, nil
}
