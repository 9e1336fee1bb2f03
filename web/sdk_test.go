package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/testserver"
)

// TestSDKUnderNode runs the JavaScript SDK's tests (sdk_test/*.test.mjs)
// with Node's test runner against a real in-process server: magpie.js
// logs in, connects over WebSocket, sends and receives between two
// clients, reads history, reconnects after its connections are cut and
// resumes from its cursors; magpie.d.ts is checked against the module's
// exports. The server's WebSocket address goes through a proxy the tests
// cut and heal over MAGPIE_TEST_CONTROL (POST /cut, POST /heal).
//
// Without node on PATH the test skips loudly, unless MAGPIE_TEST_NODE=1
// (set by .ci/run), which makes that a failure.
func TestSDKUnderNode(t *testing.T) {
	node := nodeOrSkip(t)
	args := []string{"--test", "--test-reporter=tap"}
	if !nodeHasWebSocket(node) {
		// Node 20.10+ has the global behind a flag.
		if !nodeHasWebSocket(node, "--experimental-websocket") {
			out, _ := exec.Command(node, "--version").Output()
			t.Fatalf("node %s has no WebSocket, not even with --experimental-websocket: the SDK tests need Node 20.10 or later",
				strings.TrimSpace(string(out)))
		}
		args = append([]string{"--experimental-websocket"}, args...)
	}
	files, err := filepath.Glob(filepath.Join("sdk_test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sdk_test/*.test.mjs files (%v)", err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}

	px := newCutProxy(t)
	s := testserver.Start(t, []testserver.Options{func(c *config.Config) {
		c.AdvertiseWS = "ws://" + px.Addr() + "/v1/ws"
	}})
	px.setUpstream(s.Node.HTTPAddr())
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/cut":
			px.cut()
		case r.Method == http.MethodPost && r.URL.Path == "/heal":
			px.heal()
		default:
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(control.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(args, files...)...)
	cmd.Dir = "sdk_test"
	cmd.Env = append(os.Environ(), "MAGPIE_TEST_URL="+s.URL, "MAGPIE_TEST_CONTROL="+control.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	// A test the runner skipped or left as todo would pass silently.
	for _, bad := range []string{"# skipped ", "# todo "} {
		if i := strings.Index(string(out), bad); i >= 0 && !strings.HasPrefix(string(out[i+len(bad):]), "0") {
			t.Fatalf("node reported skipped or todo tests:\n%s", out)
		}
	}
	if !strings.Contains(string(out), "# pass ") {
		t.Fatalf("node printed no summary:\n%s", out)
	}
	t.Logf("%s", out)
}

func nodeOrSkip(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("MAGPIE_TEST_NODE") == "1" {
			t.Fatal("node is required (MAGPIE_TEST_NODE=1) but not on PATH")
		}
		t.Skip("SKIPPING the JavaScript SDK tests: node is not on PATH (install Node 20.10+, e.g. Debian's nodejs)")
	}
	return node
}

func nodeHasWebSocket(node string, flags ...string) bool {
	args := append(flags, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")
	return exec.Command(node, args...).Run() == nil
}

// cutProxy passes TCP connections to upstream until cut: then it closes
// every connection and refuses new ones until heal.
type cutProxy struct {
	ln       net.Listener
	mu       sync.Mutex
	upstream string
	down     bool
	conns    map[net.Conn]struct{}
}

func newCutProxy(t *testing.T) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.accept()
	return p
}

func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) setUpstream(a string) { p.mu.Lock(); p.upstream = a; p.mu.Unlock() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) heal() { p.mu.Lock(); p.down = false; p.mu.Unlock() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, upstream := p.down, p.upstream
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.pipe(c, upstream)
	}
}

func (p *cutProxy) pipe(c net.Conn, upstream string) {
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}
