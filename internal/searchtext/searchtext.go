// Package searchtext is what message search does with the words a user
// typed: it splits a query into terms and finds where they occur in a
// message, for the highlights of a hit. The stores match the same terms
// (sqlstore: FTS5 trigram on SQLite, pg_trgm on PostgreSQL); this package
// knows nothing of them.
package searchtext

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a query (docs/api.md, GET /v1/search).
const (
	MaxQueryBytes = 256
	MaxTerms      = 8
	// MinIndexedRunes is the shortest term the trigram indexes find; a
	// shorter one (a two-character Chinese word) is matched by scanning
	// the caller's own history instead.
	MinIndexedRunes = 3
)

// ErrEmpty: the query has no terms.
var ErrEmpty = errors.New("searchtext: empty query")

// Terms splits a query on white space into at most MaxTerms distinct
// terms, compared case-insensitively. Every term must occur in a hit.
func Terms(q string) ([]string, error) {
	if len(q) > MaxQueryBytes {
		return nil, fmt.Errorf("searchtext: query is %d bytes, limit %d", len(q), MaxQueryBytes)
	}
	if !utf8.ValidString(q) {
		return nil, errors.New("searchtext: query is not valid UTF-8")
	}
	var terms []string
	for _, f := range strings.Fields(q) {
		if slices.ContainsFunc(terms, func(t string) bool { return strings.EqualFold(t, f) }) {
			continue
		}
		terms = append(terms, f)
	}
	if len(terms) == 0 {
		return nil, ErrEmpty
	}
	if len(terms) > MaxTerms {
		return nil, fmt.Errorf("searchtext: query has %d terms, limit %d", len(terms), MaxTerms)
	}
	return terms, nil
}

// Indexed reports whether a term is long enough for the trigram index.
func Indexed(term string) bool { return utf8.RuneCountInString(term) >= MinIndexedRunes }

// Span is a highlighted part of a text: code points [Start, End), so that a
// JavaScript client can slice Array.from(text).
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Highlights returns where the terms occur in text, case-insensitively,
// sorted and with overlapping spans merged.
func Highlights(text string, terms []string) []Span {
	hay := fold([]rune(text))
	var spans []Span
	for _, t := range terms {
		needle := fold([]rune(t))
		if len(needle) == 0 {
			continue
		}
		for i := 0; i+len(needle) <= len(hay); {
			if slices.Equal(hay[i:i+len(needle)], needle) {
				spans = append(spans, Span{i, i + len(needle)})
				i += len(needle)
				continue
			}
			i++
		}
	}
	slices.SortFunc(spans, func(a, b Span) int { return a.Start - b.Start })
	merged := spans[:0]
	for _, s := range spans {
		if n := len(merged); n > 0 && s.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, s.End)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// fold maps each rune to one rune, so positions in the folded text are
// positions in the original.
func fold(rs []rune) []rune {
	out := make([]rune, len(rs))
	for i, r := range rs {
		out[i] = unicode.ToLower(unicode.ToUpper(r))
	}
	return out
}
