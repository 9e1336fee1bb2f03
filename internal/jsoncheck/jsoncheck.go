// Package jsoncheck is the strict check that every JSON request body (HTTP
// API, push API) and every JSON frame of the long connection passes before
// it is decoded.
//
// encoding/json and protojson are lenient where leniency lets one request
// mean two things: encoding/json turns invalid UTF-8 and lone surrogate
// escapes ("\ud800") into U+FFFD, so the text stored differs from the bytes
// sent, and lets the last of two equal keys win, matching keys to fields
// regardless of case, so {"to_user":"bob","TO_USER":"carol"} goes to carol
// while a proxy or a log that reads the first key sees bob. Check refuses
// all of that in one pass over the raw bytes, before any decoder runs:
// invalid UTF-8, lone or mismatched surrogate escapes, duplicate keys in any
// object at any depth, and nesting beyond a small depth (so no decoder
// recurses on untrusted input). It works without recursion and allocates
// nothing for ordinary bodies (see BenchmarkCheck).
//
// Check is safe for concurrent use.
package jsoncheck

import (
	"bytes"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting depth used when Options.MaxDepth is 0.
// Magpie's deepest request (a sync frame: envelope, sync, cursors, cursor)
// is 4 deep; 32 leaves room for any future request and stops a body nested
// 10,000 deep after 32 bytes.
const DefaultMaxDepth = 32

// linearKeys is how many keys an object may have before duplicates are
// found with a map rather than by comparing with each earlier key: real
// requests have a handful of keys, and a 64 KiB object of 9,000 keys must
// not cost 40 million comparisons.
const linearKeys = 16

// Options tune Check.
type Options struct {
	// MaxDepth is the largest number of arrays and objects open at once
	// (<= 0: DefaultMaxDepth).
	MaxDepth int
	// FoldKeys makes keys that differ only in case duplicates, as
	// encoding/json sees them (it matches a key to a struct field with
	// bytes.EqualFold). protojson matches keys exactly: leave it off there.
	FoldKeys bool
}

// Error is a refused body: one of the sentinels in errors.go, and where.
type Error struct {
	Err    error  // ErrSyntax, ErrTooDeep, ErrInvalidText or ErrDuplicateKey
	Offset int    // byte offset at which the problem was found
	Key    string // ErrDuplicateKey: the key, as sent (at most 64 bytes of it)
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%v %q at byte %d", e.Err, e.Key, e.Offset)
	}
	return fmt.Sprintf("%v at byte %d", e.Err, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// Check reports whether b is exactly one JSON value (RFC 8259, whitespace
// around it allowed) whose strings are valid UTF-8 without lone
// surrogates, whose objects have no duplicate keys, and which nests at most
// MaxDepth deep. It does not judge numbers' ranges or the value's shape:
// the decoder that follows does.
func Check(b []byte, opt Options) error {
	c := checkers.Get().(*checker)
	c.b, c.i, c.max, c.fold = b, 0, opt.MaxDepth, opt.FoldKeys
	if c.max <= 0 {
		c.max = DefaultMaxDepth
	}
	err := c.run()
	// Drop what refers to b or to a set before the checker is reused.
	clear(c.stack[:cap(c.stack)])
	clear(c.keys[:cap(c.keys)])
	c.b, c.stack, c.keys = nil, c.stack[:0], c.keys[:0]
	if cap(c.stack) <= 2*DefaultMaxDepth && cap(c.keys) <= 4*linearKeys {
		checkers.Put(c)
	}
	return err
}

// frame is an array or object not yet closed.
type frame struct {
	obj   bool
	keys  int                 // index in checker.keys of this object's first key
	nkeys int                 // keys seen in this object
	set   map[string]struct{} // folded or plain keys, once nkeys reached linearKeys
}

// checkers keeps checkers with their stacks, so a check allocates nothing.
var checkers = sync.Pool{New: func() any {
	return &checker{stack: make([]frame, 0, 8), keys: make([][]byte, 0, 2*linearKeys)}
}}

type checker struct {
	b     []byte
	i     int
	max   int
	fold  bool
	stack []frame
	keys  [][]byte // keys of the open objects with fewer than linearKeys keys
}

func (c *checker) fail(err error) error { return &Error{Err: err, Offset: c.i} }

func (c *checker) ws() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *checker) run() error {
	// Each turn of the loop reads one value; a container's opening pushes a
	// frame and the loop goes on with its first member.
	for {
		c.ws()
		if c.i >= len(c.b) {
			return c.fail(ErrSyntax)
		}
		var err error
		opened := false
		switch ch := c.b[c.i]; ch {
		case '{', '[':
			if len(c.stack) >= c.max {
				return c.fail(ErrTooDeep)
			}
			c.i++
			c.stack = append(c.stack, frame{obj: ch == '{', keys: len(c.keys)})
			c.ws()
			if c.i < len(c.b) && (c.b[c.i] == '}' && ch == '{' || c.b[c.i] == ']' && ch == '[') {
				c.i++
				c.pop()
				break
			}
			if ch == '{' {
				err = c.member()
			}
			opened = true
		case '"':
			_, _, err = c.str()
		case 't':
			err = c.literal("true")
		case 'f':
			err = c.literal("false")
		case 'n':
			err = c.literal("null")
		default:
			err = c.number()
		}
		if err != nil {
			return err
		}
		if opened {
			continue
		}
		// After a value: close what ends here, or go on after a comma.
		more, err := c.after()
		if err != nil || !more {
			if err == nil {
				c.ws()
				if c.i != len(c.b) {
					return c.fail(ErrSyntax)
				}
			}
			return err
		}
	}
}

// after consumes closing brackets and at most one comma after a value. It
// reports whether another value follows (false: the top value is done).
func (c *checker) after() (bool, error) {
	for len(c.stack) > 0 {
		c.ws()
		if c.i >= len(c.b) {
			return false, c.fail(ErrSyntax)
		}
		top := &c.stack[len(c.stack)-1]
		switch ch := c.b[c.i]; {
		case ch == ',':
			c.i++
			if top.obj {
				c.ws()
				return true, c.member()
			}
			return true, nil
		case ch == '}' && top.obj, ch == ']' && !top.obj:
			c.i++
			c.pop()
		default:
			return false, c.fail(ErrSyntax)
		}
	}
	return false, nil
}

func (c *checker) pop() {
	top := c.stack[len(c.stack)-1]
	c.keys = c.keys[:top.keys]
	c.stack = c.stack[:len(c.stack)-1]
}

// member reads an object member's key and colon; its value follows.
func (c *checker) member() error {
	at := c.i
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return c.fail(ErrSyntax)
	}
	raw, escaped, err := c.str()
	if err != nil {
		return err
	}
	key := raw
	if escaped {
		key = unescape(raw)
	}
	if err := c.addKey(key, raw, at); err != nil {
		return err
	}
	c.ws()
	if c.i >= len(c.b) || c.b[c.i] != ':' {
		return c.fail(ErrSyntax)
	}
	c.i++
	return nil
}

