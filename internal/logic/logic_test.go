package logic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// fakeBus records deliveries and plays presence and the registry.
// Notices are kept apart from the other deliveries (tests count those).
type fakeBus struct {
	mu         sync.Mutex
	deliveries []delivered
	notices    []delivered
	conns      map[int64][]*clusterpb.ConnRef
}

type delivered struct {
	gateway string
	conns   []uint64
	env     *magpiepb.Envelope
	close   uint32
	session string // the session it ends, if any
}

func newFakeBus() *fakeBus { return &fakeBus{conns: map[int64][]*clusterpb.ConnRef{}} }

func (b *fakeBus) Deliver(gw string, d *clusterpb.Delivery) error {
	var env magpiepb.Envelope
	if err := proto.Unmarshal(d.Envelope, &env); err != nil {
		return err
	}
	b.mu.Lock()
	if env.GetNotice() != nil {
		b.notices = append(b.notices, delivered{gw, d.Conns, &env, d.CloseCode, d.SessionId})
	} else {
		b.deliveries = append(b.deliveries, delivered{gw, d.Conns, &env, d.CloseCode, d.SessionId})
	}
	b.mu.Unlock()
	return nil
}

// noticesSeen returns the notices delivered so far.
func (b *fakeBus) noticesSeen() []delivered {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.notices)
}

func (b *fakeBus) AppendConns(dst []*clusterpb.ConnRef, uid int64) []*clusterpb.ConnRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(dst, b.conns[uid]...)
}
func (b *fakeBus) Conns(uid int64) []*clusterpb.ConnRef { return b.AppendConns(nil, uid) }
func (b *fakeBus) Add(c *clusterpb.ConnRef) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conns[c.UserId] = append(b.conns[c.UserId], c)
}
func (b *fakeBus) Online() map[int64][]*clusterpb.ConnRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int64][]*clusterpb.ConnRef{}
	for k, v := range b.conns {
		out[k] = v
	}
	return out
}
func (b *fakeBus) Pick(int64) (*clusterpb.GatewayInfo, error) {
	return &clusterpb.GatewayInfo{Id: "gw1", Addrs: map[string]string{"tcp": "127.0.0.1:1", "ws": "ws://127.0.0.1:2/v1/ws"}}, nil
}

func (b *fakeBus) Live() []*clusterpb.GatewayInfo {
	return []*clusterpb.GatewayInfo{{Id: "gw1"}, {Id: "gw2"}}
}

func (b *fakeBus) take() []delivered {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.deliveries
	b.deliveries = nil
	return d
}

// waitDeliveries polls until n deliveries arrived (fan-out runs after the ACK).
func (b *fakeBus) waitDeliveries(t *testing.T, n int) []delivered {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.deliveries)
		b.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			d := b.take()
			if len(d) != n {
				t.Fatalf("got %d deliveries, want %d", len(d), n)
			}
			return d
		}
		time.Sleep(time.Millisecond)
	}
}

func newTestService(t *testing.T, mut func(*Config)) (*Service, *fakeBus) {
	t.Helper()
	return newTestServiceOn(t, mut, nil)
}

// newTestServiceOn is newTestService with the store wrapped by wrap
// (nil: none), before the Service's goroutines start using it.
func newTestServiceOn(t *testing.T, mut func(*Config), wrap func(store.Store) store.Store) (*Service, *fakeBus) {
	t.Helper()
	sq, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	var st store.Store = sq
	if wrap != nil {
		st = wrap(sq)
	}
	bus := newFakeBus()
	cfg := Config{TokenSecret: []byte("0123456789abcdef0123456789abcdef"), LoginRate: 1000, Encoder: envelope.Encoder{}}
	if mut != nil {
		mut(&cfg)
	}
	svc, err := New(cfg, st, bus, bus, bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() {
		_ = svc.Shutdown(context.Background())
		_ = st.Close()
	})
	return svc, bus
}

func login(t *testing.T, s *Service, name, device, platform string) LoginResult {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Register(ctx, name, "password1"); err != nil && Code(err) != wire.CodeConflict {
		t.Fatal(err)
	}
	res, err := s.Login(ctx, name, "password1", device, platform)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return res
}

