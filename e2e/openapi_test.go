//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/magpie-im/magpie/internal/api/openapicheck"
)

// The e2e suite's HTTP helpers check each answer against the server's own
// GET /v1/openapi.json (internal/server's TestOpenAPIResponses covers
// every route; this adds the answers of real server processes).
var openAPI struct {
	mu  sync.Mutex
	doc *openapicheck.Doc // of the binary under test: the same for every server
}

// checkOpenAPI fails t when an answer of the server at base (http://host:port)
// does not match the document.
func checkOpenAPI(t *testing.T, base, method, path string, resp *http.Response, body []byte) {
	t.Helper()
	openAPI.mu.Lock()
	doc := openAPI.doc
	openAPI.mu.Unlock()
	if doc == nil {
		r, err := http.Get(base + "/v1/openapi.json")
		if err != nil {
			t.Fatalf("GET /v1/openapi.json: %v", err) // it answered the call just made
		}
		raw, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if doc, err = openapicheck.Parse(raw); err != nil {
			t.Fatal(err)
		}
		openAPI.mu.Lock()
		openAPI.doc = doc
		openAPI.mu.Unlock()
	}
	if _, err := doc.CheckResponse(method, path, resp.StatusCode, resp.Header.Get("Content-Type"), body); err != nil {
		t.Errorf("the answer does not match openapi.json: %v\n\tbody: %.600s", err, body)
	}
}
