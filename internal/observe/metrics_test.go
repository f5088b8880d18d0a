package observe

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetrics_ExposeRequestsAndOpenOrgs(t *testing.T) {
	m := NewMetrics(func() int { return 42 })
	m.ObserveRequest("public", "GET /healthz", "GET", 200, 3*time.Millisecond)
	m.ObserveRequest("public", "GET /healthz", "GET", 200, 3*time.Millisecond)
	m.ObserveRequest("ops", "unmatched", "POST", 404, time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`bulwark_http_requests_total{listener="public",method="GET",route="GET /healthz",status="200"} 2`,
		`bulwark_http_requests_total{listener="ops",method="POST",route="unmatched",status="404"} 1`,
		`bulwark_http_request_duration_seconds_count{listener="public",method="GET",route="GET /healthz"} 2`,
		`bulwark_org_db_open_handles 42`,
		`go_goroutines`,
		`process_start_time_seconds`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetrics_TwoInstancesDoNotCollide(t *testing.T) {
	a, b := NewMetrics(nil), NewMetrics(nil)
	a.ObserveRequest("public", "GET /healthz", "GET", 200, time.Millisecond)
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), `route="GET /healthz"`) {
		t.Fatal("a request observed on one Metrics shows on another")
	}
}

func TestHealth_NotReadyUntilSet(t *testing.T) {
	h := NewHealth()
	if h.Ready() {
		t.Fatal("new Health is ready")
	}
	h.SetReady(true)
	if !h.Ready() {
		t.Fatal("SetReady(true) did not take")
	}
	h.SetReady(false)
	if h.Ready() {
		t.Fatal("SetReady(false) did not take")
	}
}