// addKey records key (decoded) in the innermost object, refusing a
// duplicate. raw is the key as sent, for the error.
func (c *checker) addKey(key, raw []byte, at int) error {
	top := &c.stack[len(c.stack)-1]
	dup := func() error {
		if len(raw) > 64 {
			raw = raw[:64]
		}
		return &Error{Err: ErrDuplicateKey, Offset: at, Key: string(raw)}
	}
	if top.set == nil {
		for _, k := range c.keys[top.keys:] {
			if bytes.Equal(k, key) || c.fold && bytes.EqualFold(k, key) {
				return dup()
			}
		}
		top.nkeys++
		if top.nkeys < linearKeys {
			c.keys = append(c.keys, key)
			return nil
		}
		// Switch this object to a set. Only the innermost object can hold
		// keys past its own, so they are all its.
		top.set = make(map[string]struct{}, 2*linearKeys)
		for _, k := range c.keys[top.keys:] {
			top.set[c.setKey(k)] = struct{}{}
		}
		top.set[c.setKey(key)] = struct{}{}
		c.keys = c.keys[:top.keys]
		return nil
	}
	k := c.setKey(key)
	if _, ok := top.set[k]; ok {
		return dup()
	}
	top.set[k] = struct{}{}
	return nil
}

// setKey is key as a set member: folded when FoldKeys, so that two keys are
// one member exactly when bytes.EqualFold says they are equal.
func (c *checker) setKey(key []byte) string {
	if !c.fold {
		return string(key)
	}
	out := make([]byte, 0, len(key))
	for _, r := range string(key) {
		out = utf8.AppendRune(out, foldRune(r))
	}
	return string(out)
}

