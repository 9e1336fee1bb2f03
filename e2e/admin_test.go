//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestCurlAdminImport runs docs/api.md's admin import script as written
// against the real binary: its answer is the documented one, byte for
// byte, and the imported ann logs in from `magpie chat` with her old
// (bcrypt) password.
func TestCurlAdminImport(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the documented admin script: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\nKEY=migrate\n.*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no admin import script with its answer")
	}
	s := startServer(t, t.TempDir(), "--admin-keys", "migrate:migrate-secret-0123456789")
	script := regexp.MustCompile(`(?m)^MAGPIE=\S+$`).ReplaceAllString(string(m[1]), "MAGPIE=http://"+s.http)
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("admin script: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), string(m[2]); got != want {
		t.Errorf("admin import answered\n%s\nthe doc says\n%s", got, want)
	}
	if out := runChat(t, s, "ann", "ann-old-password", ":q\n"); !strings.Contains(out, "ann") {
		t.Errorf("ann's chat:\n%s", out)
	}
}

// TestCurlAdminImportSocial runs docs/api.md's friendship and group import
// script as written: its answers are the documented ones, byte for byte,
// and then dan logs in from `magpie chat` with his old password and finds
// the imported group, where he writes to eve and fay.
func TestCurlAdminImportSocial(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the documented admin script: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\nKEY=migrate\nSECRET=\\S+\nadmin\\(\\) .*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no friendship and group import script with its answers")
	}
	s := startServer(t, t.TempDir(), "--admin-keys", "migrate:migrate-secret-0123456789")
	script := regexp.MustCompile(`(?m)^MAGPIE=\S+$`).ReplaceAllString(string(m[1]), "MAGPIE=http://"+s.http)
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("admin script: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), string(m[2]); got != want {
		t.Errorf("the imports answered\n%s\nthe doc says\n%s", got, want)
	}
	if out := runChat(t, s, "dan", "old-password", ":groups\n:g design\nhello design\n:q\n"); !strings.Contains(out, "design") {
		t.Errorf("dan's chat lacks the imported group:\n%s", out)
	}
	if hist := runChat(t, s, "fay", "old-password", ":g design\n:history 5\n"); !strings.Contains(hist, "hello design") {
		t.Errorf("fay's history of the imported group lacks dan's message:\n%s", hist)
	}
}
