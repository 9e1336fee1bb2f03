package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

func testConfig(t *testing.T, dataDir string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Data = dataDir
	cfg.HTTP = "127.0.0.1:0"
	cfg.TCP = "127.0.0.1:0"
	cfg.LogLevel = "error"
	return cfg
}

func startNode(t *testing.T, cfg config.Config) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg, Roles{Gateway: true, Logic: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	return n
}

func stopNode(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// inbox collects what a client's callbacks see.
type inbox struct {
	mu       sync.Mutex
	msgs     []client.Message
	receipts []client.Receipt
}

func (b *inbox) texts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		out = append(out, m.Text)
	}
	return out
}

func (b *inbox) hasReceipt(kind client.ReceiptKind, seq uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.receipts {
		if r.Kind == kind && r.Seq >= seq {
			return true
		}
	}
	return false
}

func newTestClient(n *Node, user, device string) *client.Client {
	return client.New(client.Options{Server: "http://" + n.HTTPAddr(), Username: user, Password: "password-" + user, Device: device})
}

func newClient(t *testing.T, n *Node, user, device, transport string, register bool) (*client.Client, *inbox) {
	t.Helper()
	box := &inbox{}
	c := connectClient(t, n, user, device, transport, register, client.Options{
		OnMessage: func(m client.Message) { box.mu.Lock(); box.msgs = append(box.msgs, m); box.mu.Unlock() },
		OnReceipt: func(r client.Receipt) { box.mu.Lock(); box.receipts = append(box.receipts, r); box.mu.Unlock() },
	})
	return c, box
}

// connectClient connects user's device with the callbacks of opts
// (registering the user first if register), with quick reconnects, and
// closes it when the test ends.
func connectClient(t *testing.T, n *Node, user, device, transport string, register bool, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := "http://" + n.HTTPAddr()
	if register {
		if _, err := client.Register(ctx, server, user, "password-"+user); err != nil {
			t.Fatalf("register %s: %v", user, err)
		}
	}
	opts.Server, opts.Username, opts.Password, opts.Device, opts.Transport = server, user, "password-"+user, device, transport
	opts.BackoffMin, opts.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	c := client.New(opts)
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPrivateChatReceiptsAndDevices(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	alice, aliceBox := newClient(t, n, "alice", "laptop", "tcp", true)
	_, alicePhone := newClient(t, n, "alice", "phone", "ws", false)
	bob, bobBox := newClient(t, n, "bob", "phone", "ws", true)

	for i := 1; i <= 3; i++ {
		ack, err := alice.SendText(ctx, "bob", fmt.Sprint("hello ", i))
		if err != nil || ack.Seq != uint64(i) {
			t.Fatalf("send %d: %+v %v", i, ack, err)
		}
	}
	want := "hello 1,hello 2,hello 3"
	waitFor(t, "bob's messages", func() bool { return strings.Join(bobBox.texts(), ",") == want })
	waitFor(t, "alice's other device", func() bool { return strings.Join(alicePhone.texts(), ",") == want })
	if got := aliceBox.texts(); len(got) != 0 {
		t.Fatalf("the sending device got its own messages back: %v", got)
	}
	// Bob's SDK reports delivered; reading moves read.
	waitFor(t, "delivered receipt", func() bool { return aliceBox.hasReceipt(client.Delivered, 3) })
	conv := bobBox.msgs[0].ConversationID
	if err := bob.MarkRead(ctx, conv, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "read receipt", func() bool { return aliceBox.hasReceipt(client.Read, 3) })
	convs, err := alice.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].LastSeq != 3 || convs[0].Peer != "bob" {
		t.Fatalf("conversations: %+v %v", convs, err)
	}
	online, err := bob.Online(ctx)
	if err != nil || len(online) != 2 {
		t.Fatalf("online: %+v %v", online, err)
	}
}

func TestOfflineMessagesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, testConfig(t, dir))
	ctx := context.Background()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	bob, _ := newClient(t, n, "bob", "b", "tcp", true)
	_ = bob.Close()
	for i := 1; i <= 5; i++ {
		if _, err := alice.SendText(ctx, "bob", fmt.Sprint("offline ", i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = alice.Close()
	stopNode(t, n)

	n2 := startNode(t, testConfig(t, dir))
	_, bobBox := newClient(t, n2, "bob", "b2", "ws", false)
	want := "offline 1,offline 2,offline 3,offline 4,offline 5"
	waitFor(t, "synced offline messages", func() bool { return strings.Join(bobBox.texts(), ",") == want })
}

func TestLogoutClosesLiveConnections(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	if err := alice.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "closed after logout", func() bool { return alice.State() == client.StateClosed })
	waitFor(t, "gateway connection gone", func() bool { return n.Gateway().Conns() == 0 })
}

// rawTCP dials the gateway and returns the connection.
func rawTCP(t *testing.T, n *Node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// authedRaw dials the gateway and authenticates with tok: a client that
// speaks the protocol by hand.
func authedRaw(t *testing.T, n *Node, tok string) *rawSession {
	t.Helper()
	c := rawTCP(t, n)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	s := &rawSession{t: t, r: wire.NewReader(c, 0, 0), w: func(b []byte) { _, _ = c.Write(b) }, close: func() { _ = c.Close() }}
	if got := s.call(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}}); got.GetAuthOk() == nil {
		t.Fatalf("auth: %v", got)
	}
	return s
}

func readKick(t *testing.T, c net.Conn) *magpiepb.Envelope {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := wire.NewReader(c, 0, 0).ReadFrame()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var env magpiepb.Envelope
	if err := proto.Unmarshal(p, &env); err != nil {
		t.Fatal(err)
	}
	return &env
}

func TestBadInputLeavesServerUp(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AuthTimeout = 300 * time.Millisecond
	n := startNode(t, cfg)
	base := "http://" + n.HTTPAddr()

	t.Run("oversized frame", func(t *testing.T) {
		c := rawTCP(t, n)
		_, _ = c.Write(binary.BigEndian.AppendUint32(nil, wire.MaxFrame+1))
		if k := readKick(t, c).GetKick(); k == nil || k.Code != uint32(wire.CodeTooLarge) {
			t.Fatalf("got %v, want kick too_large", k)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		c := rawTCP(t, n)
		_, _ = c.Write(wire.AppendFrame(nil, []byte{0xff, 0xfe, 0xfd, 0x01}))
		if k := readKick(t, c).GetKick(); k == nil || k.Code != uint32(wire.CodeProtocolError) {
			t.Fatalf("got %v, want kick protocol_error", k)
		}
	})
	t.Run("never authenticates", func(t *testing.T) {
		c := rawTCP(t, n)
		if k := readKick(t, c).GetKick(); k == nil || k.Code != uint32(wire.CodeAuthTimeout) {
			t.Fatalf("got %v, want kick auth_timeout", k)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		c := rawTCP(t, n)
		b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: "forged.token"}}})
		_, _ = c.Write(wire.AppendFrame(nil, b))
		if e := readKick(t, c).GetError(); e == nil || e.Code != uint32(wire.CodeUnauthenticated) {
			t.Fatalf("got %v, want error unauthenticated", e)
		}
	})
	httpCases := []struct {
		name, path, body string
		wantStatus       int
		wantCode         string
	}{
		{"bad json", "/v1/users", `{"username":`, 400, "bad_request"},
		{"deep json", "/v1/users", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), 400, "bad_request"},
		{"huge body", "/v1/users", `{"username":"` + strings.Repeat("a", 70000) + `"}`, 413, "too_large"},
		{"bad name", "/v1/users", `{"username":"a.b*","password":"secret99"}`, 400, "bad_request"},
		{"number out of range", "/v1/login", `{"username":"x","password":1e400}`, 400, "bad_request"},
		{"duplicate keys", "/v1/login", `{"username":"x","username":"nobody","password":"secret99"}`, 400, "bad_request"},
		{"login wrong", "/v1/login", `{"username":"nobody","password":"secret99"}`, 401, "invalid_credentials"},
		{"send without token", "/v1/messages", `{"to_user":"bob","text":"x"}`, 401, "unauthenticated"},
	}
	for _, tc := range httpCases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(base+tc.path, "application/json", bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantStatus || body.Error.Code != tc.wantCode {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body.Error.Code, tc.wantStatus, tc.wantCode)
			}
		})
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server not healthy after bad input: %v", err)
	}
	resp.Body.Close()
}
