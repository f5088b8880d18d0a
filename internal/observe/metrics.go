package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds Bulwark's Prometheus collectors in a registry of its own.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	statuses [600]string // "100".."599", so the hot path does not format numbers
}

// NewMetrics returns Metrics with Go runtime and process collectors, HTTP
// request counters and durations, and a gauge of open org database handles
// read from openOrgs at scrape time (nil reports 0).
func NewMetrics(openOrgs func() int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulwark_http_requests_total",
		Help: "HTTP requests served, by listener, route pattern, method and status.",
	}, []string{"listener", "route", "method", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bulwark_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by listener, route pattern and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"listener", "route", "method"})
	if openOrgs == nil {
		openOrgs = func() int { return 0 }
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests,
		m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bulwark_org_db_open_handles",
			Help: "Org database handles currently open.",
		}, func() float64 { return float64(openOrgs()) }),
	)
	for i := 100; i < len(m.statuses); i++ {
		m.statuses[i] = strconv.Itoa(i)
	}
	return m
}

// Registry returns the registry, for packages that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveRequest records one served request. route must be a route pattern
// (or "unmatched"), never a raw path, so the label set stays bounded.
func (m *Metrics) ObserveRequest(listener, route, method string, status int, d time.Duration) {
	var code string
	if status >= 100 && status < len(m.statuses) {
		code = m.statuses[status]
	} else {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(listener, route, method, code).Inc()
	m.duration.WithLabelValues(listener, route, method).Observe(d.Seconds())
}
