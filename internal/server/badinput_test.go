package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// The bad inputs of the reliability list (shared/docs/reliability-and-
// security.md, "Bad inputs"), each through the real transports of one
// node, each with its exact answer, and the node still up afterwards.

// rawPost sends body as is.
func rawPost(t *testing.T, n *Node, path, token, body string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out := reply{status: resp.StatusCode, body: map[string]any{}}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	return out
}

// callRaw sends one encoded envelope over TCP and returns the answer with
// its id.
func (s *rawSession) callRaw(payload []byte, id uint64) *magpiepb.Envelope {
	s.t.Helper()
	s.w(wire.AppendFrame(nil, payload))
	for {
		p, err := s.r.ReadFrame()
		if err != nil {
			s.t.Fatalf("read: %v", err)
		}
		var got magpiepb.Envelope
		if err := proto.Unmarshal(p, &got); err != nil {
			s.t.Fatal(err)
		}
		if got.Id == id {
			return &got
		}
	}
}

// stillUp checks that the session answers a ping.
func (s *rawSession) stillUp(id uint64) {
	s.t.Helper()
	if got := s.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: 1}}}); got.GetPong() == nil {
		s.t.Fatalf("ping after a bad request: %v", got)
	}
}

func wantError(t *testing.T, what string, env *magpiepb.Envelope, code wire.Code, msg string) {
	t.Helper()
	e := env.GetError()
	if e == nil || wire.Code(e.Code) != code || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: got %v, want error{%d} mentioning %q", what, env, code, msg)
	}
}

// badUTF8 encodes env with invalid UTF-8 in place of "@@".
func badUTF8(t *testing.T, env *magpiepb.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte("@@"), []byte{0xff, 0xfe}, 1)
}

// wsJSON is a raw WebSocket JSON session.
type wsJSON struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialWS(t *testing.T, n *Node, protocol string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol}}
	ws, resp, err := d.Dial("ws://"+n.HTTPAddr()+"/v1/ws", hdr)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

func authedWSJSON(t *testing.T, n *Node, tok string) *wsJSON {
	t.Helper()
	ws, _, err := dialWS(t, n, wire.SubprotocolJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	s := &wsJSON{t: t, ws: ws}
	if got := s.call(`{"id":1,"auth":{"token":"`+tok+`"}}`, 1); got["auth_ok"] == nil {
		t.Fatalf("auth: %v", got)
	}
	return s
}

// call sends a text frame and returns the answer with id.
func (s *wsJSON) call(frame string, id uint64) map[string]any {
	s.t.Helper()
	if err := s.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		s.t.Fatal(err)
	}
	for {
		_, b, err := s.ws.ReadMessage()
		if err != nil {
			s.t.Fatalf("read after %.60q: %v", frame, err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			s.t.Fatal(err)
		}
		gotID, _ := got["id"].(string) // protojson writes uint64 as a string
		if gotID == strconv.FormatUint(id, 10) || id == 0 && gotID == "" {
			return got
		}
	}
}

func (s *wsJSON) wantError(frame string, id uint64, code wire.Code) {
	s.t.Helper()
	got := s.call(frame, id)
	e, _ := got["error"].(map[string]any)
	if c, _ := e["code"].(float64); wire.Code(c) != code {
		s.t.Errorf("%.80q: got %v, want error{%d} for id %d", frame, got, code, id)
	}
}

func (s *wsJSON) stillUp() {
	s.t.Helper()
	if got := s.call(`{"id":99,"ping":{}}`, 99); got["pong"] == nil {
		s.t.Fatalf("ping after a bad request: %v", got)
	}
}

// conversationsOf is how many conversations u has: 0 means nothing was
// stored for them.
func conversationsOf(u *httpUser) int {
	u.t.Helper()
	r := u.do("GET", "/v1/conversations", nil)
	if r.status != 200 {
		u.t.Fatalf("conversations: %d %v", r.status, r.body)
	}
	l, _ := r.body["conversations"].([]any)
	return len(l)
}

func checkHealthy(t *testing.T, n *Node) {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server not healthy after bad input: %v", err)
	}
	resp.Body.Close()
}

const testPushKey, testPushSecret = "crm", "crm-secret-0123456789"