func TestRegisterAndLoginErrors(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	login(t, s, "alice", "", "")
	tests := []struct {
		name     string
		err      error
		wantCode wire.Code
	}{
		{"taken", func() error { _, err := s.Register(ctx, "ALICE", "password1"); return err }(), wire.CodeConflict},
		{"bad name", func() error { _, err := s.Register(ctx, "a.b", "password1"); return err }(), wire.CodeBadRequest},
		{"short password", func() error { _, err := s.Register(ctx, "bob", "x"); return err }(), wire.CodeBadRequest},
		{"1MB password", func() error { _, err := s.Register(ctx, "bob", strings.Repeat("x", 1<<20)); return err }(), wire.CodeTooLarge},
		{"wrong password", func() error { _, err := s.Login(ctx, "alice", "wrong-pass", "", ""); return err }(), wire.CodeInvalidCredential},
		{"unknown user", func() error { _, err := s.Login(ctx, "nobody", "password1", "", ""); return err }(), wire.CodeInvalidCredential},
		{"1MB password login", func() error { _, err := s.Login(ctx, "alice", strings.Repeat("x", 1<<20), "", ""); return err }(), wire.CodeInvalidCredential},
		{"bad device", func() error { _, err := s.Login(ctx, "alice", "password1", "a b", ""); return err }(), wire.CodeBadRequest},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.wantCode {
			t.Errorf("%s: code %v (%v), want %v", tt.name, got, tt.err, tt.wantCode)
		}
	}
	// Wrong name and wrong password give the same message.
	_, e1 := s.Login(ctx, "alice", "wrong-pass", "", "")
	_, e2 := s.Login(ctx, "nobody", "password1", "", "")
	if Message(e1) != Message(e2) {
		t.Errorf("messages differ: %q vs %q", Message(e1), Message(e2))
	}
}

func TestLoginFloodThrottled(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.LoginRate = 0.001 })
	ctx := context.Background()
	var last error
	for i := 0; i < 12; i++ {
		_, last = s.Login(ctx, "victim", "whatever1", "", "")
	}
	if Code(last) != wire.CodeRateLimited || RetryAfter(last) <= 0 {
		t.Fatalf("12th attempt: %v (retry %d), want rate_limited with retry-after", last, RetryAfter(last))
	}
}

func TestTokens(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.TokenTTL = time.Hour })
	ctx := context.Background()
	res := login(t, s, "alice", "laptop", "")
	if _, err := s.Authenticate(ctx, res.Token); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	tampered := res.Token[:len(res.Token)-2] + "xx"
	p, sig, _ := strings.Cut(res.Token, ".")
	other := tokenSigner{key: []byte("another-secret-of-32-bytes......")}.sign(tokenClaims{Session: res.Identity.SessionID, User: 1, Expires: time.Now().Add(time.Hour).Unix()})
	for name, tok := range map[string]string{
		"tampered": tampered, "empty": "", "no dot": p + sig, "other key": other,
		"expired": s.tokens.sign(tokenClaims{Session: res.Identity.SessionID, User: res.Identity.UserID, Expires: time.Now().Add(-time.Second).Unix()}),
	} {
		if _, err := s.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s token: %v, want unauthenticated", name, err)
		}
	}
	if err := s.Logout(ctx, res.Identity); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, res.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token after logout: %v, want unauthenticated", err)
	}
}

