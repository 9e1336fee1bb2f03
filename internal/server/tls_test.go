package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/tlsconf/tlstest"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// tlsFixture is a node with --tls-cert and the CA that signed it.
type tlsFixture struct {
	n    *Node
	ca   *tlstest.CA
	leaf *tlstest.Leaf
	dir  string
}

func tlsConfigFor(t *testing.T) (config.Config, *tlstest.CA, *tlstest.Leaf, string) {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "magpie test CA")
	leaf := ca.Issue(t, "127.0.0.1", "localhost").Write(t, dir)
	cfg := testConfig(t, t.TempDir())
	cfg.TLSCert, cfg.TLSKey = leaf.CertFile, leaf.KeyFile
	cfg.TLSWatch = 0 // reloads in these tests are asked for
	return cfg, ca, leaf, dir
}

func startTLSNode(t *testing.T) *tlsFixture {
	t.Helper()
	cfg, ca, leaf, dir := tlsConfigFor(t)
	return &tlsFixture{n: startNode(t, cfg), ca: ca, leaf: leaf, dir: dir}
}

func (f *tlsFixture) base() string { return "https://" + f.n.HTTPAddr() }

func (f *tlsFixture) httpClient() *http.Client {
	tr := &http.Transport{TLSClientConfig: f.ca.ClientConfig()}
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	return hc
}