func TestInvalidUTF8EndToEnd(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.PushKeys = config.PushKeys{testPushKey: []byte(testPushSecret)}
	n := startNode(t, cfg)
	alice, bob := signup(t, n, "alice", true), signup(t, n, "bob", true)
	base := "http://" + n.HTTPAddr()

	for _, body := range []string{
		"{\"to_user\":\"bob\",\"text\":\"a\xffb\"}",
		"{\"to_user\":\"bob\",\"text\":\"\xed\xa0\x80\"}", // a surrogate encoded as UTF-8
		`{"to_user":"bob","text":"a\ud800b"}`,
		`{"to_user":"bob","text":"\udc00"}`,
		"{\"to_user\":\"b\xffob\",\"text\":\"x\"}",
	} {
		if r := rawPost(t, n, "/v1/messages", alice.token, body); r.status != 400 || r.code() != "bad_request" {
			t.Errorf("HTTP send %q: %d %v, want 400 bad_request", body, r.status, r.body)
		}
	}
	for _, body := range []string{
		"{\"to_users\":[\"bob\"],\"text\":\"a\xffb\",\"from\":\"alice\"}",
		`{"to_users":["bob"],"text":"a\ud800","from":"alice"}`,
		"{\"to_users\":[\"bob\"],\"text\":\"a\xffb\",\"transient\":true}",
	} {
		if status, out := signedPush(t, base, testPushKey, testPushSecret, body); status != 400 {
			t.Errorf("push %q: %d %v, want 400", body, status, out)
		}
	}

	s := authedRaw(t, n, alice.token)
	got := s.callRaw(badUTF8(t, &magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "a@@b", ClientMsgId: "m1"}}}), 2)
	wantError(t, "TCP send", got, wire.CodeBadRequest, "UTF-8")
	got = s.callRaw(badUTF8(t, &magpiepb.Envelope{Id: 3, Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{ConversationId: "p_1_2", Seq: 1, Text: "@@"}}}), 3)
	wantError(t, "TCP edit", got, wire.CodeBadRequest, "UTF-8")
	s.stillUp(4)

	w := authedWSJSON(t, n, alice.token)
	w.wantError("{\"id\":2,\"send\":{\"to_user\":\"bob\",\"text\":\"a\xffb\"}}", 2, wire.CodeBadRequest)
	w.wantError(`{"id":3,"send":{"to_user":"bob","text":"a\ud800b"}}`, 3, wire.CodeBadRequest)
	w.stillUp()

	if a, b := conversationsOf(alice), conversationsOf(bob); a != 0 || b != 0 {
		t.Fatalf("alice has %d and bob %d conversations after refused sends, want none", a, b)
	}
	checkHealthy(t, n)
}

func TestDuplicateKeysEndToEnd(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.PushKeys = config.PushKeys{testPushKey: []byte(testPushSecret)}
	n := startNode(t, cfg)
	alice, carol := signup(t, n, "alice", true), signup(t, n, "carol", true)
	signup(t, n, "bob", true)
	base := "http://" + n.HTTPAddr()

	tests := []struct{ path, body string }{
		{"/v1/messages", `{"to_user":"bob","to_user":"carol","text":"x"}`},
		{"/v1/messages", `{"to_user":"bob","TO_USER":"carol","text":"x"}`},
		{"/v1/messages", `{"to_user":"bob","text":"x","to_user":"carol"}`},
		{"/v1/groups", `{"name":"team","members":["bob"],"members":["carol"]}`},
		{"/v1/groups", `{"name":"team","name":"other"}`},
		{"/v1/login", `{"username":"alice","password":"password-alice","username":"carol"}`},
	}
	for _, tt := range tests {
		if r := rawPost(t, n, tt.path, alice.token, tt.body); r.status != 400 || r.code() != "bad_request" || !strings.Contains(r.body["error"].(map[string]any)["message"].(string), "duplicate key") {
			t.Errorf("%s %s: %d %v, want 400 bad_request duplicate key", tt.path, tt.body, r.status, r.body)
		}
	}
	if status, out := signedPush(t, base, testPushKey, testPushSecret, `{"to_users":["bob"],"text":"x","from":"alice","to_users":["carol"]}`); status != 400 {
		t.Errorf("push with duplicate to_users: %d %v, want 400", status, out)
	}
	w := authedWSJSON(t, n, alice.token)
	w.wantError(`{"id":2,"send":{"to_user":"bob","text":"x","to_user":"carol"}}`, 2, wire.CodeBadRequest)
	w.wantError(`{"id":3,"send":{"to_user":"bob","toUser":"carol","text":"x"}}`, 3, wire.CodeBadRequest)
	w.stillUp()
	if c := conversationsOf(carol); c != 0 {
		t.Fatalf("carol has %d conversations, want none", c)
	}
	if r := alice.do("GET", "/v1/groups", nil); r.status != 200 || len(r.body["groups"].([]any)) != 0 {
		t.Fatalf("groups after refused creates: %d %v", r.status, r.body)
	}
	checkHealthy(t, n)
}

