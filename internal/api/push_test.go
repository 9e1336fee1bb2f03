package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/push"
)

const (
	pushKeyID  = "crm"
	pushSecret = "crm-secret-0123456789"
)

var pushNow = time.Unix(1_800_000_000, 0)

var nonceSeq atomic.Int64

func nextNonce() string { return fmt.Sprintf("nonce-%016d", nonceSeq.Add(1)) }

type signedReq struct {
	key, secret, nonce string
	ts                 int64
	body               string // what is signed
	sent               string // what is sent, if different
	signature          string // overrides the computed one
	target             string // the URL requested, if not /v1/push (the path signed is /v1/push)
}

func (a extAPI) push(r signedReq) *httptest.ResponseRecorder {
	if r.key == "" {
		r.key = pushKeyID
	}
	if r.secret == "" {
		r.secret = pushSecret
	}
	if r.nonce == "" {
		r.nonce = nextNonce()
	}
	if r.ts == 0 {
		r.ts = pushNow.Unix()
	}
	if r.sent == "" {
		r.sent = r.body
	}
	ts := strconv.FormatInt(r.ts, 10)
	sig := push.Sign([]byte(r.secret), "POST", "/v1/push", ts, r.nonce, []byte(r.body))
	if r.signature != "" {
		sig = r.signature
	}
	if r.target == "" {
		r.target = "/v1/push"
	}
	req := httptest.NewRequest("POST", r.target, bytes.NewBufferString(r.sent))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(push.HeaderKey, r.key)
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, r.nonce)
	req.Header.Set(push.HeaderSignature, sig)
	rec := httptest.NewRecorder()
	a.mux.ServeHTTP(rec, req)
	return rec
}

func newPushAPI(t *testing.T) extAPI {
	return newExtAPI(t, map[string][]byte{pushKeyID: []byte(pushSecret)}, func() time.Time { return pushNow })
}

