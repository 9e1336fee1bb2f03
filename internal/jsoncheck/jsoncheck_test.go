package jsoncheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	manyKeys := func(n int, dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"k` + strings.Repeat("x", i) + `":1`)
		}
		return b.String() + dup + "}"
	}
	tests := []struct {
		name string
		in   string
		fold bool
		want error // nil: accepted
	}{
		{"object", `{"to_user":"bob","text":"hi \u00e9 \ud83d\ude00 é","n":-1.5e+3,"a":[true,false,null,{}],"o":{}}`, true, nil},
		{"scalar", ` 12 `, false, nil},
		{"empty string key", `{"":1}`, false, nil},
		{"same key in two objects", `{"a":{"a":1},"b":{"a":2},"c":[{"a":1},{"a":1}]}`, true, nil},
		{"depth 32", deep(32), false, nil},
		{"depth 33", deep(33), false, ErrTooDeep},
		{"depth 10000", deep(10000), false, ErrTooDeep},
		{"raw invalid UTF-8", "{\"text\":\"a\xffb\"}", false, ErrInvalidText},
		{"overlong encoding", "{\"text\":\"\xc0\xaf\"}", false, ErrInvalidText},
		{"encoded surrogate", "{\"text\":\"\xed\xa0\x80\"}", false, ErrInvalidText},
		{"invalid UTF-8 in a key", "{\"t\xfe\":1}", false, ErrInvalidText},
		{"lone high surrogate", `{"text":"\ud800"}`, false, ErrInvalidText},
		{"lone high surrogate at the end", `"\ud800`, false, ErrInvalidText},
		{"lone low surrogate", `{"text":"\udc00x"}`, false, ErrInvalidText},
		{"high then non-low", `{"text":"\ud800\u0041"}`, false, ErrInvalidText},
		{"two highs", `{"text":"\ud800\ud800"}`, false, ErrInvalidText},
		{"duplicate key", `{"to_user":"bob","to_user":"carol"}`, false, ErrDuplicateKey},
		{"duplicate nested", `{"a":[{"x":1,"y":2,"x":3}]}`, false, ErrDuplicateKey},
		{"duplicate by escape", `{"to_user":"bob","to\u005fuser":"carol"}`, false, ErrDuplicateKey},
		{"duplicate by case, folding", `{"to_user":"bob","TO_USER":"carol"}`, true, ErrDuplicateKey},
		{"Kelvin sign folds to k", `{"k":1,"\u212a":2}`, true, ErrDuplicateKey},
		{"case differs, exact", `{"to_user":"bob","TO_USER":"carol"}`, false, nil},
		{"many keys", manyKeys(100, ""), true, nil},
		{"many keys, duplicate late", manyKeys(100, `,"kxxx":2`), false, ErrDuplicateKey},
		{"many keys, duplicate by case", manyKeys(40, `,"KXX":2`), true, ErrDuplicateKey},
		{"trailing data", `{"a":1} {}`, false, ErrSyntax},
		{"trailing comma", `{"a":1,}`, false, ErrSyntax},
		{"array trailing comma", `[1,]`, false, ErrSyntax},
		{"missing colon", `{"a" 1}`, false, ErrSyntax},
		{"leading zero", `01`, false, ErrSyntax},
		{"bare minus", `-`, false, ErrSyntax},
		{"bad exponent", `1e`, false, ErrSyntax},
		{"control char", "\"a\nb\"", false, ErrSyntax},
		{"bad escape", `"\x"`, false, ErrSyntax},
		{"short unicode escape", `"\u12"`, false, ErrSyntax},
		{"unterminated", `{"a":"b`, false, ErrSyntax},
		{"empty", ``, false, ErrSyntax},
		{"mismatched brackets", `[}`, false, ErrSyntax},
		{"non-string key", `{1:2}`, false, ErrSyntax},
		{"truth", `tru`, false, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.in), Options{FoldKeys: tt.fold})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check(%.80q) = %v, want %v", tt.in, err, tt.want)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Offset < 0 || e.Offset > len(tt.in)) {
				t.Fatalf("got %#v, want an *Error with an offset in the input", err)
			}
		})
	}
}

