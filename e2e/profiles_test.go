//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestCurlProfiles runs docs/api.md's profile lines as written, with
// alice's token and that of bob, her friend: the answers are the
// documented ones, byte for byte.
func TestCurlProfiles(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the documented profile lines: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sh\n(TOKEN=.*?)```\n```\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no profile lines with their answers")
	}
	s := startServer(t, t.TempDir())
	base := "http://" + s.http
	call := func(path, token, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		checkOpenAPI(t, base, "POST", path, resp, raw)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s = %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		creds := `{"username":"` + u + `","password":"pw-` + u + `-123"}`
		call("/v1/users", "", creds)
		tokens[u] = call("/v1/login", "", creds)["token"].(string)
	}
	call("/v1/friends/requests", tokens["alice"], `{"username":"bob"}`)
	call("/v1/friends/requests", tokens["bob"], `{"username":"alice"}`)

	script := string(m[1])
	for k, v := range map[string]string{"MAGPIE": base, "TOKEN": tokens["alice"], "BOB": tokens["bob"]} {
		script = regexp.MustCompile(`(?m)^`+k+`=.*$`).ReplaceAllString(script, k+"="+v)
	}
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("profile lines: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), string(m[2]); got != want {
		t.Errorf("the profile calls answered\n%s\nthe doc says\n%s", got, want)
	}
}
