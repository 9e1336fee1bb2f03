package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// One user opening more than --max-conns-per-user WebSocket connections:
// the extra one is told rate_limited with retry_after_ms, then closed
// with 4008 (4000 + code 8).
func TestConnectionFloodClosesWith4008(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxConnsPerUser = 2
	n := startNode(t, cfg)
	tok := loginToken(t, n, "alice")
	dial := func() (*websocket.Conn, map[string]any) {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial("ws://"+n.HTTPAddr()+"/v1/ws", nil) // no subprotocol: JSON
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":"1","auth":{"token":"`+tok+`"}}`)); err != nil {
			t.Fatal(err)
		}
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("auth reply: %v", err)
		}
		var env map[string]any
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("auth reply %s: %v", b, err)
		}
		return c, env
	}
	for i := range 2 {
		if _, env := dial(); env["authOk"] == nil && env["auth_ok"] == nil {
			t.Fatalf("connection %d: %v, want auth_ok", i, env)
		}
	}
	c, env := dial()
	e, _ := env["error"].(map[string]any)
	retry, _ := e["retryAfterMs"].(float64)
	if r, ok := e["retry_after_ms"].(float64); ok {
		retry = r
	}
	if e == nil || e["code"] != float64(wire.CodeRateLimited) || retry <= 0 {
		t.Fatalf("third connection: %v, want error code 8 with retry_after_ms", env)
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4008 {
		t.Fatalf("third connection closed with %v, want close 4008", err)
	}
}

// Sends over HTTP and over the long connection draw from one per-user
// budget: either path exhausts it for the other.
func TestHTTPSendSharesTheLongConnectionBudget(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.UserSendRate = 0.5 // burst 1, then one every 2 s: each subtest has 2 s
	n := startNode(t, cfg)
	signup(t, n, "bob", true)
	sendLong := func(s *rawSession, id uint64) *magpiepb.Envelope {
		return s.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "hi"}}})
	}
	sendHTTP := func(tok string) abuseReply {
		return postFrom(t, n, "/v1/messages", "", tok, map[string]string{"to_user": "bob", "text": "hi"})
	}

	t.Run("long connection, then HTTP", func(t *testing.T) {
		tok := loginToken(t, n, "alice")
		s := authedRaw(t, n, tok)
		if got := sendLong(s, 10); got.GetSendAck() == nil {
			t.Fatalf("long send: %v", got)
		}
		sendHTTP(tok).throttled(t, "HTTP send after the budget went on the long connection")
	})
	t.Run("HTTP, then long connection", func(t *testing.T) {
		tok := loginToken(t, n, "carol")
		s := authedRaw(t, n, tok)
		if r := sendHTTP(tok); r.status != 200 {
			t.Fatalf("HTTP send: %d %v", r.status, r.body)
		}
		got := sendLong(s, 20).GetError()
		if got == nil || got.Code != uint32(wire.CodeRateLimited) || got.RetryAfterMs == 0 {
			t.Fatalf("long send after the budget went on HTTP: %v, want rate_limited with retry_after_ms", got)
		}
	})
}

// Edits and recalls are stored and fanned out like sends, so they draw
// from the same per-user budget: over HTTP nothing else limits them (an
// edit loop stored a row and a fan-out per request, without bound).
func TestChangesShareTheSendBudget(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.UserSendRate = 0.5 // burst 1: the send takes it, the change finds none
	n := startNode(t, cfg)
	signup(t, n, "bob", true)

	t.Run("HTTP", func(t *testing.T) {
		tok := loginToken(t, n, "alice")
		r := postFrom(t, n, "/v1/messages", "", tok, map[string]string{"to_user": "bob", "text": "oops"})
		if r.status != 200 {
			t.Fatalf("send: %d %v", r.status, r.body)
		}
		conv, _ := r.body["conversation_id"].(string)
		seq, _ := r.body["seq"].(float64)
		base := fmt.Sprintf("/v1/conversations/%s/messages/%d/", conv, int(seq))
		postFrom(t, n, base+"edit", "", tok, map[string]string{"text": "fixed"}).throttled(t, "HTTP edit after the budget went on a send")
		postFrom(t, n, base+"recall", "", tok, map[string]string{}).throttled(t, "HTTP recall after the budget went on a send")
	})
	t.Run("long connection", func(t *testing.T) {
		s := authedRaw(t, n, loginToken(t, n, "carol"))
		ack := s.call(&magpiepb.Envelope{Id: 10, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "oops"}}}).GetSendAck()
		if ack == nil {
			t.Fatal("send: no ack")
		}
		for id, env := range map[uint64]*magpiepb.Envelope{
			11: {Id: 11, Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{ConversationId: ack.ConversationId, Seq: ack.Seq, Text: "fixed"}}},
			12: {Id: 12, Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{ConversationId: ack.ConversationId, Seq: ack.Seq}}},
		} {
			got := s.call(env).GetError()
			if got == nil || got.Code != uint32(wire.CodeRateLimited) || got.RetryAfterMs == 0 {
				t.Fatalf("change %d after the budget went on a send: %v, want rate_limited with retry_after_ms", id, got)
			}
		}
	})
}

