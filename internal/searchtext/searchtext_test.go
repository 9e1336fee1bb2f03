package searchtext

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestTerms(t *testing.T) {
	got, err := Terms("  Budget  会议 budget\tplan ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Budget", "会议", "plan"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Terms = %q, want %q", got, want)
	}
	if _, err := Terms(" \t "); !errors.Is(err, ErrEmpty) {
		t.Fatalf("blank query: %v, want ErrEmpty", err)
	}
	if _, err := Terms(strings.Repeat("a", MaxQueryBytes+1)); err == nil {
		t.Fatal("a query over MaxQueryBytes was accepted")
	}
	if _, err := Terms("a b c d e f g h i"); err == nil {
		t.Fatal("nine terms were accepted")
	}
	if _, err := Terms("a\xffb"); err == nil {
		t.Fatal("invalid UTF-8 was accepted")
	}
}

func TestIndexed(t *testing.T) {
	for term, want := range map[string]bool{"ab": false, "abc": true, "会议": false, "开会讨": true} {
		if Indexed(term) != want {
			t.Errorf("Indexed(%q) = %v", term, !want)
		}
	}
}

func TestHighlights(t *testing.T) {
	cases := []struct {
		text  string
		terms []string
		want  []Span
	}{
		{"Budget meeting: the BUDGET", []string{"budget"}, []Span{{0, 6}, {20, 26}}},
		{"我们明天开会讨论预算", []string{"开会", "讨论"}, []Span{{4, 8}}},
		{"aaaa", []string{"aa"}, []Span{{0, 4}}},
		{"naïve café", []string{"CAFÉ"}, []Span{{6, 10}}},
		{"nothing here", []string{"zzz"}, nil},
	}
	for _, c := range cases {
		got := Highlights(c.text, c.terms)
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Highlights(%q, %q) = %v, want %v", c.text, c.terms, got, c.want)
		}
	}
}