func TestHugeArrays(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.PushKeys = config.PushKeys{testPushKey: []byte(testPushSecret)}
	n := startNode(t, cfg)
	alice := signup(t, n, "alice", true)
	signup(t, n, "bob", true)
	base := "http://" + n.HTTPAddr()

	million := "[" + strings.Repeat("0,", 1<<20-1) + "0]"
	if r := rawPost(t, n, "/v1/messages", alice.token, `{"to_user":"bob","text":"x","x":`+million+`}`); r.status != 413 || r.code() != "too_large" {
		t.Errorf("HTTP body with a 1M-element array: %d %v, want 413 too_large", r.status, r.body)
	}
	names := `"bob"` + strings.Repeat(`,"bob"`, 1<<20-1)
	if status, out := signedPush(t, base, testPushKey, testPushSecret, `{"to_users":[`+names+`],"text":"x","transient":true}`); status != 413 {
		t.Errorf("push to 1M users: %d %v, want 413", status, out)
	}
	names = `"bob"` + strings.Repeat(`,"bob"`, 1000)
	if status, out := signedPush(t, base, testPushKey, testPushSecret, `{"to_users":[`+names+`],"text":"x","transient":true}`); status != 413 ||
		!strings.Contains(out["error"].(map[string]any)["message"].(string), "at most 1000") {
		t.Errorf("push to 1001 users: %d %v, want 413 at most 1000", status, out)
	}

	s := authedRaw(t, n, alice.token)
	sync := &magpiepb.SyncRequest{}
	for range wire.MaxCursors + 1 {
		sync.Cursors = append(sync.Cursors, &magpiepb.Cursor{ConversationId: "p"})
	}
	got := s.call(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Sync{Sync: sync}})
	wantError(t, "TCP sync with 10,001 cursors", got, wire.CodeTooLarge, "too many cursors")
	s.stillUp(3)

	w := authedWSJSON(t, n, alice.token)
	w.wantError(`{"id":2,"sync":{"cursors":[`+strings.TrimSuffix(strings.Repeat(`{},`, wire.MaxCursors+1), ",")+`]}}`, 2, wire.CodeTooLarge)
	w.stillUp()

	// A repeated field of a million entries does not fit in a frame.
	big := &magpiepb.SyncRequest{}
	for range 1 << 20 {
		big.Cursors = append(big.Cursors, &magpiepb.Cursor{})
	}
	b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Sync{Sync: big}})
	c := rawTCP(t, n) // after the slow part: the auth timeout runs from here
	// Its first 100 KB: the server answers at the header. (Writing all 2 MB
	// would outrun the 1 MB the server drains before it closes, and the
	// reset could overtake the kick.)
	if _, err := c.Write(wire.AppendFrame(nil, b)[:100<<10]); err != nil {
		t.Fatal(err)
	}
	if k := readKick(t, c).GetKick(); k == nil || k.Code != uint32(wire.CodeTooLarge) {
		t.Fatalf("got %v, want kick too_large", k)
	}
	checkHealthy(t, n)
}

