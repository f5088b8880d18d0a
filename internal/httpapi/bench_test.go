package httpapi

import (
	"io"
	"net/http/httptest"
	"testing"
)

// BenchmarkPublic_Healthz measures the whole middleware stack, access log
// (JSON, redacting) included, around the cheapest route.
func BenchmarkPublic_Healthz(b *testing.B) {
	h := NewServer(testDeps(io.Discard))
	r := httptest.NewRequest("GET", "/healthz", nil)
	r.RemoteAddr = "192.0.2.10:40000"
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
