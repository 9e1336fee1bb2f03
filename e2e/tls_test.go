//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/tlsconf/tlstest"
)

// tlsServer is `magpie serve` with a certificate from a CA made here.
type tlsServer struct {
	*server
	ca     *tlstest.CA
	leaf   *tlstest.Leaf
	dir    string // cert.pem, key.pem, ca.pem
	caFile string
}

// startTLSServer starts the binary with --tls-cert and --tls-key; with
// --tls-watch 0 a rotation takes a SIGHUP, so a test of SIGHUP is not
// passed by the file watcher.
func startTLSServer(t *testing.T, extra ...string) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "magpie e2e CA")
	leaf := ca.Issue(t, "127.0.0.1", "localhost").Write(t, dir)
	args := append([]string{"--tls-cert", leaf.CertFile, "--tls-key", leaf.KeyFile, "--tls-watch", "0"}, extra...)
	s := startServer(t, t.TempDir(), args...)
	if !strings.Contains(s.out.String(), "https://"+s.http) || !strings.Contains(s.out.String(), "TCP gateway: tls://"+s.tcp) {
		t.Fatalf("the ready line does not say https and tls:\n%s", s.out.String())
	}
	return &tlsServer{server: s, ca: ca, leaf: leaf, dir: dir, caFile: ca.WriteCA(t, dir)}
}

func (s *tlsServer) url() string { return "https://" + s.http }

// peerSerial shakes hands with addr and returns the server certificate's
// serial.
func (s *tlsServer) peerSerial(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, s.ca.ClientConfig())
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return tlstest.PeerSerial(c).String()
}

// tlsChat starts `magpie chat` against the HTTPS URL, trusting the CA.
func tlsChat(t *testing.T, s *tlsServer, user, password string, args ...string) *chat {
	t.Helper()
	all := append([]string{"--server", s.url(), "--ca", s.caFile}, args...)
	return startChatArgs(t, user, password, all...)
}

// sdkBox is an SDK client's received texts and states.
type sdkBox struct {
	mu     sync.Mutex
	texts  []string
	states []client.State
}

func (b *sdkBox) has(text string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.texts {
		if x == text {
			return true
		}
	}
	return false
}

func (b *sdkBox) readyCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.states {
		if s == client.StateReady {
			n++
		}
	}
	return n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTLSAllTransportsAndRotation: with --tls-cert the binary serves the