func TestSendAckDeliverAndIdempotency(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "laptop", "")
	bob := login(t, s, "bob", "phone", "")
	aliceLaptop := &clusterpb.ConnRef{Gateway: "gw1", Conn: 1, UserId: alice.Identity.UserID, SessionId: alice.Identity.SessionID}
	alicePhone := &clusterpb.ConnRef{Gateway: "gw2", Conn: 2, UserId: alice.Identity.UserID}
	bobPhone := &clusterpb.ConnRef{Gateway: "gw1", Conn: 3, UserId: bob.Identity.UserID}
	for _, c := range []*clusterpb.ConnRef{aliceLaptop, alicePhone, bobPhone} {
		bus.Add(c)
	}
	done := make(chan Ack, 1)
	s.SendAsync(ctx, alice.Identity, SendRequest{ToUser: "bob", Text: "hi", ClientMsgID: "m1"}, aliceLaptop, func(a Ack, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- a
	})
	ack := <-done
	if ack.Seq != 1 || ack.ConversationID != store.PrivateConversationID(alice.Identity.UserID, bob.Identity.UserID) || ack.Duplicate {
		t.Fatalf("ack = %+v", ack)
	}
	// Bob's phone and Alice's phone get it; the sending laptop does not.
	got := map[uint64]string{}
	for _, d := range bus.waitDeliveries(t, 2) {
		m := d.env.GetMessage()
		if m == nil || m.Text != "hi" || m.Seq != 1 || m.Sender != "alice" {
			t.Fatalf("delivery %+v", d.env)
		}
		for _, c := range d.conns {
			got[c] = m.Peer
		}
	}
	if len(got) != 2 || got[3] != "alice" || got[2] != "bob" {
		t.Fatalf("delivered to %v, want conn 3 (peer alice) and 2 (peer bob)", got)
	}
	// The same client id again: same seq, duplicate, no new delivery.
	again, err := s.Send(ctx, alice.Identity, SendRequest{ToUser: "bob", Text: "hi", ClientMsgID: "m1"})
	if err != nil || again.Seq != 1 || !again.Duplicate {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if d := bus.take(); len(d) != 0 {
		t.Fatalf("retry delivered again: %d", len(d))
	}
	next, err := s.Send(ctx, bob.Identity, SendRequest{ToUser: "alice", Text: "yo"})
	if err != nil || next.Seq != 2 {
		t.Fatalf("reply: %+v, %v", next, err)
	}
}

func TestSendRejects(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "", "")
	tests := []struct {
		name string
		req  SendRequest
		want wire.Code
	}{
		{"no target", SendRequest{Text: "x"}, wire.CodeBadRequest},
		{"both targets", SendRequest{ToUser: "alice", ToGroup: "g1", Text: "x"}, wire.CodeBadRequest},
		{"unknown user", SendRequest{ToUser: "nobody", Text: "x"}, wire.CodeNotFound},
		{"empty text", SendRequest{ToUser: "alice", Text: ""}, wire.CodeBadRequest},
		{"invalid utf8", SendRequest{ToUser: "alice", Text: "a\xffb"}, wire.CodeBadRequest},
		{"too long", SendRequest{ToUser: "alice", Text: strings.Repeat("x", wire.MaxText+1)}, wire.CodeTooLarge},
		{"bad client id", SendRequest{ToUser: "alice", Text: "x", ClientMsgID: "has space"}, wire.CodeBadRequest},
		{"long client id", SendRequest{ToUser: "alice", Text: "x", ClientMsgID: strings.Repeat("a", 65)}, wire.CodeBadRequest},
	}
	for _, tt := range tests {
		if _, err := s.Send(ctx, alice.Identity, tt.req); Code(err) != tt.want {
			t.Errorf("%s: %v (code %v), want %v", tt.name, err, Code(err), tt.want)
		}
	}
	convs, _ := s.Conversations(ctx, alice.Identity)
	if len(convs) != 0 {
		t.Fatalf("rejected sends stored something: %+v", convs)
	}
}

