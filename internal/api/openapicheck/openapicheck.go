// Package openapicheck checks HTTP requests and answers against an OpenAPI
// 3.1 document (internal/api/openapi.json): it finds the operation of a
// concrete method and path by matching the path templates, and validates
// a JSON body against the operation's request or response schema.
//
// It knows the JSON Schema subset the document uses, and Parse refuses a
// document with any other schema keyword, so a schema never passes because
// a keyword was silently ignored:
//
//   - type, a name or an array of names ("null" makes a value nullable;
//     "integer" is a number without a fractional part);
//   - properties, required, additionalProperties (false or a schema);
//   - items, enum, oneOf (exactly one branch must match), minimum;
//   - format "date-time" (RFC 3339), the only format checked;
//   - $ref to a schema of the document ("#/components/schemas/NAME");
//   - the annotations description, title, default, examples, deprecated
//     and contentMediaType, which constrain nothing.
//
// Standard library only; a Doc is safe for concurrent use once parsed.
package openapicheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Doc is a parsed document.
type Doc struct {
	root map[string]any
	ops  []operation
}

type operation struct {
	method   string // upper case
	template string
	segs     []string
	op       map[string]any
}

// Route is "METHOD /template", the form of api.Handler.Routes.
func (o *operation) route() string { return o.method + " " + o.template }

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// keywords are the schema keywords validate knows; annotations constrain
// nothing.
var keywords = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true,
	"enum": true, "oneOf": true, "minimum": true, "format": true, "$ref": true,
	"description": true, "title": true, "default": true, "examples": true, "deprecated": true, "contentMediaType": true,
}

var typeNames = map[string]bool{"null": true, "boolean": true, "object": true, "array": true, "string": true, "number": true, "integer": true}

// maxRefDepth bounds $ref chains, so a schema referring to itself without
// consuming input fails instead of recursing forever.
const maxRefDepth = 64

// Parse reads an OpenAPI 3.1 document and checks every schema in it for
// keywords outside the supported subset and for $refs that do not resolve.
func Parse(doc []byte) (*Doc, error) {
	v, err := decode(doc)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: document: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("openapicheck: document is not a JSON object")
	}
	if ver, _ := root["openapi"].(string); !strings.HasPrefix(ver, "3.1.") {
		return nil, fmt.Errorf("openapicheck: openapi %q, want 3.1.x", root["openapi"])
	}
	d := &Doc{root: root}
	paths, ok := root["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("openapicheck: no paths object")
	}
	for tmpl, item := range paths {
		ops, ok := item.(map[string]any)
		if !ok || !strings.HasPrefix(tmpl, "/") {
			return nil, fmt.Errorf("openapicheck: path %q: not a path item", tmpl)
		}
		for _, m := range methods {
			o, ok := ops[m].(map[string]any)
			if !ok {
				continue
			}
			op := operation{method: strings.ToUpper(m), template: tmpl, segs: strings.Split(tmpl, "/"), op: o}
			if err := d.checkOperation(&op); err != nil {
				return nil, err
			}
			d.ops = append(d.ops, op)
		}
	}
	if comps, ok := root["components"].(map[string]any); ok {
		if schemas, ok := comps["schemas"].(map[string]any); ok {
			for name, s := range schemas {
				if err := d.checkSchema(s, "#/components/schemas/"+name); err != nil {
					return nil, err
				}
			}
		}
	}
	sort.Slice(d.ops, func(i, j int) bool { return d.ops[i].route() < d.ops[j].route() })
	return d, nil
}

// checkOperation checks the schemas of one operation's bodies.
func (d *Doc) checkOperation(o *operation) error {
	where := o.route()
	if rb, ok := o.op["requestBody"].(map[string]any); ok {
		if err := d.checkContent(rb, where+" requestBody"); err != nil {
			return err
		}
	}
	resps, ok := o.op["responses"].(map[string]any)
	if !ok || len(resps) == 0 {
		return fmt.Errorf("openapicheck: %s: no responses", where)
	}
	for code, r := range resps {
		rm, ok := r.(map[string]any)
		if !ok {
			return fmt.Errorf("openapicheck: %s: response %s is not an object", where, code)
		}
		if err := d.checkContent(rm, where+" response "+code); err != nil {
			return err
		}
	}
	return nil
}