func TestPushAccepted(t *testing.T) {
	a := newPushAPI(t)
	a.user(t, "alice")
	a.user(t, "bob")
	rec := a.push(signedReq{body: `{"to_users":["bob"],"text":"ding","transient":true}`})
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"delivered":0}` {
		t.Fatalf("transient: %d %s", rec.Code, rec.Body)
	}
	rec = a.push(signedReq{body: `{"to_users":["bob"],"text":"your invoice","from":"alice"}`})
	var out struct {
		Stored int
		Acks   []struct {
			To             string
			ConversationID string `json:"conversation_id"`
			Seq            uint64
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != 200 || err != nil || out.Stored != 1 || len(out.Acks) != 1 ||
		out.Acks[0].To != "bob" || out.Acks[0].ConversationID != "p_1_2" || out.Acks[0].Seq != 1 {
		t.Fatalf("stored: %d %s", rec.Code, rec.Body)
	}
}

func TestPushRefused(t *testing.T) {
	a := newPushAPI(t)
	a.user(t, "bob")
	body := `{"to_users":["bob"],"text":"ding","transient":true}`
	replayed := signedReq{body: body, nonce: "replayed-nonce-0001"}
	if rec := a.push(replayed); rec.Code != 200 {
		t.Fatalf("first use of the nonce: %s", errorOf(rec))
	}
	now := pushNow.Unix()
	window := fmt.Sprintf("(±300s; server time %d)", now)
	tests := []struct {
		name string
		req  signedReq
		want string
	}{
		{"replayed nonce", replayed, "401 unauthenticated push signature: nonce already used"},
		{"timestamp +301 s", signedReq{body: body, ts: now + 301}, "401 unauthenticated push signature: timestamp outside the allowed window " + window},
		{"timestamp -301 s", signedReq{body: body, ts: now - 301}, "401 unauthenticated push signature: timestamp outside the allowed window " + window},
		{"body changed by one byte", signedReq{body: body, sent: strings.Replace(body, "ding", "dong", 1)}, "401 unauthenticated push signature: signature does not match"},
		{"wrong signature", signedReq{body: body, secret: "not-the-secret-000000"}, "401 unauthenticated push signature: signature does not match"},
		{"garbage signature", signedReq{body: body, signature: "xyz"}, "401 unauthenticated push signature: X-Magpie-Signature must be 64 lowercase hex digits"},
		{"upper-case signature", signedReq{body: body, signature: strings.ToUpper(push.Sign([]byte(pushSecret), "POST", "/v1/push", strconv.FormatInt(now, 10), "upper-case-nonce-01", []byte(body))), nonce: "upper-case-nonce-01"},
			"401 unauthenticated push signature: X-Magpie-Signature must be 64 lowercase hex digits"},
		{"query string", signedReq{body: body, target: "/v1/push?to_users=carol"}, "400 bad_request the push API takes no query string (the signature does not cover one)"},
		{"empty query string", signedReq{body: body, target: "/v1/push?"}, "400 bad_request the push API takes no query string (the signature does not cover one)"},
		{"invalid UTF-8", signedReq{body: "{\"to_users\":[\"bob\"],\"text\":\"a\xffb\",\"transient\":true}"}, "400 bad_request text is not valid UTF-8 at byte 29"},
		{"lone surrogate", signedReq{body: `{"to_users":["bob"],"text":"a\ud800","transient":true}`}, "400 bad_request text is not valid UTF-8 at byte 29"},
		{"duplicate key", signedReq{body: `{"to_users":["bob"],"text":"x","to_users":["carol"],"transient":true}`}, `400 bad_request duplicate key "to_users" at byte 31`},
		{"duplicate key by case", signedReq{body: `{"to_users":["bob"],"text":"x","TO_USERS":["carol"],"transient":true}`}, `400 bad_request duplicate key "TO_USERS" at byte 31`},
		{"unknown key", signedReq{body: body, key: "intruder"}, "401 unauthenticated push signature: unknown key"},
		{"short nonce", signedReq{body: body, nonce: "abc"}, "401 unauthenticated push signature: X-Magpie-Nonce must be 16-64 printable ASCII characters"},
		{"unknown field", signedReq{body: `{"to_user":"bob","text":"x"}`}, `400 bad_request invalid JSON: json: unknown field "to_user"`},
		{"not JSON", signedReq{body: `hello`}, "400 bad_request invalid JSON at byte 0"},
		{"unknown user", signedReq{body: `{"to_users":["zed"],"text":"x","transient":true}`}, "404 not_found no such user: zed"},
		{"stored from nobody", signedReq{body: `{"to_users":["bob"],"text":"x","from":"ghost"}`}, "400 bad_request from: no such user"},
		{"body too large", signedReq{body: `{"text":"` + strings.Repeat("x", MaxBody) + `"}`}, "413 too_large body larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorOf(a.push(tt.req)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	// A missing header is named.
	req := httptest.NewRequest("POST", "/v1/push", strings.NewReader(body))
	rec := httptest.NewRecorder()
	a.mux.ServeHTTP(rec, req)
	if got, want := errorOf(rec), "401 unauthenticated push signature: missing signature header X-Magpie-Key"; got != want {
		t.Fatalf("unsigned: got %q, want %q", got, want)
	}
}

func TestPushDisabled(t *testing.T) {
	a := newExtAPI(t, nil, nil)
	if got, want := errorOf(a.push(signedReq{body: `{}`})), "404 not_found push API disabled"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPushIdempotent(t *testing.T) {
	a := newPushAPI(t)
	a.user(t, "alice")
	a.user(t, "bob")
	type ack struct {
		To             string
		ConversationID string `json:"conversation_id"`
		Seq            uint64
		ClientMsgID    string `json:"client_msg_id"`
		Duplicate      bool
	}
	send := func(body string) ack {
		t.Helper()
		rec := a.push(signedReq{body: body}) // a retry is signed again, with a new nonce
		var out struct {
			Stored int
			Acks   []ack
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != 200 || err != nil || out.Stored != 1 || len(out.Acks) != 1 {
			t.Fatalf("%s: %d %s", body, rec.Code, rec.Body)
		}
		return out.Acks[0]
	}
	body := `{"to_users":["bob"],"text":"your invoice","from":"alice","push_id":"invoice-42"}`
	first, retry := send(body), send(body)
	want := ack{To: "bob", ConversationID: "p_1_2", Seq: 1, ClientMsgID: "push:invoice-42:bob"}
	if first != want {
		t.Fatalf("first: %+v, want %+v", first, want)
	}
	want.Duplicate = true
	if retry != want {
		t.Fatalf("retry: %+v, want %+v", retry, want)
	}
	// Without push_id every request is a new message.
	plain := `{"to_users":["bob"],"text":"your invoice","from":"alice"}`
	if a1, a2 := send(plain), send(plain); a1.Seq != 2 || a2.Seq != 3 || a1.Duplicate || a2.Duplicate {
		t.Fatalf("without push_id: %+v, %+v", a1, a2)
	}
	long := strings.Repeat("p", 48)
	for _, tt := range []struct{ body, want string }{
		{`{"to_users":["bob"],"text":"x","from":"alice","push_id":"a b"}`, "400 bad_request push_id: contains a space, control or non-ASCII character"},
		{`{"to_users":["bob"],"text":"x","from":"alice","push_id":"` + long + `p"}`, "400 bad_request push_id: must be 1-48 bytes"},
		{`{"to_group":"g_12345678901","text":"x","from":"alice","push_id":"` + long + `"}`,
			`400 bad_request push_id: with target "g_12345678901" the message id "push:` + long + `:g_12345678901" would be 67 bytes, limit 64; use a shorter push_id`},
	} {
		if got := errorOf(a.push(signedReq{body: tt.body})); got != tt.want {
			t.Fatalf("got %q, want %q", got, tt.want)
		}
	}
}