// upload posts data as a file for tok.
func upload(t *testing.T, n *Node, tok string, data []byte) abuseReply {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "blob.bin")
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := abuseReply{status: resp.StatusCode, body: map[string]any{}}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	if e, ok := out.body["error"].(map[string]any); ok {
		out.code, _ = e["code"].(string)
		out.msg, _ = e["message"].(string)
	}
	return out
}

// Uploads beyond --files-quota are refused with 413 and a message saying
// so; other users keep their own quota.
func TestFilesQuota(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.FilesQuota = 5000
	n := startNode(t, cfg)
	alice, bob := loginToken(t, n, "alice"), loginToken(t, n, "bob")
	chunk := bytes.Repeat([]byte{0}, 2000)
	for i := range 2 {
		if r := upload(t, n, alice, chunk); r.status != 201 {
			t.Fatalf("upload %d: %d %v", i, r.status, r.body)
		}
	}
	// 4000 used: a 2000-byte file would cross 5000, cut while streaming.
	for _, what := range []string{"crossing the quota", "at the quota"} {
		r := upload(t, n, alice, chunk)
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.msg, "quota") {
			t.Fatalf("%s: %d %v, want 413 with a quota message", what, r.status, r.body)
		}
	}
	if r := upload(t, n, alice, chunk[:500]); r.status != 201 {
		t.Fatalf("upload within what is left: %d %v", r.status, r.body)
	}
	if r := upload(t, n, bob, chunk); r.status != 201 {
		t.Fatalf("another user's upload: %d %v", r.status, r.body)
	}
}

// Each push key has its own request rate (--push-rate).
func TestPushRate(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.PushKeys = config.PushKeys{"crm": []byte("crm-secret-0123456789"), "ops": []byte("ops-secret-0123456789")}
	cfg.PushRate = 0.5 // burst 1, then one every 2 s
	n := startNode(t, cfg)
	base := "http://" + n.HTTPAddr()
	body := `{"everyone":true,"text":"hello","transient":true}`
	if code, out := signedPush(t, base, "crm", "crm-secret-0123456789", body); code != 200 {
		t.Fatalf("first push: %d %v", code, out)
	}
	code, out := signedPush(t, base, "crm", "crm-secret-0123456789", body)
	e, _ := out["error"].(map[string]any)
	if code != http.StatusTooManyRequests || e["code"] != "rate_limited" || e["retry_after_ms"] == nil {
		t.Fatalf("second push: %d %v, want 429 rate_limited with retry_after_ms", code, out)
	}
	if code, out := signedPush(t, base, "ops", "ops-secret-0123456789", body); code != 200 {
		t.Fatalf("another key: %d %v", code, out)
	}
}

// A download whose reader stops reading is cut once it falls behind
// --download-min-rate (after --download-grace).
func TestSlowDownloadIsCut(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	const size = 24 << 20 // far more than the socket buffers hold
	cfg.FilesMaxSize = size
	cfg.DownloadMinRate = 64 << 20 // the whole file within 0.4 s + grace
	cfg.DownloadGrace = 100 * time.Millisecond
	n := startNode(t, cfg)
	tok := loginToken(t, n, "alice")
	r := upload(t, n, tok, bytes.Repeat([]byte("x"), size))
	if r.status != 201 {
		t.Fatalf("upload: %d %v", r.status, r.body)
	}
	id := r.body["id"].(string)

	c, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/files/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", id, tok)
	br := bufio.NewReaderSize(c, 4096)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	// Stop reading until the server gives up on us.
	waitFor(t, "the stalled download to be cut", func() bool { return n.api.Stats().DownloadsCut >= 1 })
	got, _ := io.Copy(io.Discard, resp.Body) // what the socket buffers held, then the end
	if got >= size {
		t.Fatalf("read %d bytes, the whole file, from a cut download", got)
	}
}