func TestNumbersOutOfRangeOnTheLongConnection(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	tok := loginToken(t, n, "alice")
	w := authedWSJSON(t, n, tok)
	for _, tt := range []struct {
		frame string
		id    uint64
	}{
		{`{"id":2,"receipt":{"conversation_id":"p_1_2","seq":-1}}`, 2},
		{`{"id":3,"receipt":{"conversation_id":"p_1_2","seq":"18446744073709551616"}}`, 3},
		{`{"id":4,"receipt":{"conversation_id":"p_1_2","seq":1e400}}`, 4},
		{`{"id":5,"history":{"conversation_id":"p_1_2","limit":4294967296}}`, 5},
		{`{"id":6,"ping":{"time":"9223372036854775808"}}`, 6},
		{`{"id":-1,"ping":{}}`, 0},
		{`{"id":18446744073709551616,"ping":{}}`, 0},
	} {
		w.wantError(tt.frame, tt.id, wire.CodeBadRequest)
	}
	w.stillUp()

	// An overflowing varint is not protobuf: the connection closes with 19.
	for _, payload := range [][]byte{
		append(append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10)...), 0x01),
		append(append([]byte{0x08}, bytes.Repeat([]byte{0x80}, 9)...), 0x02),
	} {
		c := rawTCP(t, n)
		b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}})
		_, _ = c.Write(wire.AppendFrame(nil, b))
		if env := readKick(t, c); env.GetAuthOk() == nil {
			t.Fatalf("auth: %v", env)
		}
		_, _ = c.Write(wire.AppendFrame(nil, payload))
		if k := readKick(t, c).GetKick(); k == nil || k.Code != uint32(wire.CodeProtocolError) {
			t.Fatalf("overflowing varint %x: got %v, want kick protocol_error", payload, k)
		}
	}
	checkHealthy(t, n)
}

func TestSubjectCharactersInIdentifiers(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	loginToken(t, n, "bob")
	tok := loginToken(t, n, "alice")
	s := authedRaw(t, n, tok)
	id := uint64(10)
	next := func() uint64 { id++; return id }
	for _, bad := range []string{"a.b", "a*", "a>", "a b", ">", "*"} {
		wantError(t, "client_msg_id "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "x", ClientMsgId: bad}}}),
			wire.CodeBadRequest, "client_msg_id")
		wantError(t, "to_user "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "b" + bad, Text: "x"}}}),
			wire.CodeBadRequest, "to_user")
		wantError(t, "to_group "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToGroup: "g_1" + bad, Text: "x"}}}),
			wire.CodeBadRequest, "group id")
		wantError(t, "history "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{ConversationId: "p_1_2" + bad}}}),
			wire.CodeBadRequest, "conversation_id")
		wantError(t, "receipt "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{ConversationId: "p_1_2" + bad, Seq: 1, Kind: magpiepb.ReceiptKind_RECEIPT_KIND_READ}}}),
			wire.CodeBadRequest, "conversation_id")
		wantError(t, "sync cursor "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_Sync{Sync: &magpiepb.SyncRequest{Cursors: []*magpiepb.Cursor{{ConversationId: "p_1_2" + bad}}}}}),
			wire.CodeBadRequest, "conversation_id")
		wantError(t, "recall "+bad, s.call(&magpiepb.Envelope{Id: next(), Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{ConversationId: "p_1_2" + bad, Seq: 1}}}),
			wire.CodeBadRequest, "conversation_id")
		r := rawPost(t, n, "/v1/login", "", `{"username":"alice","password":"password-alice","device":"lap`+bad+`"}`)
		if r.status != 400 || !strings.Contains(r.body["error"].(map[string]any)["message"].(string), "device") {
			t.Errorf("login with device %q: %d %v, want 400 about the device", "lap"+bad, r.status, r.body)
		}
	}
	s.stillUp(next())
	checkHealthy(t, n)
}

