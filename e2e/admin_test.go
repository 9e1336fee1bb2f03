//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCurlAdminImport runs docs/api.md's admin import script as written
// against the real binary: its answer is the documented one, byte for
// byte, and the imported ann logs in from `magpie chat` with her old
// (bcrypt) password.
func TestCurlAdminImport(t *testing.T) {
	doc := adminDoc(t)
	m := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\nKEY=migrate\n.*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no admin import script with its answer")
	}
	s := adminServer(t)
	out := runAdminScript(t, s, string(m[1]))
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
	doc := adminDoc(t)
	m := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\nKEY=migrate\nSECRET=\\S+\nadmin\\(\\) .*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no friendship and group import script with its answers")
	}
	s := adminServer(t)
	out := runAdminScript(t, s, string(m[1]))
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

// TestCurlAdminModeration runs docs/api.md's moderation lines as written
// (with the admin function of the import script): the answers are the
// documented ones but for the times; then eve, disabled, cannot log in,
// and dan's erased message reads as removed.
func TestCurlAdminModeration(t *testing.T) {
	doc := adminDoc(t)
	fn := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\nKEY=migrate\nSECRET=\\S+\nadmin\\(\\) .*?\n\\}\n)").FindSubmatch(doc)
	m := regexp.MustCompile("(?s)```sh\n(# with MAGPIE, KEY, SECRET and admin\\(\\) as above\n.*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if fn == nil || m == nil {
		t.Fatal("docs/api.md has no admin function or no moderation lines with their answers")
	}
	s := adminServer(t)
	runChat(t, s, "dan", "dan-pw", ":q\n", "--register")
	runChat(t, s, "eve", "eve-pw", ":q\n", "--register")
	runChat(t, s, "dan", "dan-pw", "eve;;hello eve\n:q\n")
	out := runAdminScript(t, s, string(fn[1])+string(m[1]))
	times := regexp.MustCompile(`"(created_at":"[^"]*|sent_at":\d+)`)
	norm := func(b []byte) string { return times.ReplaceAllString(strings.TrimSpace(string(b)), `"TIME`) }
	if got, want := norm(out), norm(m[2]); got != want {
		t.Errorf("the moderation calls answered\n%s\nthe doc says\n%s", got, want)
	}
	if out := runChatFails(t, s, "eve", "eve-pw"); !strings.Contains(out, "account disabled") {
		t.Errorf("disabled eve's chat:\n%s", out)
	}
}

// adminDoc returns docs/api.md, whose admin scripts the tests run as
// written, after checking for the tools those scripts use.
func adminDoc(t *testing.T) []byte {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the documented admin script: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// adminServer starts the real binary with the admin key the documented
// scripts sign with.
func adminServer(t *testing.T) *server {
	t.Helper()
	return startServer(t, t.TempDir(), "--admin-keys", "migrate:migrate-secret-0123456789")
}

// runAdminScript points a documented script's MAGPIE= line at s and runs
// it under bash -euo pipefail, failing the test if it fails.
func runAdminScript(t *testing.T, s *server, script string) []byte {
	t.Helper()
	script = regexp.MustCompile(`(?m)^MAGPIE=\S+$`).ReplaceAllString(script, "MAGPIE=http://"+s.http)
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("documented admin script: %v\n%s", err, out)
	}
	return out
}

// runChatFails runs `magpie chat` for a login that must fail and returns
// what it printed.
func runChatFails(t *testing.T, s *server, user, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "chat", "--user", user, "--server", "http://"+s.http)
	cmd.Env = append(os.Environ(), "MAGPIE_PASSWORD="+password)
	cmd.Stdin = strings.NewReader(":q\n")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("chat %s succeeded, want a failed login:\n%s", user, out)
	}
	return string(out)
}

// TestCurlAdminApps runs docs/api.md's apps lines as written (with the
// admin function of the import script): the answers are the documented
// ones but for the keys, secrets and times, the keys call gave new keys,
// and a user registers in the new app by the host name its settings gave.
func TestCurlAdminApps(t *testing.T) {
	doc := adminDoc(t)
	fn := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\nKEY=migrate\nSECRET=\\S+\nadmin\\(\\) .*?\n\\}\n)").FindSubmatch(doc)
	m := regexp.MustCompile("(?s)```sh\n(# the apps calls, with MAGPIE, KEY, SECRET and admin\\(\\) as above\n.*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if fn == nil || m == nil {
		t.Fatal("docs/api.md has no admin function or no apps lines with their answers")
	}
	s := adminServer(t)
	out := runAdminScript(t, s, string(fn[1])+string(m[1]))
	norm := regexp.MustCompile(`"(admin_key_id|push_key_id|admin_secret|push_secret|created_at)":"[^"]*"`)
	clean := func(b []byte) string { return norm.ReplaceAllString(strings.TrimSpace(string(b)), `"$1":"X"`) }
	if got, want := clean(out), clean(m[2]); got != want {
		t.Errorf("the apps calls answered\n%s\nthe doc says\n%s", got, want)
	}
	ids := regexp.MustCompile(`"admin_key_id":"([^"]+)"`).FindAllStringSubmatch(string(out), -1)
	if len(ids) != 3 || ids[0][1] != ids[1][1] || ids[2][1] == ids[0][1] {
		t.Errorf("admin key ids %v: want the same after settings, a new one after keys", ids)
	}
	req, _ := http.NewRequest("POST", "http://"+s.http+"/v1/users", strings.NewReader(`{"username":"ann","password":"ann-password-1"}`))
	req.Host = "chat.acme.example"
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("register ann through acme's host name = %d, want 201", resp.StatusCode)
	}
	// She is acme's: the default app (no host name) does not know her.
	resp, err = http.Post("http://"+s.http+"/v1/login", "application/json", strings.NewReader(`{"username":"ann","password":"ann-password-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("ann logs in to the default app = %d, want 401", resp.StatusCode)
	}
}