func (d *Doc) checkContent(obj map[string]any, where string) error {
	content, _ := obj["content"].(map[string]any)
	for mt, m := range content {
		mm, _ := m.(map[string]any)
		if s, ok := mm["schema"]; ok {
			if err := d.checkSchema(s, where+" "+mt); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSchema refuses unsupported keywords and unresolved $refs, at any
// depth.
func (d *Doc) checkSchema(s any, at string) error {
	if _, ok := s.(bool); ok {
		return nil
	}
	m, ok := s.(map[string]any)
	if !ok {
		return fmt.Errorf("openapicheck: %s: a schema is an object or a boolean", at)
	}
	for k := range m {
		if !keywords[k] {
			return fmt.Errorf("openapicheck: %s: unsupported schema keyword %q", at, k)
		}
	}
	if r, ok := m["$ref"]; ok {
		rs, _ := r.(string)
		if !strings.HasPrefix(rs, "#/components/schemas/") {
			return fmt.Errorf("openapicheck: %s: $ref %q: only #/components/schemas/NAME is supported", at, rs)
		}
		if _, err := d.resolve(rs); err != nil {
			return fmt.Errorf("openapicheck: %s: %w", at, err)
		}
	}
	if t, ok := m["type"]; ok {
		names, err := typeList(t)
		if err != nil {
			return fmt.Errorf("openapicheck: %s: %w", at, err)
		}
		for _, n := range names {
			if !typeNames[n] {
				return fmt.Errorf("openapicheck: %s: unknown type %q", at, n)
			}
		}
	}
	if f, ok := m["format"]; ok && f != "date-time" {
		return fmt.Errorf("openapicheck: %s: unsupported format %v", at, f)
	}
	if r, ok := m["required"]; ok {
		if _, err := stringList(r); err != nil {
			return fmt.Errorf("openapicheck: %s: required: %w", at, err)
		}
	}
	if e, ok := m["enum"]; ok {
		if _, ok := e.([]any); !ok {
			return fmt.Errorf("openapicheck: %s: enum is not an array", at)
		}
	}
	if mn, ok := m["minimum"]; ok {
		if _, ok := mn.(json.Number); !ok {
			return fmt.Errorf("openapicheck: %s: minimum is not a number", at)
		}
	}
	if p, ok := m["properties"]; ok {
		pm, ok := p.(map[string]any)
		if !ok {
			return fmt.Errorf("openapicheck: %s: properties is not an object", at)
		}
		for name, ps := range pm {
			if err := d.checkSchema(ps, at+"/properties/"+name); err != nil {
				return err
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := m[k]; ok {
			if err := d.checkSchema(sub, at+"/"+k); err != nil {
				return err
			}
		}
	}
	if o, ok := m["oneOf"]; ok {
		branches, ok := o.([]any)
		if !ok || len(branches) == 0 {
			return fmt.Errorf("openapicheck: %s: oneOf is not a non-empty array", at)
		}
		for i, b := range branches {
			if err := d.checkSchema(b, fmt.Sprintf("%s/oneOf/%d", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve follows a "#/a/b" JSON pointer.
func (d *Doc) resolve(ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q: only references inside the document (#/...) are supported", ref)
	}
	var cur any = d.root
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	return cur, nil
}

// Routes lists every operation as "METHOD /template", sorted.
func (d *Doc) Routes() []string {
	out := make([]string, len(d.ops))
	for i := range d.ops {
		out[i] = d.ops[i].route()
	}
	return out
}

// ErrNoRoute is returned (wrapped) for a method and path no operation
// matches.
var ErrNoRoute = errors.New("no operation in the document")

// find is the operation of method and a concrete path: a template matches
// segment by segment, "{name}" any non-empty segment; of several, the one
// with a literal at the first segment where they differ wins (as
// net/http.ServeMux picks the most specific pattern). HEAD falls back to
// GET.
func (d *Doc) find(method, path string) (*operation, error) {
	method = strings.ToUpper(method)
	segs := strings.Split(path, "/")
	var best *operation
	pathMatched := false
	for i := range d.ops {
		o := &d.ops[i]
		if !matches(o.segs, segs) {
			continue
		}
		pathMatched = true
		if o.method != method {
			continue
		}
		if best == nil || moreSpecific(o.segs, best.segs) {
			best = o
		}
	}
	if best == nil && method == http.MethodHead {
		return d.find(http.MethodGet, path)
	}
	if best == nil {
		if pathMatched {
			return nil, fmt.Errorf("%w for %s %s (the path has other methods)", ErrNoRoute, method, path)
		}
		return nil, fmt.Errorf("%w for %s %s", ErrNoRoute, method, path)
	}
	return best, nil
}

func isParam(seg string) bool { return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' }

func matches(tmpl, segs []string) bool {
	if len(tmpl) != len(segs) {
		return false
	}
	for i, t := range tmpl {
		if isParam(t) {
			if segs[i] == "" {
				return false
			}
		} else if t != segs[i] {
			return false
		}
	}
	return true
}

func moreSpecific(a, b []string) bool {
	for i := range a {
		if pa, pb := isParam(a[i]), isParam(b[i]); pa != pb {
			return !pa
		}
	}
	return false
}

// Route is the "METHOD /template" of the operation method and path reach.
func (d *Doc) Route(method, path string) (string, error) {
	o, err := d.find(method, path)
	if err != nil {
		return "", err
	}
	return o.route(), nil
}

// CheckResponse checks one answer: its status must be documented for the
// operation (exactly, as a range such as "4XX", or by "default"); a
// response documented without content must have an empty body; otherwise
// its content type must be documented, and a JSON body must match the
// schema. It returns the operation's route.
func (d *Doc) CheckResponse(method, path string, status int, contentType string, body []byte) (string, error) {
	o, err := d.find(method, path)
	if err != nil {
		return "", err
	}
	resps, _ := o.op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	r, ok := resps[code]
	if !ok {
		r, ok = resps[code[:1]+"XX"]
	}
	if !ok {
		r, ok = resps["default"]
	}
	if !ok {
		return o.route(), fmt.Errorf("%s: status %d is not documented", o.route(), status)
	}
	rm, _ := r.(map[string]any)
	content, _ := rm["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return o.route(), fmt.Errorf("%s: status %d is documented without a body, got %d bytes", o.route(), status, len(body))
		}
		return o.route(), nil
	}
	if method == http.MethodHead {
		return o.route(), nil
	}
	return o.route(), d.checkBody(o.route()+fmt.Sprintf(" status %d", status), content, contentType, body)
}

// CheckRequest checks a request body against the operation's requestBody:
// an operation without one takes an empty body; a JSON body must match the
// schema (other media types, such as multipart/form-data, are only
// checked to be documented). It returns the operation's route.
func (d *Doc) CheckRequest(method, path, contentType string, body []byte) (string, error) {
	o, err := d.find(method, path)
	if err != nil {
		return "", err
	}
	rb, ok := o.op["requestBody"].(map[string]any)
	empty := len(bytes.TrimSpace(body)) == 0
	if !ok {
		if !empty {
			return o.route(), fmt.Errorf("%s: documented without a request body, got %d bytes", o.route(), len(body))
		}
		return o.route(), nil
	}
	if empty {
		if req, _ := rb["required"].(bool); req {
			return o.route(), fmt.Errorf("%s: the request body is required", o.route())
		}
		return o.route(), nil
	}
	content, _ := rb["content"].(map[string]any)
	if contentType == "" {
		contentType = "application/json" // the API reads a body without a type as JSON
	}
	return o.route(), d.checkBody(o.route()+" request", content, contentType, body)
}

func (d *Doc) checkBody(where string, content map[string]any, contentType string, body []byte) error {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s: content type %q: %v", where, contentType, err)
	}
	media, ok := content[mt]
	if !ok {
		media, ok = content[strings.SplitN(mt, "/", 2)[0]+"/*"]
	}
	if !ok {
		media, ok = content["*/*"]
	}
	if !ok {
		keys := make([]string, 0, len(content))
		for k := range content {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return fmt.Errorf("%s: content type %q is not documented (documented: %s)", where, mt, strings.Join(keys, ", "))
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil // not JSON: only the type is checked
	}
	mm, _ := media.(map[string]any)
	schema, ok := mm["schema"]
	if !ok {
		return nil
	}
	v, err := decode(body)
	if err != nil {
		return fmt.Errorf("%s: body is not JSON: %v", where, err)
	}
	if err := d.validate(schema, v, "$", 0); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// Validate checks a JSON document against a schema of the document named
// by a JSON pointer, such as "#/components/schemas/Message".
func (d *Doc) Validate(ref string, body []byte) error {
	s, err := d.resolve(ref)
	if err != nil {
		return err
	}
	v, err := decode(body)
	if err != nil {
		return fmt.Errorf("body is not JSON: %v", err)
	}
	return d.validate(s, v, "$", 0)
}

// decode reads exactly one JSON value, numbers as json.Number.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func typeList(t any) ([]string, error) {
	switch t := t.(type) {
	case string:
		return []string{t}, nil
	case []any:
		return stringList(t)
	}
	return nil, errors.New("type is neither a string nor an array of strings")
}

func stringList(v any) ([]string, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, errors.New("not an array of strings")
	}
	out := make([]string, len(a))
	for i, x := range a {
		s, ok := x.(string)
		if !ok {
			return nil, errors.New("not an array of strings")
		}
		out[i] = s
	}
	return out, nil
}

// jsonType names v's JSON type; a number without a fractional part is
// "integer".
func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		if f, ok := new(big.Float).SetString(v.String()); ok && f.IsInt() {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func typeOK(want []string, got string) bool {
	return slices.Contains(want, got) || got == "integer" && slices.Contains(want, "number")
}

// validate checks v against schema s; at is where v is, as $.a[0].b.
func (d *Doc) validate(s any, v any, at string, depth int) error {
	if b, ok := s.(bool); ok {
		if !b {
			return fmt.Errorf("%s: no value is allowed here", at)
		}
		return nil
	}
	m, ok := s.(map[string]any) // Parse checked the document's schemas
	if !ok {
		return fmt.Errorf("%s: the schema is not an object", at)
	}
	if r, ok := m["$ref"].(string); ok {
		if depth >= maxRefDepth {
			return fmt.Errorf("%s: $ref chain deeper than %d", at, maxRefDepth)
		}
		target, err := d.resolve(r)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if err := d.validate(target, v, at, depth+1); err != nil {
			return err
		}
	}
	got := jsonType(v)
	if t, ok := m["type"]; ok {
		want, _ := typeList(t)
		if !typeOK(want, got) {
			return fmt.Errorf("%s: %s, want %s", at, got, strings.Join(want, " or "))
		}
	}
	if e, ok := m["enum"].([]any); ok {
		if !slices.ContainsFunc(e, func(x any) bool { return equal(x, v) }) {
			return fmt.Errorf("%s: %s is not one of %s", at, show(v), show(e))
		}
	}
	if mn, ok := m["minimum"].(json.Number); ok {
		if n, isNum := v.(json.Number); isNum {
			a, _ := new(big.Float).SetString(n.String())
			b, _ := new(big.Float).SetString(mn.String())
			if a != nil && b != nil && a.Cmp(b) < 0 {
				return fmt.Errorf("%s: %s is below the minimum %s", at, n, mn)
			}
		}
	}
	if m["format"] == "date-time" {
		if str, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				return fmt.Errorf("%s: %q is not an RFC 3339 date-time", at, str)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		if err := d.validateObject(m, obj, at, depth); err != nil {
			return err
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := m["items"]; ok {
			for i, x := range arr {
				if err := d.validate(items, x, fmt.Sprintf("%s[%d]", at, i), depth); err != nil {
					return err
				}
			}
		}
	}
	if o, ok := m["oneOf"].([]any); ok {
		var matched []int
		var errs []string
		for i, b := range o {
			if err := d.validate(b, v, at, depth); err != nil {
				errs = append(errs, fmt.Sprintf("branch %d: %v", i, err))
			} else {
				matched = append(matched, i)
			}
		}
		switch len(matched) {
		case 1:
		case 0:
			return fmt.Errorf("%s: matches no branch of oneOf (%s)", at, strings.Join(errs, "; "))
		default:
			return fmt.Errorf("%s: matches branches %v of oneOf, want exactly one", at, matched)
		}
	}
	return nil
}

func (d *Doc) validateObject(m map[string]any, obj map[string]any, at string, depth int) error {
	req, _ := stringList(m["required"])
	for _, k := range req {
		if _, ok := obj[k]; !ok {
			return fmt.Errorf("%s: required property %q is missing", at, k)
		}
	}
	props, _ := m["properties"].(map[string]any)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first error is the same every run
	for _, k := range keys {
		sub := at + "." + k
		if ps, ok := props[k]; ok {
			if err := d.validate(ps, obj[k], sub, depth); err != nil {
				return err
			}
			continue
		}
		switch ap := m["additionalProperties"].(type) {
		case nil:
		case bool:
			if !ap {
				return fmt.Errorf("%s: property %q is not in the schema", at, k)
			}
		default:
			if err := d.validate(ap, obj[k], sub, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// equal compares JSON values, numbers by value.
func equal(a, b any) bool {
	na, okA := a.(json.Number)
	nb, okB := b.(json.Number)
	if okA && okB {
		fa, _ := new(big.Float).SetString(na.String())
		fb, _ := new(big.Float).SetString(nb.String())
		return fa != nil && fb != nil && fa.Cmp(fb) == 0
	}
	return reflect.DeepEqual(a, b)
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
