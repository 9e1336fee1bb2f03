package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	tests := []struct {
		path, wantType string
		wantStatus     int
		wantCSP        bool
	}{
		{"/", "text/html", 200, true},
		{"/index.html", "text/html", 200, true},
		{"/magpie.js", "text/javascript", 200, false},
		{"/style.css", "text/css", 200, false},
		{"/web.go", "", 404, false},
		{"/nope.js", "", 404, false},
		// The SDK's package files and tests are not part of the page.
		{"/magpie.d.ts", "", 404, false},
		{"/package.json", "", 404, false},
		{"/README-sdk.md", "", 404, false},
		{"/sdk_test/sdk.test.mjs", "", 404, false},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.wantStatus {
			t.Errorf("GET %s: got %d, want %d", tt.path, rec.Code, tt.wantStatus)
			continue
		}
		if tt.wantStatus != 200 {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.wantType)
		}
		if got := rec.Header().Get("Content-Security-Policy") != ""; got != tt.wantCSP {
			t.Errorf("GET %s: CSP present %v, want %v", tt.path, got, tt.wantCSP)
		}
		if rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", tt.path)
		}
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app.js", nil))
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusNotModified {
		t.Fatalf("GET with the ETag: got %d, want 304", rec2.Code)
	}
}

// The client must never put user data into markup: no innerHTML or
// similar anywhere in the shipped scripts.
func TestNoHTMLSinks(t *testing.T) {
	entries, err := files.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, _ := files.ReadFile(e.Name())
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(string(b), sink) {
				t.Errorf("%s uses %s", e.Name(), sink)
			}
		}
	}
}