func TestWebSocketAbuse(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	tok := loginToken(t, n, "alice")

	t.Run("too many headers", func(t *testing.T) {
		hdr := http.Header{}
		for i := range 2000 {
			hdr.Set("X-Padding-"+strconv.Itoa(i), strings.Repeat("p", 30))
		}
		_, resp, err := dialWS(t, n, wire.SubprotocolProto, hdr)
		if err == nil || resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %v, %v; want 431 and no upgrade", resp, err)
		}
	})
	t.Run("header announcing 2^63-1 bytes", func(t *testing.T) {
		ws, _, err := dialWS(t, n, wire.SubprotocolProto, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}})
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		// The heartbeat timeout is 90 s: the answer must not wait for it,
		// nor for the bytes announced.
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		read := func() (*magpiepb.Envelope, error) {
			_, p, err := ws.ReadMessage()
			if err != nil {
				return nil, err
			}
			var env magpiepb.Envelope
			return &env, proto.Unmarshal(p, &env)
		}
		if env, err := read(); err != nil || env.GetAuthOk() == nil {
			t.Fatalf("auth: %v %v", env, err)
		}
		hdr := binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, 1<<63-1)
		if _, err := ws.UnderlyingConn().Write(append(hdr, 0, 0, 0, 0)); err != nil {
			t.Fatal(err)
		}
		if env, err := read(); err != nil || env.GetKick().GetCode() != uint32(wire.CodeTooLarge) {
			t.Fatalf("got %v %v, want kick too_large", env, err)
		}
		_, err = read()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("got %v, want close 1009", err)
		}
	})
	checkHealthy(t, n)
}

// TestSlowlorisOnHTTP: headers trickled a byte at a time are cut at the
// header timeout (5 s), not kept open for as long as bytes keep coming.
func TestSlowlorisOnHTTP(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	c, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// One header byte every 100 ms for at most 20 s: far past the timeout.
	sent := make(chan int, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		i := 0
		for ; i < 200; i++ {
			<-tick.C
			if _, err := c.Write([]byte{"X-Slow: abcdefgh\r\n"[i%18]}); err != nil {
				break
			}
		}
		sent <- i
	}()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(bufio.NewReader(c))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the trickling connection was still open after 30 s")
	}
	if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 408")) {
		t.Fatalf("got %q, want the connection closed (or a 408)", b)
	}
	if i := <-sent; i >= 200 {
		t.Fatalf("the server took all %d trickled bytes", i)
	}
	checkHealthy(t, n)
}

// TestAuthorizationSchemeAnyCase and the push API's query string, through
// the node's HTTP listener.
func TestAuthorizationSchemeAndPushQuery(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.PushKeys = config.PushKeys{testPushKey: []byte(testPushSecret)}
	n := startNode(t, cfg)
	tok := loginToken(t, n, "alice")
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/v1/conversations", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("Authorization: %s <token>: %d, want 200", scheme, resp.StatusCode)
		}
	}
	r := rawPost(t, n, "/v1/push?to_users=carol", "", `{"to_users":["alice"],"text":"x","transient":true}`)
	if r.status != 400 || !strings.Contains(r.body["error"].(map[string]any)["message"].(string), "query string") {
		t.Errorf("push with a query string: %d %v, want 400", r.status, r.body)
	}
}

// TestLongNonASCIIBadRequest: protojson's refusal quotes the offending
// token, and the gateway cuts the reason to 200 bytes; the cut must not
// split a character, or the error frame cannot be encoded (the gateway
// panicked, taking the node down, even before authentication).
func TestLongNonASCIIBadRequest(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	// Two tokens a byte apart: whatever the length of the text before
	// the quote (protobuf-go varies its error text per build), one of
	// them puts a two-byte character across the cut.
	for _, long := range []string{strings.Repeat("é", 150), "x" + strings.Repeat("é", 150)} {
		ws, _, err := dialWS(t, n, wire.SubprotocolJSON, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		pre := &wsJSON{t: t, ws: ws}
		pre.wantError(`{"id":"`+long+`","ping":{}}`, 0, wire.CodeBadRequest)

		w := authedWSJSON(t, n, loginToken(t, n, "alice"))
		got := w.call(`{"id":7,"receipt":{"conversation_id":"p_1_2","seq":"`+long+`"}}`, 7)
		e, _ := got["error"].(map[string]any)
		if c, _ := e["code"].(float64); wire.Code(c) != wire.CodeBadRequest {
			t.Fatalf("got %v, want error{2}", got)
		}
		if m, _ := e["message"].(string); !utf8.ValidString(m) || !strings.Contains(m, "é") {
			t.Fatalf("reason %q: want valid UTF-8 quoting the token", m)
		}
		w.stillUp()
	}
	checkHealthy(t, n)
}
