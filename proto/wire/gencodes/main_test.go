package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedUpToDate fails when codes.json changed but the files made
// from it were not regenerated (or someone edited them by hand).
func TestGeneratedUpToDate(t *testing.T) {
	stale, err := run("../../..", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Fatalf("stale generated files %v: run go run ./proto/wire/gencodes", stale)
	}
}

func TestLoadRefusesBadTables(t *testing.T) {
	for name, table := range map[string]string{
		"hole":           `[{"code":1,"const":"CodeA","name":"a","action":"retry","http":500,"doc":"x"},{"code":3,"const":"CodeB","name":"b","action":"retry","http":500,"doc":"x"}]`,
		"duplicate name": `[{"code":1,"const":"CodeA","name":"a","action":"retry","http":500,"doc":"x"},{"code":2,"const":"CodeB","name":"a","action":"retry","http":500,"doc":"x"}]`,
		"bad action":     `[{"code":1,"const":"CodeA","name":"a","action":"maybe","http":500,"doc":"x"}]`,
		"bad status":     `[{"code":1,"const":"CodeA","name":"a","action":"retry","http":200,"doc":"x"}]`,
		"pipe in doc":    `[{"code":1,"const":"CodeA","name":"a","action":"retry","http":500,"doc":"a|b"}]`,
		"unknown field":  `[{"code":1,"const":"CodeA","name":"a","action":"retry","http":500,"doc":"x","extra":1}]`,
	} {
		p := filepath.Join(t.TempDir(), "codes.json")
		if err := os.WriteFile(p, []byte(table), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := load(p); err == nil {
			t.Errorf("%s: load accepted %s", name, table)
		}
	}
}

func TestRenderDocKeepsTheRest(t *testing.T) {
	doc := "before\n" + docBegin + "\nold table\n" + docEnd + "\nafter\n"
	out, err := renderDoc([]byte(doc), []Code{{Code: 1, Const: "CodeA", Name: "a", Action: "relogin", HTTP: 401, Doc: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if !strings.HasPrefix(got, "before\n") || !strings.HasSuffix(got, docEnd+"\nafter\n") ||
		!strings.Contains(got, "| 1 | a | log in again | 401 | d |") || strings.Contains(got, "old table") {
		t.Fatalf("renderDoc:\n%s", got)
	}
}