func TestConcurrentSendsGapFree(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "", "")
	login(t, s, "bob", "", "")
	const n = 300
	var wg sync.WaitGroup
	seqs := make(chan uint64, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.Send(ctx, alice.Identity, SendRequest{ToUser: "bob", Text: "x", ClientMsgID: fmt.Sprintf("c%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			seqs <- a.Seq
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] || q < 1 || q > n {
			t.Fatalf("seq %d repeated or out of range", q)
		}
		seen[q] = true
	}
	if len(seen) != n {
		t.Fatalf("got %d seqs, want %d", len(seen), n)
	}
}

func TestReceiptsAndSync(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "", "")
	bob := login(t, s, "bob", "", "")
	// Connected first, so the sends' fan-out (which runs after each ACK)
	// can be waited for instead of racing the receipt below.
	aliceConn := &clusterpb.ConnRef{Gateway: "gw1", Conn: 9, UserId: alice.Identity.UserID}
	bus.Add(aliceConn)
	for i := 0; i < 3; i++ {
		if _, err := s.Send(ctx, alice.Identity, SendRequest{ToUser: "bob", Text: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	conv := store.PrivateConversationID(alice.Identity.UserID, bob.Identity.UserID)
	bus.waitDeliveries(t, 3)
	if _, err := s.MoveCursor(ctx, bob.Identity, conv, store.Read, 4, nil); Code(err) != wire.CodeSeqOutOfRange {
		t.Fatalf("read beyond last: %v", err)
	}
	cur, err := s.MoveCursor(ctx, bob.Identity, conv, store.Read, 2, nil)
	if err != nil || cur.ReadSeq != 2 || cur.DeliveredSeq != 2 {
		t.Fatalf("read 2: %+v %v", cur, err)
	}
	d := bus.waitDeliveries(t, 1)
	r := d[0].env.GetReceipt()
	if r == nil || r.Kind != magpiepb.ReceiptKind_RECEIPT_KIND_READ || r.Seq != 2 || r.Username != "bob" || d[0].conns[0] != 9 {
		t.Fatalf("receipt push %+v to %v", d[0].env, d[0].conns)
	}
	// Backwards is a no-op and tells no one.
	if cur, err := s.MoveCursor(ctx, bob.Identity, conv, store.Read, 1, nil); err != nil || cur.ReadSeq != 2 || cur.Moved {
		t.Fatalf("backwards: %+v %v", cur, err)
	}
	// The store's error names the conversation; the client's does not.
	if _, err := s.MoveCursor(ctx, bob.Identity, "p_99_100", store.Read, 1, nil); Code(err) != wire.CodeNotMember || Message(err) != "not a member of the conversation" {
		t.Fatalf("foreign conversation: %v (message %q)", err, Message(err))
	}
	res, err := s.Sync(ctx, bob.Identity, map[string]uint64{conv: 1}, 0)
	if err != nil || len(res.Messages) != 2 || res.Messages[0].Seq != 2 || res.More {
		t.Fatalf("sync: %+v %v", res, err)
	}
	res, err = s.Sync(ctx, bob.Identity, nil, 2)
	if err != nil || len(res.Messages) != 2 || !res.More || res.Conversations[0].ReadSeq != 2 {
		t.Fatalf("limited sync: %+v %v", res, err)
	}
}

func TestDevicePolicy(t *testing.T) {
	tests := []struct {
		policy        DevicePolicy
		reject        bool
		first, second [2]string // device, platform
		wantKick      bool
		wantErr       wire.Code
	}{
		{DevicesUnlimited, false, [2]string{"a", "ios"}, [2]string{"b", "ios"}, false, 0},
		{DevicesUnlimited, false, [2]string{"a", "ios"}, [2]string{"a", "ios"}, true, 0},
		{DevicesSingle, false, [2]string{"a", "ios"}, [2]string{"b", "linux"}, true, 0},
		{DevicesSingle, true, [2]string{"a", "ios"}, [2]string{"b", "linux"}, false, wire.CodeDeviceLimit},
		{DevicesPerPlatform, false, [2]string{"a", "ios"}, [2]string{"b", "linux"}, false, 0},
		{DevicesPerPlatform, false, [2]string{"a", "ios"}, [2]string{"b", "android"}, true, 0},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i, tt.policy), func(t *testing.T) {
			s, bus := newTestService(t, func(c *Config) { c.DevicePolicy = tt.policy; c.RejectNewDevice = tt.reject })
			first := login(t, s, "alice", tt.first[0], tt.first[1])
			bus.Add(&clusterpb.ConnRef{Gateway: "gw1", Conn: 5, UserId: first.Identity.UserID, SessionId: first.Identity.SessionID})
			_, err := s.Login(context.Background(), "alice", "password1", tt.second[0], tt.second[1])
			if Code(err) != tt.wantErr {
				t.Fatalf("second login: %v, want code %v", err, tt.wantErr)
			}
			kicked := false
			for _, d := range bus.take() {
				if k := d.env.GetKick(); k != nil && k.Code == uint32(wire.CodeReplaced) && d.close != 0 && slices.Contains(d.conns, 5) {
					kicked = true
				}
			}
			if kicked != tt.wantKick {
				t.Fatalf("kicked = %v, want %v", kicked, tt.wantKick)
			}
			_, err = s.Authenticate(context.Background(), first.Token)
			if (err != nil) != tt.wantKick {
				t.Fatalf("first token after second login: %v, want revoked=%v", err, tt.wantKick)
			}
		})
	}
}

func TestHandleUnknownAndUndecodable(t *testing.T) {
	s, _ := newTestService(t, nil)
	got := make(chan []byte, 2)
	s.handle(&clusterpb.Request{Conn: &clusterpb.ConnRef{UserId: 1}, Envelope: []byte{0xff, 0xff}}, func(b []byte) { got <- b })
	env, _ := proto.Marshal(&magpiepb.Envelope{Id: 7})
	s.handle(&clusterpb.Request{Conn: &clusterpb.ConnRef{UserId: 1}, Envelope: env}, func(b []byte) { got <- b })
	for _, want := range []wire.Code{wire.CodeProtocolError, wire.CodeUnknownCommand} {
		var e magpiepb.Envelope
		if err := proto.Unmarshal(<-got, &e); err != nil || e.GetError().GetCode() != uint32(want) {
			t.Fatalf("got %+v, want code %v", &e, want)
		}
	}
}

// With --device-reject, only a device that is online blocks a new login:
// a crashed or closed app must not lock its user out until the token expires.
func TestDeviceRejectIgnoresOfflineSessions(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.DevicePolicy = DevicesSingle; c.RejectNewDevice = true })
	first := login(t, s, "alice", "phone", "ios") // never connected
	second, err := s.Login(context.Background(), "alice", "password1", "laptop", "linux")
	if err != nil {
		t.Fatalf("login while the other device is offline: %v", err)
	}
	if _, err := s.Authenticate(context.Background(), first.Token); err == nil {
		t.Fatal("the offline device's session still works; want it replaced")
	}
	if _, err := s.Authenticate(context.Background(), second.Token); err != nil {
		t.Fatalf("new session: %v", err)
	}
}