// foldRune is the smallest rune of r's simple case folding orbit, the one
// representative bytes.EqualFold agrees with (K, k and the Kelvin sign are
// all 'K').
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// str reads a string at c.i (an opening quote) and returns its raw content
// and whether it holds escapes.
func (c *checker) str() (raw []byte, escaped bool, err error) {
	c.i++ // the quote
	start := c.i
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			raw = c.b[start:c.i]
			c.i++
			return raw, escaped, nil
		case ch == '\\':
			escaped = true
			if err := c.escape(); err != nil {
				return nil, false, err
			}
		case ch < 0x20:
			return nil, false, c.fail(ErrSyntax)
		case ch < utf8.RuneSelf:
			c.i++
		default:
			r, n := utf8.DecodeRune(c.b[c.i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false, c.fail(ErrInvalidText)
			}
			c.i += n
		}
	}
	return nil, false, c.fail(ErrSyntax)
}

// escape reads one escape at c.i (a backslash). A \u escape of a high
// surrogate must be followed by one of a low surrogate; any other
// surrogate escape is not text.
func (c *checker) escape() error {
	if c.i+1 >= len(c.b) {
		return c.fail(ErrSyntax)
	}
	switch c.b[c.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		c.i += 2
		return nil
	case 'u':
	default:
		return c.fail(ErrSyntax)
	}
	r, ok := hex4(c.b, c.i+2)
	if !ok {
		return c.fail(ErrSyntax)
	}
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return c.fail(ErrInvalidText)
	case r >= 0xd800 && r <= 0xdbff:
		if c.i+7 >= len(c.b) || c.b[c.i+6] != '\\' || c.b[c.i+7] != 'u' {
			return c.fail(ErrInvalidText)
		}
		lo, ok := hex4(c.b, c.i+8)
		if !ok {
			return c.fail(ErrSyntax)
		}
		if lo < 0xdc00 || lo > 0xdfff {
			return c.fail(ErrInvalidText)
		}
		c.i += 12
	default:
		c.i += 6
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, ch := range b[at : at+4] {
		switch {
		case ch >= '0' && ch <= '9':
			r = r<<4 | rune(ch-'0')
		case ch >= 'a' && ch <= 'f':
			r = r<<4 | rune(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			r = r<<4 | rune(ch-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// unescape decodes the content of a string that str accepted.
func unescape(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			out = append(out, raw[i])
			i++
			continue
		}
		switch e := raw[i+1]; e {
		case 'u':
			r, _ := hex4(raw, i+2)
			i += 6
			if r >= 0xd800 && r <= 0xdbff {
				lo, _ := hex4(raw, i+2)
				r = utf16Pair(r, lo)
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, simpleEscape(e))
			i += 2
		}
	}
	return out
}

func simpleEscape(e byte) byte {
	switch e {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return e // '"', '\\', '/'
}

func utf16Pair(hi, lo rune) rune { return (hi-0xd800)<<10 | (lo - 0xdc00) + 0x10000 }

func (c *checker) literal(word string) error {
	if !bytes.HasPrefix(c.b[c.i:], []byte(word)) {
		return c.fail(ErrSyntax)
	}
	c.i += len(word)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *checker) number() error {
	start := c.i
	if c.i < len(c.b) && c.b[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.b) && c.b[c.i] == '0':
		c.i++
	case c.digits() == 0:
		c.i = start
		return c.fail(ErrSyntax)
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return c.fail(ErrSyntax)
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return c.fail(ErrSyntax)
		}
	}
	return nil
}

func (c *checker) digits() int {
	n := 0
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		c.i++
		n++
	}
	return n
}