// tlsClient registers user (if asked) and connects it over transport,
// trusting the fixture's CA.
func (f *tlsFixture) tlsClient(t *testing.T, user, transport string, register bool) (*client.Client, *inbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	box := &inbox{}
	c := client.New(client.Options{
		Server: f.base(), Username: user, Password: "password-" + user, Transport: transport,
		TLS:        f.ca.ClientConfig(),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		OnMessage: func(m client.Message) { box.mu.Lock(); box.msgs = append(box.msgs, m); box.mu.Unlock() },
	})
	if register {
		if _, err := c.Register(ctx); err != nil {
			t.Fatalf("register %s: %v", user, err)
		}
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s over %s: %v", user, transport, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, box
}

// tlsLogin logs user in over HTTPS and returns the answer.
func (f *tlsFixture) tlsLogin(t *testing.T, user string, register bool) (token string, gw map[string]string) {
	t.Helper()
	hc := f.httpClient()
	body := `{"username":"` + user + `","password":"password-` + user + `"}`
	if register {
		resp, err := hc.Post(f.base()+"/v1/users", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("register over https: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("register over https: %d", resp.StatusCode)
		}
	}
	resp, err := hc.Post(f.base()+"/v1/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("login over https: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Token   string            `json:"token"`
		Gateway map[string]string `json:"gateway"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("login over https: %d %v", resp.StatusCode, err)
	}
	return out.Token, out.Gateway
}

func TestTLSListenersAdvertiseTLS(t *testing.T) {
	f := startTLSNode(t)
	_, gw := f.tlsLogin(t, "alice", true)
	if want := "tls://" + f.n.TCPAddr(); gw["tcp"] != want {
		t.Errorf("advertised tcp: got %q, want %q", gw["tcp"], want)
	}
	if want := "wss://" + f.n.HTTPAddr() + "/v1/ws"; gw["ws"] != want {
		t.Errorf("advertised ws: got %q, want %q", gw["ws"], want)
	}

	t.Run("plain HTTP is refused", func(t *testing.T) {
		resp, err := http.Get("http://" + f.n.HTTPAddr() + "/healthz")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plain HTTP on the TLS listener: 200")
			}
		}
	})
	t.Run("only HTTP/1.1 is offered", func(t *testing.T) {
		cfg := f.ca.ClientConfig()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		c, err := tls.Dial("tcp", f.n.HTTPAddr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("ALPN: got %q, want http/1.1", p)
		}
	})
	t.Run("TLS older than 1.2 is refused", func(t *testing.T) {
		for _, addr := range []string{f.n.HTTPAddr(), f.n.TCPAddr()} {
			cfg := f.ca.ClientConfig()
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
			if c, err := tls.Dial("tcp", addr, cfg); err == nil {
				c.Close()
				t.Errorf("%s: a TLS 1.1 handshake succeeded", addr)
			}
		}
	})
	t.Run("plain frames on the TLS TCP listener get nothing back", func(t *testing.T) {
		tok := loginTokenTLS(t, f, "alice")
		c, err := net.Dial("tcp", f.n.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}})
		_, _ = c.Write(wire.AppendFrame(nil, b))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := wire.NewReader(c, 0, 0).ReadFrame(); err == nil {
			t.Fatal("a plain-text client got a frame from the TLS listener")
		}
	})
	t.Run("raw TLS session authenticates and is kicked", func(t *testing.T) {
		tok := loginTokenTLS(t, f, "alice")
		c, err := tls.Dial("tcp", f.n.TCPAddr(), f.ca.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		s := &rawSession{t: t, r: wire.NewReader(c, 0, 0), w: func(b []byte) { _, _ = c.Write(b) }}
		if got := s.call(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}}); got.GetAuthOk() == nil {
			t.Fatalf("auth over TLS: %v", got)
		}
		// A kick arrives whole before the close (close_notify, then EOF).
		_, _ = c.Write(wire.AppendFrame(nil, []byte{0xff, 0xfe, 0xfd, 0x01}))
		var kick *magpiepb.Kick
		for kick == nil {
			p, err := s.r.ReadFrame()
			if err != nil {
				t.Fatalf("read before the kick: %v", err)
			}
			var env magpiepb.Envelope
			if err := proto.Unmarshal(p, &env); err != nil {
				t.Fatal(err)
			}
			kick = env.GetKick()
		}
		if kick.Code != uint32(wire.CodeProtocolError) {
			t.Fatalf("kick over TLS: %v, want protocol_error", kick)
		}
		if _, err := s.r.ReadFrame(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the kick: %v, want EOF", err)
		}
	})
	t.Run("raw WSS session authenticates", func(t *testing.T) {
		tok := loginTokenTLS(t, f, "alice")
		d := websocket.Dialer{TLSClientConfig: f.ca.ClientConfig(), Subprotocols: []string{wire.SubprotocolProto}}
		c, resp, err := d.Dial(gw["ws"], nil)
		if err != nil {
			t.Fatalf("wss dial: %v", err)
		}
		resp.Body.Close()
		defer c.Close()
		b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}})
		_ = c.WriteMessage(websocket.BinaryMessage, b)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := c.ReadMessage()
		var env magpiepb.Envelope
		if err != nil || proto.Unmarshal(data, &env) != nil || env.GetAuthOk() == nil {
			t.Fatalf("auth over wss: %v %v", &env, err)
		}
	})
}

func loginTokenTLS(t *testing.T, f *tlsFixture, user string) string {
	t.Helper()
	tok, _ := f.tlsLogin(t, user, false)
	return tok
}

func TestTLSConnectionThatNeverHandshakesIsClosed(t *testing.T) {
	cfg, _, _, _ := tlsConfigFor(t)
	cfg.AuthTimeout = 300 * time.Millisecond
	n := startNode(t, cfg)
	c, err := net.Dial("tcp", n.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a connection that never starts a TLS handshake is still open after 10s (auth timeout 300ms)")
	}
	waitFor(t, "gateway connection gone", func() bool { return n.Gateway().Conns() == 0 })
}

func TestSDKOverTLSAllTransports(t *testing.T) {
	f := startTLSNode(t)
	ctx := context.Background()
	alice, _ := f.tlsClient(t, "alice", "tcp", true)
	_, bobBox := f.tlsClient(t, "bob", "ws", true)
	if _, err := alice.SendText(ctx, "bob", "over tls"); err != nil {
		t.Fatalf("send over tls tcp: %v", err)
	}
	waitFor(t, "bob (wss) receives alice's (tls tcp) message", func() bool { return strings.Join(bobBox.texts(), ",") == "over tls" })
	convs, err := alice.Conversations(ctx) // the SDK's HTTP client trusts Options.TLS too
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations over https: %+v %v", convs, err)
	}
}

func TestSDKRefusesUnknownCA(t *testing.T) {
	f := startTLSNode(t)
	f.tlsClient(t, "alice", "tcp", true)
	stranger := tlstest.NewCA(t, "someone else's CA")
	for _, tc := range []struct {
		name      string
		transport string
		tls       *tls.Config
		hc        *http.Client // nil: the SDK's own, from TLS
	}{
		{"system roots, https login", "tcp", nil, nil},
		{"another CA, https login", "tcp", stranger.ClientConfig(), nil},
		// The login goes through (its HTTP client trusts the CA); the
		// gateway's certificate is checked against Options.TLS on its own.
		{"another CA, tls tcp gateway", "tcp", stranger.ClientConfig(), f.httpClient()},
		{"another CA, wss gateway", "ws", stranger.ClientConfig(), f.httpClient()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := client.New(client.Options{Server: f.base(), Username: "alice", Password: "password-alice",
				Transport: tc.transport, TLS: tc.tls, HTTPClient: tc.hc})
			defer c.Close()
			err := c.Connect(ctx)
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ua) {
				t.Fatalf("connect: got %v, want x509.UnknownAuthorityError", err)
			}
		})
	}
	waitFor(t, "no gateway connection from refused clients", func() bool { return f.n.Gateway().Conns() == 1 })
}

func TestTLSReloadKeepsLiveConnections(t *testing.T) {
	f := startTLSNode(t)
	ctx := context.Background()
	alice, _ := f.tlsClient(t, "alice", "tcp", true)
	_, bobBox := f.tlsClient(t, "bob", "tcp", true)
	_, bobWS := f.tlsClient(t, "bob", "ws", false)
	serialOf := func(addr string) string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, f.ca.ClientConfig())
		if err != nil {
			t.Fatalf("handshake with %s: %v", addr, err)
		}
		defer c.Close()
		return tlstest.PeerSerial(c).String()
	}
	if got := serialOf(f.n.TCPAddr()); got != f.leaf.Serial.String() {
		t.Fatalf("serial before: %s, want %s", got, f.leaf.Serial)
	}

	// A broken pair is refused and the old certificate kept.
	next := f.ca.Issue(t, "127.0.0.1", "localhost")
	bad := &tlstest.Leaf{CertPEM: next.CertPEM, KeyPEM: f.leaf.KeyPEM}
	bad.Write(t, f.dir)
	if err := f.n.ReloadTLS(); err == nil {
		t.Fatal("reload of a certificate with another's key: got nil error")
	}
	if got := serialOf(f.n.HTTPAddr()); got != f.leaf.Serial.String() {
		t.Fatalf("after a failed reload: serial %s, want the old %s", got, f.leaf.Serial)
	}

	next.Write(t, f.dir)
	if err := f.n.ReloadTLS(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	for _, addr := range []string{f.n.TCPAddr(), f.n.HTTPAddr()} {
		if got := serialOf(addr); got != next.Serial.String() {
			t.Fatalf("%s after reload: serial %s, want %s", addr, got, next.Serial)
		}
	}
	if _, err := alice.SendText(ctx, "bob", "after rotation"); err != nil {
		t.Fatalf("send on a connection from before the rotation: %v", err)
	}
	waitFor(t, "old connections receive", func() bool {
		return strings.Join(bobBox.texts(), ",") == "after rotation" && strings.Join(bobWS.texts(), ",") == "after rotation"
	})
	if got := f.n.Gateway().Conns(); got != 3 {
		t.Fatalf("gateway connections after the rotation: %d, want the 3 from before", got)
	}
}

func TestAdvertisedAddressesAreUsedAsGiven(t *testing.T) {
	for _, tc := range []struct {
		name             string
		tls              bool
		advTCP, advWS    string
		wantTCP, wantWS  string
		wantLocalSchemes bool // want tls:// and wss:// of the local listeners
	}{
		{name: "plain defaults"},
		{name: "tls defaults", tls: true, wantLocalSchemes: true},
		// Behind a proxy that ends TLS: plain listeners, TLS addresses.
		{name: "proxy", advTCP: "tls://chat.example.com:7443", advWS: "wss://chat.example.com/v1/ws",
			wantTCP: "tls://chat.example.com:7443", wantWS: "wss://chat.example.com/v1/ws"},
		{name: "tls with given addresses", tls: true, advTCP: "chat.example.com:7070", advWS: "ws://chat.example.com/v1/ws",
			wantTCP: "chat.example.com:7070", wantWS: "ws://chat.example.com/v1/ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			if tc.tls {
				cfg, _, _, _ = tlsConfigFor(t)
			}
			cfg.AdvertiseTCP, cfg.AdvertiseWS = tc.advTCP, tc.advWS
			n := startNode(t, cfg)
			gi := n.info()
			wantTCP, wantWS := tc.wantTCP, tc.wantWS
			if wantTCP == "" {
				wantTCP, wantWS = n.TCPAddr(), "ws://"+n.HTTPAddr()+"/v1/ws"
				if tc.wantLocalSchemes {
					wantTCP, wantWS = "tls://"+wantTCP, "wss://"+n.HTTPAddr()+"/v1/ws"
				}
			}
			if gi.Addrs["tcp"] != wantTCP || gi.Addrs["ws"] != wantWS {
				t.Fatalf("advertised tcp %q ws %q, want %q %q", gi.Addrs["tcp"], gi.Addrs["ws"], wantTCP, wantWS)
			}
		})
	}
}

// A logic node alone serves its API over HTTPS too.
func TestLogicRoleServesHTTPS(t *testing.T) {
	cfg, ca, _, _ := tlsConfigFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg, Roles{Logic: true}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig()}}
	resp, err := hc.Post("https://"+n.HTTPAddr()+"/v1/users", "application/json", bytes.NewBufferString(`{"username":"carol","password":"password-carol"}`))
	if err != nil {
		t.Fatalf("register over https on a logic node: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d", resp.StatusCode)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// With --tls-watch, replacing the files is enough: no SIGHUP.
func TestTLSFilesChangeReloads(t *testing.T) {
	cfg, ca, leaf, dir := tlsConfigFor(t)
	cfg.TLSWatch = 100 * time.Millisecond
	n := startNode(t, cfg)
	serial := func() string {
		c, err := tls.Dial("tcp", n.TCPAddr(), ca.ClientConfig())
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return tlstest.PeerSerial(c).String()
	}
	if got := serial(); got != leaf.Serial.String() {
		t.Fatalf("serial before: %s, want %s", got, leaf.Serial)
	}
	next := ca.Issue(t, "127.0.0.1", "localhost").Write(t, dir)
	// Same size and the same clock tick as the first pair would look
	// unchanged; move the times on to be sure.
	later := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(next.CertFile, later, later)
	_ = os.Chtimes(next.KeyFile, later, later)
	waitFor(t, "the new certificate served after the files changed", func() bool { return serial() == next.Serial.String() })
}