func TestDuplicateKeyNamesTheKey(t *testing.T) {
	err := Check([]byte(`{"to_user":"bob","to_user":"carol"}`), Options{})
	var e *Error
	if !errors.As(err, &e) || e.Key != "to_user" || e.Offset != 17 {
		t.Fatalf("got %v, want duplicate key to_user at byte 17", err)
	}
}

// dupKeys is a slow reference: encoding/json's tokenizer, with a key set
// per object (keys as decoded; folded if fold).
func dupKeys(b []byte, fold bool) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type obj struct {
		keys    []string // nil: an array
		wantKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return false
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.keys != nil {
					top.wantKey = true
				}
				stack = append(stack, &obj{keys: []string{}, wantKey: true})
				continue
			case '[':
				if top != nil && top.keys != nil {
					top.wantKey = true
				}
				stack = append(stack, &obj{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.keys != nil && top.wantKey {
				for _, k := range top.keys {
					if k == v || fold && bytes.EqualFold([]byte(k), []byte(v)) {
						return true
					}
				}
				top.keys = append(top.keys, v)
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
	}
}

// FuzzCheck compares Check with encoding/json: whatever Check accepts is
// valid JSON and valid UTF-8 without duplicate keys, and what it refuses as
// a syntax error encoding/json refuses too.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"to_user":"bob","text":"hi"}`, `{"a":[1,{"b":null}],"c":"\ud83d\ude00"}`, `{"a":1,"a":2}`,
		`{"text":"\ud800"}`, "\"\xff\"", `[[[[]]]]`, `{"a":1,"A":2}`, `-0.5e-7`, `{"x\u0041":1,"xA":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b, Options{MaxDepth: 10000})
		valid := json.Valid(b)
		switch {
		case err == nil && !valid:
			t.Fatalf("Check accepted %q, which encoding/json refuses", b)
		case err == nil && !utf8.Valid(b):
			t.Fatalf("Check accepted invalid UTF-8 %q", b)
		case err == nil && dupKeys(b, false):
			t.Fatalf("Check accepted duplicate keys in %q", b)
		case errors.Is(err, ErrSyntax) && valid:
			t.Fatalf("Check called %q a syntax error (%v); encoding/json accepts it", b, err)
		case errors.Is(err, ErrTooDeep):
			t.Fatalf("Check refused %q as too deep with MaxDepth 10000", b)
		}
		if err == nil && Check(b, Options{FoldKeys: true, MaxDepth: 10000}) == nil && dupKeys(b, true) {
			t.Fatalf("Check with FoldKeys accepted case-duplicate keys in %q", b)
		}
	})
}

var benchBodies = map[string]string{
	"send":    `{"to_user":"bob","text":"Hello Bob, how are you today? \u00e9t\u00e9 ☀","client_msg_id":"m-0123456789"}`,
	"push":    `{"to_users":["bob","carol","dave","erin","frank"],"text":"Your order has shipped","from":"crm","transient":true,"push_id":"invoice-42"}`,
	"text":    `{"to_user":"bob","client_msg_id":"m1","text":"` + strings.Repeat("lorem ipsum dolor sit amet ünïcödé ", 400) + `"}`,
	"cursors": `{"id":4,"sync":{"cursors":[` + strings.TrimSuffix(strings.Repeat(`{"conversation_id":"p_1_2","seq":"123"},`, 200), ",") + `],"limit":100}}`,
}

// BenchmarkCheck is the cost of the check next to a plain encoding/json
// decode of the same body (what every request paid before).
func BenchmarkCheck(b *testing.B) {
	for name, body := range benchBodies {
		in := []byte(body)
		b.Run(name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Check(in, Options{FoldKeys: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				var v any
				if err := json.Unmarshal(in, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
