// Package testserver starts real Magpie nodes in the test's process for
// the SDK's and the terminal client's tests: SQLite in a temporary
// directory, embedded NATS, loopback ports. Clients reach the gateway
// through a fault proxy (the node advertises the proxy's TCP address at
// login), and the HTTP API through a front that records each request, so a
// test can count logins and reroutes.
//
// Users are created with the password "pw-" + name.
package testserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/cluster"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/faultproxy"
	"github.com/magpie-im/magpie/internal/server"
)

// Server is a running node (or, in a Cluster, its logic node).
type Server struct {
	// URL is the HTTP base URL to give the SDK (the recording front).
	URL string
	// Direct is the node's own HTTP base URL, for calls a test makes
	// that must not count as the client's.
	Direct string
	Node   *server.Node
	// Proxy sits in front of the node's TCP gateway (nil on a logic-only
	// node). Logins name its address.
	Proxy *faultproxy.Proxy

	front *front
}

// Options changes the node's configuration before it starts.
type Options func(*config.Config)

// Heartbeat sets the interval the gateway asks clients to ping at.
func Heartbeat(d time.Duration) Options { return func(c *config.Config) { c.Heartbeat = d } }

// Start runs one node with both roles and creates users.
func Start(t testing.TB, opts []Options, users ...string) *Server {
	t.Helper()
	p := faultproxy.New(t)
	cfg := baseConfig(t)
	cfg.AdvertiseTCP = p.Addr()
	for _, o := range opts {
		o(&cfg)
	}
	n := startNode(t, cfg, server.Roles{Gateway: true, Logic: true})
	p.SetUpstream(n.TCPAddr())
	s := newServer(t, n)
	s.Proxy = p
	s.AddUsers(t, users...)
	return s
}

func baseConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.HTTP = "127.0.0.1:0"
	cfg.TCP = "127.0.0.1:0"
	cfg.LogLevel = "error"
	// No drain at the end of a test: its clients are closed by then, and
	// the drain's notice grace would cost every test a quarter second.
	cfg.DrainTimeout = 0
	return cfg
}

func startNode(t testing.TB, cfg config.Config, roles server.Roles) *server.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := server.Start(ctx, cfg, roles, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("testserver: start: %v", err)
	}
	t.Cleanup(func() { Stop(t, n) })
	return n
}

// Stop shuts a node down (a drain, then the rest); safe to call again.
func Stop(t testing.TB, n *server.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("testserver: shutdown: %v", err)
	}
}

func newServer(t testing.TB, n *server.Node) *Server {
	direct := "http://" + n.HTTPAddr()
	f := newFront(direct)
	t.Cleanup(f.Close)
	return &Server{URL: f.URL, Direct: direct, Node: n, front: f}
}

// AddUsers registers each user with the password "pw-" + name.
func (s *Server) AddUsers(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		body := fmt.Sprintf(`{"username":%q,"password":%q}`, name, "pw-"+name)
		if code, b := s.call(t, http.MethodPost, "/v1/users", "", body); code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("testserver: register %s: %d %s", name, code, b)
		}
	}
}

// Login logs user in directly (not through the front) with device and
// returns the token. A login with the device of a connected client
// replaces that client's session: the gateway kicks it with "replaced".
func (s *Server) Login(t testing.TB, user, device string) string {
	t.Helper()
	body := fmt.Sprintf(`{"username":%q,"password":%q,"device":%q}`, user, "pw-"+user, device)
	code, b := s.call(t, http.MethodPost, "/v1/login", "", body)
	if code != http.StatusOK {
		t.Fatalf("testserver: login %s: %d %s", user, code, b)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		t.Fatalf("testserver: login %s: %s", user, b)
	}
	return out.Token
}

// Logout ends token's session over HTTP: the server revokes it and kicks
// its connections.
func (s *Server) Logout(t testing.TB, token string) {
	t.Helper()
	if code, b := s.call(t, http.MethodPost, "/v1/logout", token, ""); code/100 != 2 {
		t.Fatalf("testserver: logout: %d %s", code, b)
	}
}

