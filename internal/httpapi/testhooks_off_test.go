//go:build !bulwark_testhooks

package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTestHooks_AbsentFromDefaultBuild(t *testing.T) {
	rec := httptest.NewRecorder()
	NewServer(testDeps(io.Discard)).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/slow?ms=1", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/debug/slow answers %d in a default build, want 404", rec.Code)
	}
}
