//go:build e2e

// Package e2e runs the real magpie binary as a user would: it builds it,
// starts `magpie serve` on free ports, chats through `magpie chat`
// processes, restarts the server and checks what survived.
//
// Run with: go test -tags e2e ./e2e/
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "magpie-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "magpie")
	build := exec.Command("go", "build", "-o", binary, "../cmd/magpie")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// output is a concurrency-safe, pollable copy of a process's output.
type output struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func waitOutput(t *testing.T, o *output, what string, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(o.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s); output so far:\n%s", what, re, o.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type server struct {
	cmd    *exec.Cmd
	out    *output
	http   string
	tcp    string
	exited chan struct{}
}

var readyLine = regexp.MustCompile(`HTTP API and web client: https?://([0-9.:]+)/\s+TCP gateway: (?:tls://)?([0-9.:]+)`)

func startServer(t *testing.T, data string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"}, extra...)
	s := &server{cmd: exec.Command(binary, args...), out: &output{}, exited: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })
	m := waitOutput(t, s.out, "server ready", readyLine)
	s.http, s.tcp = m[1], m[2]
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("server exited with %d:\n%s", code, s.out.String())
		}
	case <-time.After(45 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("server did not stop within 45s after SIGTERM:\n%s", s.out.String())
	}
}

// chat is a running `magpie chat` with its stdin held open.
type chat struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *output
	done  chan error
}

func startChat(t *testing.T, s *server, user, password string, args ...string) *chat {
	t.Helper()
	return startChatArgs(t, user, password, append([]string{"--server", "http://" + s.http}, args...)...)
}

// startChatArgs is startChat with the --server (and any other) flags in args.
func startChatArgs(t *testing.T, user, password string, args ...string) *chat {
	t.Helper()
	all := append([]string{"chat", "--user", user}, args...)
	c := &chat{cmd: exec.Command(binary, all...), out: &output{}, done: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), "MAGPIE_PASSWORD="+password)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
		}
	})
	waitOutput(t, c.out, user+" connected", regexp.MustCompile(`connected as `+user))
	return c
}

func (c *chat) send(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(c.stdin, l+"\n"); err != nil {
			t.Fatalf("write %q: %v", l, err)
		}
	}
}

// runChat runs `magpie chat` with a script on stdin until it exits.
func runChat(t *testing.T, s *server, user, password, script string, args ...string) string {
	t.Helper()
	return runChatArgs(t, user, password, script, append([]string{"--server", "http://" + s.http}, args...)...)
}

// runChatArgs is runChat with the --server (and any other) flags in args.
func runChatArgs(t *testing.T, user, password, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"chat", "--user", user}, args...)
	cmd := exec.CommandContext(ctx, binary, all...)
	cmd.Env = append(os.Environ(), "MAGPIE_PASSWORD="+password)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chat %s: %v\n%s", user, err, out)
	}
	return string(out)
}

func TestTwoTerminalsChatThenRestart(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)

	runChat(t, s, "alice", "alice-pw", ":q\n", "--register")
	runChat(t, s, "bob", "bob-pw", ":q\n", "--register")

	bob := startChat(t, s, "bob", "bob-pw")
	alice := startChat(t, s, "alice", "alice-pw", "--transport", "ws")

	alice.send(t, "bob;;hello bob", "@bob how are you?")
	waitOutput(t, alice.out, "ACK of the first message", regexp.MustCompile(`✓ sent #1 → bob`))
	waitOutput(t, bob.out, "bob receives live", regexp.MustCompile(`\] alice: hello bob\n(?s:.*)\] alice: how are you\?`))
	waitOutput(t, alice.out, "delivered receipt", regexp.MustCompile(`✓✓ delivered #2 → bob`))

	bob.send(t, ":to alice", ":read", "fine, thanks")
	waitOutput(t, alice.out, "read receipt", regexp.MustCompile(`read #2 → bob`))
	waitOutput(t, alice.out, "alice receives bob's answer", regexp.MustCompile(`\] bob: fine, thanks`))

	// Bob leaves; alice writes to him while he is offline.
	bob.send(t, ":q")
	<-bob.done
	alice.send(t, ":to bob", "are you there?", "ping me when back")
	waitOutput(t, alice.out, "offline message stored", regexp.MustCompile(`✓ sent #5 → bob`))
	alice.send(t, ":q")
	<-alice.done

	// Restart the server on the same data directory.
	s.stop(t)
	s = startServer(t, data)

	out := runChat(t, s, "bob", "bob-pw", ":to alice\n:history 10\n")
	for _, want := range []string{"alice: hello bob", "alice: how are you?", "me → alice: fine, thanks", "alice: are you there?", "alice: ping me when back"} {
		if !strings.Contains(out, want) {
			t.Errorf("after restart bob's client lacks %q:\n%s", want, out)
		}
	}
	// At start only the unread messages print; read history is counted.
	start, hist, _ := strings.Cut(out, "history with alice:")
	if !strings.Contains(start, "alice: are you there?") || strings.Contains(start, "hello bob") {
		t.Errorf("start-up should show the unread messages only:\n%s", start)
	}
	// Order survives in history: the offline messages come after the earlier ones.
	if i, j := strings.Index(hist, "hello bob"), strings.Index(hist, "ping me when back"); i < 0 || j < i {
		t.Errorf("history out of order after restart:\n%s", hist)
	}
}