func (s *Server) call(t testing.TB, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.Direct+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("testserver: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Request is one HTTP request that went through the front.
type Request struct {
	Method, Path string
	Body         []byte
	Status       int
}

// Requests returns the requests through the front that match method and
// a path with that prefix, oldest first.
func (s *Server) Requests(method, pathPrefix string) []Request {
	return s.front.requests(method, pathPrefix)
}

// Logins counts successful logins through the front.
func (s *Server) Logins() int { return len(s.LoginDevices()) }

// LoginDevices returns the device named by each successful login through
// the front, in order.
func (s *Server) LoginDevices() []string {
	var out []string
	for _, r := range s.Requests(http.MethodPost, "/v1/login") {
		if r.Status != http.StatusOK {
			continue
		}
		var b struct{ Device string }
		_ = json.Unmarshal(r.Body, &b)
		out = append(out, b.Device)
	}
	return out
}

// Routes counts GET /v1/gateway calls through the front: a client moving
// to another gateway without a login.
func (s *Server) Routes() int { return len(s.Requests(http.MethodGet, "/v1/gateway")) }

// WaitFor polls cond until it holds or 10 s pass.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// front is a reverse proxy to the node's HTTP API that records requests.
type front struct {
	*httptest.Server
	mu  sync.Mutex
	log []Request
}

func newFront(upstream string) *front {
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	f := &front{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil && !strings.HasPrefix(r.URL.Path, "/v1/files") {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		f.mu.Lock()
		f.log = append(f.log, Request{Method: r.Method, Path: r.URL.Path, Body: body, Status: sw.status})
		f.mu.Unlock()
	}))
	return f
}

func (f *front) requests(method, prefix string) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Request
	for _, r := range f.log {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// Flush passes streaming through (the reverse proxy flushes).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Cluster is a logic-only node and gateway-only nodes on one NATS server,
// talking only through NATS as separate processes do.
type Cluster struct {
	*Server
	natsURL string
	secret  string
}

// Gateway is a gateway-only node of a Cluster behind its own fault proxy.
type Gateway struct {
	ID    string
	Node  *server.Node
	Proxy *faultproxy.Proxy
}

// StartCluster starts NATS and the logic node, and creates users. It has
// no gateway yet: add them with AddGateway.
func StartCluster(t testing.TB, users ...string) *Cluster {
	t.Helper()
	ns, err := cluster.StartEmbedded(cluster.EmbeddedConfig{StoreDir: t.TempDir(), ServerName: "t", Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	c := &Cluster{natsURL: ns.ClientURL(), secret: "0123456789abcdef0123456789abcdef"}
	cfg := c.config(t)
	cfg.Store = filepath.Join(cfg.Data, "magpie.db")
	c.Server = newServer(t, startNode(t, cfg, server.Roles{Logic: true}))
	c.AddUsers(t, users...)
	return c
}

func (c *Cluster) config(t testing.TB) config.Config {
	cfg := baseConfig(t)
	cfg.NATS = c.natsURL
	cfg.TokenSecret = c.secret
	cfg.RegistryTTL = 3 * time.Second
	return cfg
}

// AddGateway starts a gateway node named id behind a new fault proxy and
// waits until the logic node routes logins to it.
func (c *Cluster) AddGateway(t testing.TB, id string, opts ...Options) *Gateway {
	t.Helper()
	p := faultproxy.New(t)
	cfg := c.config(t)
	cfg.GatewayID = id
	cfg.AdvertiseTCP = p.Addr()
	for _, o := range opts {
		o(&cfg)
	}
	n := startNode(t, cfg, server.Roles{Gateway: true})
	p.SetUpstream(n.TCPAddr())
	WaitFor(t, "gateway "+id+" routable", func() bool { return slices.Contains(c.Node.LiveGateways(), id) })
	return &Gateway{ID: id, Node: n, Proxy: p}
}
