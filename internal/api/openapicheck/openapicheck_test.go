package openapicheck

import (
	"strings"
	"testing"
)

const testDoc = `{
 "openapi": "3.1.0",
 "info": {"title": "t", "version": "1"},
 "components": {"schemas": {
  "Error": {"type": "object", "required": ["error"], "additionalProperties": false,
   "properties": {"error": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}}}},
  "Item": {"type": "object", "required": ["id", "tags"], "additionalProperties": false, "properties": {
   "id": {"type": "integer", "minimum": 1},
   "name": {"type": ["string", "null"]},
   "kind": {"type": "string", "enum": ["a", "b"]},
   "level": {"type": "integer", "enum": [0, 1]},
   "ratio": {"type": "number"},
   "at": {"type": "string", "format": "date-time"},
   "tags": {"type": "array", "items": {"type": "string"}},
   "meta": {"type": "object", "additionalProperties": {"type": "string"}},
   "parent": {"oneOf": [{"$ref": "#/components/schemas/Item"}, {"type": "null"}]}}},
  "Ack": {"oneOf": [
   {"type": "object", "required": ["seq"], "additionalProperties": false, "properties": {"seq": {"type": "integer"}}},
   {"type": "object", "required": ["scheduled_id"], "additionalProperties": false, "properties": {"scheduled_id": {"type": "integer"}}}]},
  "Loose": {"oneOf": [{"type": "object"}, {"type": "object", "required": ["x"]}]}
 }},
 "paths": {
  "/items": {"post": {
   "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
   "responses": {"201": {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                 "default": {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
  "/items/{id}": {
   "get": {"responses": {"200": {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                          "4XX": {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}},
   "delete": {"responses": {"204": {"description": ""}}}},
  "/items/special": {"get": {"responses": {"200": {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ack"}}}}}}},
  "/items/{id}/raw": {"get": {"responses": {"200": {"description": "", "content": {"*/*": {"schema": {"type": "string"}}}}}}},
  "/loose": {"get": {"responses": {"200": {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Loose"}}}}}}}
 }
}`

func mustParse(t *testing.T) *Doc {
	t.Helper()
	d, err := Parse([]byte(testDoc))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRoutesAndMatching(t *testing.T) {
	d := mustParse(t)
	want := "DELETE /items/{id},GET /items/special,GET /items/{id},GET /items/{id}/raw,GET /loose,POST /items"
	if got := strings.Join(d.Routes(), ","); got != want {
		t.Errorf("Routes = %s", got)
	}
	for _, c := range []struct{ method, path, route string }{
		{"GET", "/items/7", "GET /items/{id}"},
		{"get", "/items/special", "GET /items/special"}, // the literal beats the parameter
		{"DELETE", "/items/special", "DELETE /items/{id}"},
		{"HEAD", "/items/7/raw", "GET /items/{id}/raw"},
		{"POST", "/items", "POST /items"},
	} {
		if got, err := d.Route(c.method, c.path); err != nil || got != c.route {
			t.Errorf("Route(%s %s) = %q, %v; want %q", c.method, c.path, got, err, c.route)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/items"},      // only POST
		{"GET", "/items/"},     // an empty segment is no parameter
		{"GET", "/items/7/x"},  // no such template
		{"PUT", "/items/7"},    // no such method
		{"GET", "/other/path"}, // nothing at all
	} {
		if got, err := d.Route(c.method, c.path); err == nil {
			t.Errorf("Route(%s %s) = %q, want an error", c.method, c.path, got)
		}
	}
}

func TestCheckResponse(t *testing.T) {
	d := mustParse(t)
	const js = "application/json"
	good := []struct {
		method, path string
		status       int
		ct, body     string
	}{
		{"POST", "/items", 201, js, `{"id":1,"tags":[]}`},
		{"POST", "/items", 201, "application/json; charset=utf-8", `{"id":2,"name":null,"kind":"a","level":1,"ratio":0.5,"tags":["x"],
			"at":"2026-12-06T21:00:00Z","meta":{"k":"v"},"parent":{"id":1,"tags":[],"parent":null}}`},
		{"POST", "/items", 201, js, `{"id":3,"tags":[],"ratio":2,"level":1.0}`}, // an integer is a number; 1.0 an integer
		{"POST", "/items", 400, js, `{"error":{"code":"bad_request","extra":"open object"}}`},
		{"GET", "/items/1", 404, js, `{"error":{"code":"not_found"}}`}, // 4XX
		{"DELETE", "/items/1", 204, "", ``},
		{"GET", "/items/special", 200, js, `{"seq":5}`},
		{"GET", "/items/special", 200, js, `{"scheduled_id":5}`},
		{"GET", "/items/1/raw", 200, "image/png", "\x89PNG"},
	}
	for _, c := range good {
		if _, err := d.CheckResponse(c.method, c.path, c.status, c.ct, []byte(c.body)); err != nil {
			t.Errorf("%s %s %d %s: %v", c.method, c.path, c.status, c.body, err)
		}
	}
	bad := []struct {
		method, path string
		status       int
		ct, body     string
		want         string
	}{
		{"POST", "/items", 201, js, `{"tags":[]}`, `required property "id"`},
		{"POST", "/items", 201, js, `{"id":"1","tags":[]}`, "$.id: string, want integer"},
		{"POST", "/items", 201, js, `{"id":1.5,"tags":[]}`, "$.id: number, want integer"},
		{"POST", "/items", 201, js, `{"id":0,"tags":[]}`, "below the minimum"},
		{"POST", "/items", 201, js, `{"id":1,"tags":null}`, "$.tags: null, want array"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[1]}`, "$.tags[0]: integer, want string"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"name":5}`, "want string or null"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"kind":"c"}`, `"c" is not one of ["a","b"]`},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"level":2}`, "is not one of"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"at":"yesterday"}`, "RFC 3339"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"extra":true}`, `property "extra" is not in the schema`},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"meta":{"k":1}}`, "$.meta.k: integer, want string"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[],"parent":{"id":1}}`, "matches no branch of oneOf"},
		{"POST", "/items", 201, js, `[]`, "array, want object"},
		{"POST", "/items", 201, js, `{"id":1,"tags":[]} {}`, "not JSON"},
		{"POST", "/items", 201, js, `{"id":1,`, "not JSON"},
		{"POST", "/items", 201, "text/plain", `{"id":1,"tags":[]}`, `content type "text/plain" is not documented`},
		{"POST", "/items", 500, js, `{"error":{}}`, `required property "code"`},
		{"GET", "/items/1", 500, js, `{"error":{"code":"internal"}}`, "status 500 is not documented"},
		{"DELETE", "/items/1", 204, js, `{}`, "documented without a body"},
		{"GET", "/items/special", 200, js, `{"seq":1,"scheduled_id":2}`, "matches no branch"},
		{"GET", "/loose", 200, js, `{"x":1}`, "matches branches [0 1] of oneOf"},
		{"PUT", "/items/1", 200, js, `{}`, "no operation"},
	}
	for _, c := range bad {
		_, err := d.CheckResponse(c.method, c.path, c.status, c.ct, []byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s %d %s: err %v, want one saying %q", c.method, c.path, c.status, c.body, err, c.want)
		}
	}
}

