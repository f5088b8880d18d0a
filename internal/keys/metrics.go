package keys

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts key use for Prometheus. No metric is labelled by org:
// the number of orgs is unbounded. Per-org counts live in orgUse until
// FlushUse adds them to the control table org_key_use, for Status.
type metrics struct {
	seals, opens, openFailures, blindIndexes prometheus.Counter
	unwrapData, unwrapIndex, unwrapStream    prometheus.Counter
	unavailable                              prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	unwraps := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulwark_keys_unwraps_total",
		Help: "Org keys unwrapped by the KEK (cache misses), by purpose.",
	}, []string{"purpose"})
	m := &metrics{
		seals:        counter("bulwark_keys_seals_total", "Values sealed with an org data key."),
		opens:        counter("bulwark_keys_opens_total", "Values opened with an org data key."),
		openFailures: counter("bulwark_keys_open_failures_total", "Ciphertexts that did not open (malformed, tampered, moved or of a destroyed key)."),
		blindIndexes: counter("bulwark_keys_blind_indexes_total", "Blind index values computed."),
		unwrapData:   unwraps.WithLabelValues(purposeData),
		unwrapIndex:  unwraps.WithLabelValues(purposeIndex),
		unwrapStream: unwraps.WithLabelValues(purposeStream),
		unavailable:  counter("bulwark_keys_kek_unavailable_total", "KEK calls that failed because the key service was unavailable."),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.seals, m.opens, m.openFailures, m.blindIndexes, unwraps, m.unavailable} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// unwrapOf returns the unwrap counter of purpose.
func (m *metrics) unwrapOf(purpose string) prometheus.Counter {
	switch purpose {
	case purposeData:
		return m.unwrapData
	case purposeStream:
		return m.unwrapStream
	}
	return m.unwrapIndex
}

// orgUse counts one org's key use in this process since the last
// FlushUse. It holds no use time: reading the clock on every seal and open
// would cost a tenth of a small seal, so the last use is known to within
// the flush interval (FlushUse and Status take "now" for orgs with counts).
type orgUse struct {
	seals, opens, unwraps, blindIndexes atomic.Uint64
}

// useCounts holds an orgUse per org that was used.
type useCounts struct{ m sync.Map } // org id -> *orgUse

func (u *useCounts) of(orgID string) *orgUse {
	if v, ok := u.m.Load(orgID); ok {
		return v.(*orgUse)
	}
	v, _ := u.m.LoadOrStore(orgID, new(orgUse))
	return v.(*orgUse)
}

func (u *useCounts) peek(orgID string) *orgUse {
	if v, ok := u.m.Load(orgID); ok {
		return v.(*orgUse)
	}
	return new(orgUse)
}

func (u *useCounts) forget(orgID string) { u.m.Delete(orgID) }
