package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// magpie app create, set and list on a SQLite database: set changes the
// settings it names and keeps the others; bad settings, the default app
// and an unknown app are refused.
func TestAppSet(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runApp(ctx, append(args, "--data", data), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	if out, err := run("create", "acme", "--hosts", "chat.acme.test"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if out, err := run("set", "acme", "--webhook-urls", "https://hooks.acme.test/m", "--webhook-secret", "0123456789abcdef"); err != nil {
		t.Fatalf("set: %v\n%s", err, out)
	}
	out, err := run("list")
	if err != nil || !strings.Contains(out, "hosts=chat.acme.test webhook-urls=https://hooks.acme.test/m") {
		t.Errorf("list after set: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"set", "acme", "--webhook-urls", "https://x.test/h", "--webhook-secret", "short"},
		{"set", "default", "--hosts", "x.test"},
		{"set", "nope", "--hosts", "x.test"},
		{"set"},
	} {
		if out, err := run(bad...); err == nil {
			t.Errorf("%v succeeded:\n%s", bad, out)
		}
	}
}