func TestCheckRequest(t *testing.T) {
	d := mustParse(t)
	if _, err := d.CheckRequest("POST", "/items", "", []byte(`{"id":1,"tags":[]}`)); err != nil {
		t.Error(err) // no content type: read as JSON
	}
	for _, c := range []struct{ method, path, ct, body, want string }{
		{"POST", "/items", "application/json", `{"id":1}`, `required property "tags"`},
		{"POST", "/items", "application/json", ``, "required"},
		{"POST", "/items", "application/x-www-form-urlencoded", `id=1`, "not documented"},
		{"GET", "/items/1", "", `{"id":1}`, "without a request body"},
	} {
		if _, err := d.CheckRequest(c.method, c.path, c.ct, []byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s %q: err %v, want one saying %q", c.method, c.path, c.body, err, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	d := mustParse(t)
	if err := d.Validate("#/components/schemas/Item", []byte(`{"id":1,"tags":[]}`)); err != nil {
		t.Error(err)
	}
	if err := d.Validate("#/components/schemas/Item", []byte(`{"id":1}`)); err == nil {
		t.Error("a missing required property passed")
	}
	if err := d.Validate("#/components/schemas/Nope", []byte(`{}`)); err == nil {
		t.Error("an unknown schema passed")
	}
}

// Parse refuses what validate would not check.
func TestParseRefusesUnsupported(t *testing.T) {
	schemaDoc := func(schema string) string {
		return `{"openapi":"3.1.0","paths":{},"components":{"schemas":{"X":` + schema + `}}}`
	}
	for _, c := range []struct{ doc, want string }{
		{`{"openapi":"3.0.3","paths":{}}`, "want 3.1.x"},
		{`{"openapi":"3.1.0"}`, "no paths"},
		{`[]`, "not a JSON object"},
		{schemaDoc(`{"type":"string","pattern":"^a"}`), `unsupported schema keyword "pattern"`},
		{schemaDoc(`{"anyOf":[{"type":"string"}]}`), `unsupported schema keyword "anyOf"`},
		{schemaDoc(`{"type":"object","properties":{"a":{"allOf":[]}}}`), `unsupported schema keyword "allOf"`},
		{schemaDoc(`{"type":"strin"}`), `unknown type "strin"`},
		{schemaDoc(`{"type":"string","format":"email"}`), "unsupported format"},
		{schemaDoc(`{"$ref":"#/components/schemas/Y"}`), "does not resolve"},
		{schemaDoc(`{"$ref":"other.json#/X"}`), "only #/components/schemas/NAME"},
		{schemaDoc(`{"oneOf":[]}`), "non-empty array"},
		{schemaDoc(`{"required":"a"}`), "required"},
		{`{"openapi":"3.1.0","paths":{"/a":{"get":{"responses":{}}}}}`, "no responses"},
		{`{"openapi":"3.1.0","paths":{"/a":{"get":{"responses":{"200":{"description":"","content":{"application/json":{"schema":{"not":{}}}}}}}}}}`, `unsupported schema keyword "not"`},
	} {
		if _, err := Parse([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s): err %v, want one saying %q", c.doc, err, c.want)
		}
	}
}
