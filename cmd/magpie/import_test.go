package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/pgtest"
	"github.com/magpie-im/magpie/internal/testserver"
)

const importSecret = "import-secret-0123456789"

// magpie import of a generated export into an app, on both stores: 300
// users, 894 friendships and 15 groups in several batches each, then the
// check logs pairs of friends and group owners in and has them chat. A
// second run finds everything there (idempotent) and checks again; the
// users are the app's only. A bad entry is listed and fails the run, and
// a wrong secret stops it at the first request.
func TestImportCommand(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testImportCommand(t, "") })
	t.Run("postgres", func(t *testing.T) { testImportCommand(t, importPostgres(t)) })
}

func testImportCommand(t *testing.T, dsn string) {
	ctx := context.Background()
	srv := testserver.Start(t, []testserver.Options{func(c *config.Config) {
		c.AdminKeys = map[string][]byte{"migrate": []byte(importSecret)}
		if dsn != "" {
			c.Store = dsn
		}
	}})
	t.Setenv("MAGPIE_ADMIN_SECRET", importSecret)
	im := &importer{base: srv.Direct, key: "migrate", secret: []byte(importSecret), hc: &http.Client{Timeout: time.Minute}, stdout: os.Stdout, stderr: os.Stderr}
	var app struct{}
	if st, msg, err := im.post(ctx, "/v1/admin/apps", []byte(`{"name":"acme"}`), &app); err != nil || st != 201 {
		t.Fatalf("create app acme = %d %s %v", st, msg, err)
	}

	var export bytes.Buffer
	if err := runImport(ctx, []string{"--generate", "300", "--password", "import-pw-1"}, nil, &export, os.Stderr); err != nil {
		t.Fatal(err)
	}
	file := t.TempDir() + "/export.json"
	if err := os.WriteFile(file, export.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runImport(ctx, append([]string{"--server", srv.Direct, "--key", "migrate"}, args...), nil, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	args := []string{"--app", "acme", "--batch-users", "120", "--batch-friendships", "400", "--batch-groups", "7",
		"--check", "5", "--check-password", "import-pw-1", file}
	out, errOut, err := run(args...)
	if err != nil {
		t.Fatalf("import: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{
		`(?m)^users: 300 \(created 300, existing 0, failed 0\) in 3 requests`,
		`(?m)^friendships: 894 \(created 894, existing 0, failed 0\) in 3 requests`,
		`(?m)^groups: 15 \(created 15, existing 0, failed 0\) in 3 requests`,
		`(?m)^check: 14 users logged in, 5 pairs of friends and 5 groups chatted`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the first import printed\n%s\nwant a line matching %s", out, want)
		}
	}
	out, errOut, err = run(args...)
	if err != nil {
		t.Fatalf("the second import: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{
		`(?m)^users: 300 \(created 0, existing 300, failed 0\)`,
		`(?m)^friendships: 894 \(created 0, existing 894, failed 0\)`,
		`(?m)^groups: 15 \(created 0, existing 15, failed 0\)`,
		`(?m)^check: 14 users logged in`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the second import printed\n%s\nwant a line matching %s", out, want)
		}
	}
	// The users are acme's: the default app has none of them.
	if st, _, _ := im.post(ctx, "/v1/login", []byte(`{"username":"user00001","password":"import-pw-1"}`), nil); st != 401 {
		t.Errorf("user00001 logs in to the default app = %d, want 401", st)
	}

	// A bad entry fails the run (after the rest is imported) and is listed.
	bad := t.TempDir() + "/bad.json"
	if err := os.WriteFile(bad, []byte(`{"users":[{"username":"nohash"},{"username":"fresh1","auth_source":"ldap"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run("--app", "acme", bad)
	if err == nil || !strings.Contains(errOut, "users #1:") || !strings.Contains(errOut, "nohash") ||
		!strings.Contains(out, "users: 2 (created 1, existing 0, failed 1)") {
		t.Errorf("a bad entry: err %v, stdout %q, stderr %q", err, out, errOut)
	}
	// A wrong secret: the first request's 401, nothing more.
	t.Setenv("MAGPIE_ADMIN_SECRET", "wrong-secret-0123456789")
	var o, e bytes.Buffer
	err = runImport(ctx, []string{"--server", srv.Direct, "--key", "migrate", "--app", "acme", file}, nil, &o, &e)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("a wrong secret: %v", err)
	}
}

// Bad command lines are refused before any request.
func TestImportCommandErrors(t *testing.T) {
	t.Setenv("MAGPIE_ADMIN_SECRET", "")
	t.Setenv("MAGPIE_ADMIN_KEY", "")
	t.Setenv("MAGPIE_CHECK_PASSWORD", "")
	dir := t.TempDir()
	notJSON := dir + "/x.json"
	_ = os.WriteFile(notJSON, []byte(`{"accounts":[]}`), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"f.json"}, "--key and its secret"},
		{[]string{"--key", "k", "--secret", "s"}, "name one FILE"},
		{[]string{"--key", "k", "--secret", "s", "--batch-users", "5001", "f.json"}, "--batch-users 5001"},
		{[]string{"--key", "k", "--secret", "s", "--batch-friendships", "0", "f.json"}, "--batch-friendships 0"},
		{[]string{"--key", "k", "--secret", "s", "--batch-groups", "1001", "f.json"}, "--batch-groups 1001"},
		{[]string{"--key", "k", "--secret", "s", "--check", "3", "f.json"}, "--check needs the users' password"},
		{[]string{"--key", "k", "--secret", "s", "--server", "ftp://x", "f.json"}, `--server "ftp://x"`},
		{[]string{"--key", "k", "--secret", "s", dir + "/missing.json"}, "no such file"},
		{[]string{"--key", "k", "--secret", "s", notJSON}, "not an export"},
		{[]string{"--generate", "1", "--password", "long-enough"}, "want 2-1000000 users"},
		{[]string{"--generate", "5", "--password", "short"}, "--password of at least 8"},
	} {
		var out, errOut bytes.Buffer
		err := runImport(context.Background(), tc.args, nil, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("import %v = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// importPostgres makes a schema of MAGPIE_TEST_POSTGRES for one test and
// returns its DSN.
func importPostgres(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t, "magpie_import")
}