func TestServerSurvivesGarbageAndStopsCleanly(t *testing.T) {
	s := startServer(t, t.TempDir())
	for _, junk := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0, 0, 0, 3, 0xde, 0xad, 0xbe},
	} {
		c, err := net.Dial("tcp", s.tcp)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(junk)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, bufio.NewReader(c)) // the server closes it
		c.Close()
	}
	resp, err := http.Get("http://" + s.http + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after garbage: %v", err)
	}
	resp.Body.Close()
	s.stop(t)
}

// TestBenchSmoke runs the load generator's smoke profile against the real
// binary: a small W1, W2, W3 and W7 that fail on any loss, duplicate, reorder
// or failed send. Figures are not asserted; docs/benchmarks.md has them.
func TestBenchSmoke(t *testing.T) {
	metrics := freeAddr(t) // W7 reads goroutines, heap and GC pauses there
	s := startServer(t, t.TempDir(), "--max-conns-per-user", "0", "--metrics", metrics)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "bench", "--smoke", "--server", "http://"+s.http,
		"--pid", fmt.Sprint(s.cmd.Process.Pid), "--metrics", metrics)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench --smoke: %v\n%s\nserver log:\n%s", err, out, s.out.String())
	}
	t.Logf("%s", out)
}

// TestThreeTerminalsGroupThenRestart: a group conversation between three
// terminal clients with a file, read counts, a recall and a membership
// change, and all of it still there after a restart.
func TestThreeTerminalsGroupThenRestart(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		runChat(t, s, u, u+"-pw", ":q\n", "--register")
	}
	file := filepath.Join(t.TempDir(), "plan.txt")
	if err := os.WriteFile(file, []byte("the plan\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := startChat(t, s, "alice", "alice-pw")
	alice.send(t, ":create team bob carol")
	waitOutput(t, alice.out, "group created", regexp.MustCompile(`created team \(g_\d+\)`))
	bob := startChat(t, s, "bob", "bob-pw")
	carol := startChat(t, s, "carol", "carol-pw", "--transport", "ws")

	alice.send(t, "hello team")
	for _, c := range []*chat{bob, carol} {
		waitOutput(t, c.out, "group message", regexp.MustCompile(`\] alice @ team: hello team`))
	}
	bob.send(t, ":g team", ":read")
	waitOutput(t, alice.out, "read count", regexp.MustCompile(`read by 1 #\d+ @ team`))
	alice.send(t, ":file "+file)
	for _, c := range []*chat{bob, carol} {
		waitOutput(t, c.out, "file message", regexp.MustCompile(`\] alice @ team: \[file plan\.txt`))
	}
	carol.send(t, ":g team", "oops, wrong chat", ":recall")
	waitOutput(t, bob.out, "recall", regexp.MustCompile(`\* carol recalled #\d+`))
	alice.send(t, ":invite dave", ":kick carol")
	waitOutput(t, bob.out, "membership change", regexp.MustCompile(`\* alice added dave to team`))
	waitOutput(t, bob.out, "removal", regexp.MustCompile(`\* alice removed carol from team`))
	for _, c := range []*chat{alice, bob, carol} {
		c.send(t, ":q")
		<-c.done
	}

	s.stop(t)
	s = startServer(t, data)
	// Dave's window starts at his join: he sees from there on, not before.
	out := runChat(t, s, "dave", "dave-pw", ":g team\n:history 20\n")
	hist := out[strings.Index(out, "history with team:"):]
	if !strings.Contains(hist, "alice added dave to team") || !strings.Contains(hist, "alice removed carol from team") ||
		strings.Contains(hist, "hello team") {
		t.Errorf("dave's history should start at his join:\n%s", hist)
	}
	out = runChat(t, s, "bob", "bob-pw", ":g team\n:history 20\n")
	hist = out[strings.Index(out, "history with team:"):]
	for _, want := range []string{"alice @ team: hello team", "[file plan.txt", "(recalled)", "alice added dave to team"} {
		if !strings.Contains(hist, want) {
			t.Errorf("after restart bob's history lacks %q:\n%s", want, hist)
		}
	}
}

// TestCurlSignedPush runs the curl and openssl script of docs/api.md, as
// written there, against the real binary: its transient push reaches bob's
// terminal client, and the same request replayed is refused.
func TestCurlSignedPush(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the documented push script: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sh\n(MAGPIE=\\S+\n.*?openssl.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no curl and openssl push script")
	}
	s := startServer(t, t.TempDir(), "--push-keys", "crm:crm-secret-0123456789abcdef")
	script := regexp.MustCompile(`(?m)^MAGPIE=\S+$`).ReplaceAllString(string(m[1]), "MAGPIE=http://"+s.http)
	bob := startChat(t, s, "bob", "secret-bob", "--register")

	// The script, then the same request again: the nonce is spent.
	script += "\necho; echo REPLAY\n" + script[strings.Index(script, "curl "):]
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("push script: %v\n%s", err, out)
	}
	first, replay, _ := strings.Cut(string(out), "REPLAY")
	if !strings.HasPrefix(first, "HTTP/1.1 200") {
		t.Fatalf("push answered:\n%s", first)
	}
	if !strings.Contains(replay, "HTTP/1.1 401") {
		t.Errorf("replayed push answered:\n%s", replay)
	}
	waitOutput(t, bob.out, "the push at bob's terminal", regexp.MustCompile(`\(notification\) .*Your order has shipped`))
}