// HTTPS API, WSS and TLS on TCP (the terminal client over both long
// connections and an SDK client over TLS TCP carry messages across); then
// the certificate files are replaced and SIGHUP sent while the connections
// are live: new handshakes get the new certificate, and the old
// connections stay up and still receive.
func TestTLSAllTransportsAndRotation(t *testing.T) {
	s := startTLSServer(t)

	// The HTTPS API, by hand: register, log in, and the advertised
	// addresses say TLS.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.ca.ClientConfig()}, Timeout: 20 * time.Second}
	resp, err := hc.Post(s.url()+"/v1/users", "application/json", strings.NewReader(`{"username":"carol","password":"carol-pw"}`))
	if err != nil {
		t.Fatalf("register over https: %v", err)
	}
	resp.Body.Close()
	resp, err = hc.Post(s.url()+"/v1/login", "application/json", strings.NewReader(`{"username":"carol","password":"carol-pw"}`))
	if err != nil {
		t.Fatalf("login over https: %v", err)
	}
	var login struct {
		Token   string            `json:"token"`
		Gateway map[string]string `json:"gateway"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.Token == "" {
		t.Fatalf("login over https: %d %v", resp.StatusCode, err)
	}
	if login.Gateway["tcp"] != "tls://"+s.tcp || login.Gateway["ws"] != "wss://"+s.http+"/v1/ws" {
		t.Fatalf("login advertised %v, want tls://%s and wss://%s/v1/ws", login.Gateway, s.tcp, s.http)
	}
	// Without the CA the server's certificate is refused.
	if _, err := http.Get(s.url() + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("https without the CA: got %v, want a certificate error", err)
	}

	// The terminal client: alice over TLS TCP, bob over WSS.
	alice := tlsChat(t, s, "alice", "alice-pw", "--register")
	bob := tlsChat(t, s, "bob", "bob-pw", "--register", "--transport", "ws")
	alice.send(t, "bob;;hello over tls")
	waitOutput(t, bob.out, "bob (wss) receives alice's (tls tcp) message", regexp.MustCompile(`\] alice: hello over tls`))
	bob.send(t, "alice;;and back over wss")
	waitOutput(t, alice.out, "alice receives bob's answer", regexp.MustCompile(`\] bob: and back over wss`))

	// The SDK: carol over TLS TCP, trusting the CA through Options.TLS.
	box := &sdkBox{}
	carol := client.New(client.Options{
		Server: s.url(), Username: "carol", Password: "carol-pw", Transport: "tcp", TLS: s.ca.ClientConfig(),
		OnMessage: func(m client.Message) { box.mu.Lock(); box.texts = append(box.texts, m.Text); box.mu.Unlock() },
		OnState:   func(st client.State, _ error) { box.mu.Lock(); box.states = append(box.states, st); box.mu.Unlock() },
	})
	defer carol.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := carol.Connect(ctx); err != nil {
		t.Fatalf("SDK over TLS TCP: %v", err)
	}
	alice.send(t, "carol;;hello carol")
	poll(t, "carol (SDK, tls tcp) receives", func() bool { return box.has("hello carol") })
	if _, err := carol.SendText(ctx, "alice", "carol here"); err != nil {
		t.Fatalf("SDK send over TLS TCP: %v", err)
	}
	waitOutput(t, alice.out, "alice receives carol's message", regexp.MustCompile(`\] carol: carol here`))

	// Rotation: new files (a new serial), then SIGHUP.
	oldSerial := s.leaf.Serial.String()
	if got := s.peerSerial(t, s.tcp); got != oldSerial {
		t.Fatalf("serial before rotation: %s, want %s", got, oldSerial)
	}
	next := s.ca.Issue(t, "127.0.0.1", "localhost").Write(t, s.dir)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, "a new TCP handshake sees the new certificate", func() bool { return s.peerSerial(t, s.tcp) == next.Serial.String() })
	if got := s.peerSerial(t, s.http); got != next.Serial.String() {
		t.Fatalf("HTTPS after rotation: serial %s, want %s", got, next.Serial)
	}

	// The connections from before the rotation are still up and receive.
	alice.send(t, "carol;;after rotation", "bob;;after rotation too")
	poll(t, "carol's old connection receives after the rotation", func() bool { return box.has("after rotation") })
	waitOutput(t, bob.out, "bob's old wss connection receives", regexp.MustCompile(`\] alice: after rotation too`))
	if n := box.readyCount(); n != 1 {
		t.Errorf("carol's SDK client was ready %d times, want 1 (no reconnect across the rotation)", n)
	}
	for _, c := range []*chat{alice, bob} {
		if strings.Contains(c.out.String(), "reconnecting") {
			t.Errorf("a terminal client reconnected across the rotation:\n%s", c.out.String())
		}
	}
	// A fresh terminal client comes in under the new certificate.
	out := runChatArgs(t, "dave", "dave-pw", ":q\n", "--server", s.url(), "--ca", s.caFile, "--register")
	if !strings.Contains(out, "connected as dave") {
		t.Fatalf("a new client after the rotation:\n%s", out)
	}

	// A broken pair on SIGHUP: logged, and the certificate in use stays.
	(&tlstest.Leaf{CertPEM: s.ca.Issue(t, "127.0.0.1").CertPEM, KeyPEM: next.KeyPEM}).Write(t, s.dir)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, s.out, "the failed reload logged", regexp.MustCompile(`tls reload failed; keeping the certificate in use`))
	if got := s.peerSerial(t, s.tcp); got != next.Serial.String() {
		t.Fatalf("after a failed reload: serial %s, want %s", got, next.Serial)
	}
	for _, c := range []*chat{alice, bob} {
		c.send(t, ":q")
		<-c.done
	}
}

// TestBenchOverTLS: the load generator over TLS, with --ca: W1's raw
// connections over TLS TCP and W2's SDK clients over WSS.
func TestBenchOverTLS(t *testing.T) {
	s := startTLSServer(t, "--max-conns-per-user", "0")
	for _, args := range [][]string{
		{"w1", "--smoke"},
		{"w2", "--smoke", "--transport", "ws"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			all := append(args, "--server", s.url(), "--ca", s.caFile)
			out, err := exec.CommandContext(ctx, binary, append([]string{"bench"}, all...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("bench %v: %v\n%s\nserver log:\n%s", all, err, out, s.out.String())
			}
			t.Logf("%s", out)
		})
	}
	// Without --ca the bench refuses the certificate.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "bench", "w1", "--smoke", "--server", s.url()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("bench without --ca: %v\n%s", err, out)
	}
}
