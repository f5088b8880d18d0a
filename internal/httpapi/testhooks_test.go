//go:build bulwark_testhooks

package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTestHooks_DebugSlowAnswersAfterTheDelay(t *testing.T) {
	h := NewServer(testDeps(io.Discard))
	cases := []struct {
		query string
		want  int
	}{
		{"ms=5", http.StatusOK},
		{"ms=-1", http.StatusBadRequest},
		{"ms=abc", http.StatusBadRequest},
		{"ms=600000", http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/slow?"+c.query, nil))
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d", rec.Code, c.want)
			}
			if c.want == http.StatusOK && !strings.Contains(rec.Body.String(), `"slept_ms":5`) {
				t.Fatalf("body %s", rec.Body)
			}
		})
	}
}