// A connection whose token expired while it was connected is refused and
// closed, so the client logs in again.
func TestExpiredSessionOnLiveConnection(t *testing.T) {
	s, bus := newTestService(t, nil)
	res := login(t, s, "alice", "a", "")
	reply, err := s.AuthenticateConn(context.Background(), res.Token, &clusterpb.ConnRef{Gateway: "gw1", Conn: 4})
	if err != nil || reply.Conn.ExpiresMs != res.ExpiresAt.UnixMilli() {
		t.Fatalf("auth reply conn %+v, want the session's expiry", reply.Conn)
	}
	s.now = func() time.Time { return res.ExpiresAt.Add(time.Second) }
	env, _ := proto.Marshal(&magpiepb.Envelope{Id: 9, Body: &magpiepb.Envelope_Online{Online: &magpiepb.OnlineRequest{}}})
	got := make(chan []byte, 1)
	s.handle(&clusterpb.Request{Conn: reply.Conn, Envelope: env}, func(b []byte) { got <- b })
	var e magpiepb.Envelope
	if err := proto.Unmarshal(<-got, &e); err != nil || e.GetError().GetCode() != uint32(wire.CodeSessionExpired) || e.Id != 9 {
		t.Fatalf("got %v, want session_expired for request 9", &e)
	}
	d := bus.waitDeliveries(t, 1)
	if d[0].close != uint32(wire.CodeSessionExpired) || d[0].conns[0] != 4 {
		t.Fatalf("delivery %+v, want the connection closed", d[0])
	}
}

// A committed batch ACKs every sender before it delivers any message:
// the first message's fan-out must not hold back the second's ACK.
func TestBatchAcksBeforeFanOut(t *testing.T) {
	s, bus := newTestService(t, nil)
	alice := login(t, s, "alice", "laptop", "").Identity
	bob := login(t, s, "bob", "phone", "").Identity
	bus.Add(&clusterpb.ConnRef{Gateway: "gw1", Conn: 7, UserId: bob.UserID})
	conv := store.PrivateConversationID(alice.UserID, bob.UserID)
	var acks []uint64
	var sends []*pendingSend
	var results []store.AppendResult
	for seq := uint64(1); seq <= 3; seq++ {
		sends = append(sends, &pendingSend{from: alice, peer: "bob", peerID: bob.UserID, done: func(a Ack, err error) {
			if err != nil {
				t.Errorf("ack %d: %v", seq, err)
			}
			if d := len(bus.take()); d != 0 {
				t.Errorf("ack of seq %d came after %d deliveries", a.Seq, d)
			}
			acks = append(acks, a.Seq)
		}})
		results = append(results, store.AppendResult{Message: store.Message{ConversationID: conv, Seq: seq, SenderID: alice.UserID, Text: "hi"}})
	}
	s.finish(sends, results, nil)
	if !slices.Equal(acks, []uint64{1, 2, 3}) {
		t.Errorf("acks %v, want [1 2 3] in order", acks)
	}
	if d := bus.take(); len(d) != 3 {
		t.Errorf("%d deliveries after the ACKs, want 3", len(d))
	}
}
