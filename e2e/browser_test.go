//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowser runs the web client in headless Chromium against the real
// binary: e2e/browser/run.mjs drives two users (and a second tab, a phone
// and a restart) with playwright-core, and this test starts and restarts
// the server when the script asks. Screenshots land in e2e/artifacts/.
//
// It needs Debian's chromium and Node with `npm ci` run in e2e/browser
// (.ci/browser does both). Without them it skips, unless
// MAGPIE_E2E_BROWSER=1 says they must be there; then it fails.
// MAGPIE_UPDATE_SCREENSHOT=1 copies the group chat screenshot to docs/web-client.png.
func TestBrowser(t *testing.T) {
	chromium, node, artifacts := browserTools(t, "tests")
	old, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}

	// Explicit ports: the restart must come back on the same address the
	// pages reconnect to.
	httpAddr, tcpAddr := freeAddr(t), freeAddr(t)
	data := t.TempDir()
	// --allow-broadcast: the Notices list is tested with a broadcast;
	// --admin-keys: a moderator's removal of a message.
	const adminKey, adminSecret = "browser", "browser-admin-secret-0123456789"
	start := func() *server {
		return startServer(t, data, "--http", httpAddr, "--tcp", tcpAddr, "--allow-broadcast", "--admin-keys", adminKey+":"+adminSecret)
	}
	s := start()

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), "MAGPIE_URL=http://"+httpAddr, "ARTIFACTS="+artifacts, "CHROMIUM="+chromium, "ADMIN_KEY="+adminKey, "ADMIN_SECRET="+adminSecret)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &output{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	type result struct{ name, state, detail string }
	var results []result
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "STEP stop":
			t.Log("browser: stopping the server")
			s.stop(t)
			reply(t, stdin)
		case line == "STEP start":
			t.Log("browser: starting the server again on " + httpAddr)
			s = start()
			reply(t, stdin)
		case strings.HasPrefix(line, "RESULT "):
			f := strings.SplitN(line, " ", 4)
			r := result{name: f[1], state: f[2]}
			if len(f) == 4 {
				r.detail = strings.ReplaceAll(f[3], `\n`, "\n")
			}
			results = append(results, r)
			t.Logf("browser: %s %s", r.name, r.state)
		default:
			t.Log("browser: " + line)
		}
	}
	_ = stdin.Close()
	waitErr := cmd.Wait()

	failed := false
	for _, r := range results {
		t.Run(r.name, func(t *testing.T) {
			switch r.state {
			case "skip":
				t.Skip(r.detail)
			case "fail":
				failed = true
				t.Fatalf("%s\nscreenshots: %s", r.detail, artifacts)
			}
		})
	}
	if waitErr != nil && !failed {
		t.Fatalf("node run.mjs: %v\nstderr:\n%s", waitErr, stderr.String())
	}
	if len(results) == 0 {
		t.Fatalf("the browser script reported nothing\nstderr:\n%s", stderr.String())
	}
	if os.Getenv("MAGPIE_UPDATE_SCREENSHOT") == "1" && !failed {
		copyFile(t, filepath.Join(artifacts, "04-group.png"), filepath.Join("..", "docs", "web-client.png"))
	}
}

// TestWebModule runs the unit tests of web/magpie.js's delivery rules
// (e2e/browser/delivery.test.mjs) with Node's test runner; no browser needed.
func TestWebModule(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("MAGPIE_E2E_BROWSER") == "1" {
			t.Fatal("node is required (MAGPIE_E2E_BROWSER=1) but not on PATH")
		}
		t.Skip("SKIPPING the web module tests: node is not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "delivery.test.mjs")
	cmd.Dir = "browser"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func reply(t *testing.T, w io.Writer) {
	t.Helper()
	if _, err := io.WriteString(w, "ok\n"); err != nil {
		t.Fatalf("telling the browser script: %v", err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println("updated", to)
}

// browserTools finds what the browser tests need (Debian's chromium, or
// $CHROMIUM; node; playwright-core from npm ci in e2e/browser) and the
// artifacts directory. A missing one skips the test (what names it),
// or fails it when MAGPIE_E2E_BROWSER=1 says they must be there.
func browserTools(t *testing.T, what string) (chromium, node, artifacts string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	missing := func(why string) {
		t.Helper()
		if os.Getenv("MAGPIE_E2E_BROWSER") == "1" {
			t.Fatalf("browser tests required (MAGPIE_E2E_BROWSER=1) but %s", why)
		}
		t.Skipf("SKIPPING the browser %s: %s (see .ci/browser; set MAGPIE_E2E_BROWSER=1 to make this a failure)", what, why)
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(chromium + " is not installed (apt-get install chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed (run npm ci in e2e/browser)")
	}
	artifacts, err = filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	return chromium, node, artifacts
}
