package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// registeredRoutes is the "METHOD /path" of every route New registers.
func registeredRoutes(t *testing.T) map[string]bool {
	h := New(http.NewServeMux(), nil, slog.New(slog.DiscardHandler))
	routes := map[string]bool{}
	for _, p := range h.Routes() {
		if routes[p] {
			t.Errorf("route %q registered twice", p)
		}
		routes[p] = true
	}
	return routes
}

func documentedRoutes(t *testing.T, doc []byte) map[string]bool {
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if d.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", d.OpenAPI)
	}
	routes := map[string]bool{}
	for path, ops := range d.Paths {
		for method := range ops {
			routes[strings.ToUpper(method)+" "+path] = true
		}
	}
	return routes
}

func diffRoutes(a, b map[string]bool) []string {
	var out []string
	for r := range a {
		if !b[r] {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPICoversRoutes(t *testing.T) {
	registered, documented := registeredRoutes(t), documentedRoutes(t, openAPIDoc)
	if len(registered) < 10 {
		t.Fatalf("found only %d registered routes", len(registered))
	}
	if missing := diffRoutes(registered, documented); len(missing) > 0 {
		t.Errorf("routes without an entry in openapi.json: %v", missing)
	}
	if stale := diffRoutes(documented, registered); len(stale) > 0 {
		t.Errorf("openapi.json names routes the server does not register: %v", stale)
	}
	// The check itself must be able to fail: a document without one route.
	if len(diffRoutes(registered, documentedRoutes(t, []byte(`{"openapi":"3.1.0","paths":{}}`)))) != len(registered) {
		t.Error("an empty document was not reported")
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := &Handler{}
	rec := httptest.NewRecorder()
	h.openAPI(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	if rec.Header().Get("Cache-Control") == "" {
		t.Error("no Cache-Control")
	}
	if !json.Valid(rec.Body.Bytes()) || rec.Body.Len() != len(openAPIDoc) {
		t.Error("body is not the embedded document")
	}
}
