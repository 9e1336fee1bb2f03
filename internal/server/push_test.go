package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/webhook"
)

// signedPush posts body to /v1/push as a backend holding key would.
func signedPush(t *testing.T, base, key, secret, body string) (int, map[string]any) {
	t.Helper()
	nb := make([]byte, 16)
	_, _ = rand.Read(nb)
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), hex.EncodeToString(nb)
	req, _ := http.NewRequest("POST", base+"/v1/push", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(push.HeaderKey, key)
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, nonce)
	req.Header.Set(push.HeaderSignature, push.Sign([]byte(secret), "POST", "/v1/push", ts, nonce, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A signed push reaches an online user (transient) or is stored and
// reported to the webhooks (stored); uploads land in the data directory.
func TestSignedPushWebhooksAndFiles(t *testing.T) {
	const whSecret = "webhook-secret-0123456789"
	var mu sync.Mutex
	var events []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Magpie-Signature") != webhook.Signature([]byte(whSecret), b) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		events = append(events, r.Header.Get("X-Magpie-Event"))
		mu.Unlock()
	}))
	defer hook.Close()

	cfg := testConfig(t, t.TempDir())
	cfg.PushKeys = config.PushKeys{"crm": []byte("crm-secret-0123456789")}
	cfg.WebhookURLs = []string{hook.URL}
	cfg.WebhookSecret = whSecret
	n := startNode(t, cfg)
	base := "http://" + n.HTTPAddr()
	newClient(t, n, "alice", "laptop", "tcp", true)
	_, bob := newClient(t, n, "bob", "phone", "tcp", true)

	code, out := signedPush(t, base, "crm", "crm-secret-0123456789", `{"to_users":["bob"],"text":"shipped","transient":true}`)
	if code != 200 || out["delivered"] != 1.0 {
		t.Fatalf("transient push: %d %v", code, out)
	}
	waitFor(t, "bob's notification", func() bool {
		bob.mu.Lock()
		defer bob.mu.Unlock()
		for _, m := range bob.msgs {
			if m.Text == "shipped" && m.Transient && m.Seq == 0 && m.Kind == client.KindNotification && m.Sender == "crm" {
				return true
			}
		}
		return false
	})

	code, out = signedPush(t, base, "crm", "crm-secret-0123456789", `{"to_users":["bob"],"text":"invoice","from":"alice"}`)
	if code != 200 || out["stored"] != 1.0 {
		t.Fatalf("stored push: %d %v", code, out)
	}
	waitFor(t, "the stored push and its webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 1 && events[0] == "message.stored" && slices.Contains(bob.texts(), "invoice")
	})

	if code, out := signedPush(t, base, "crm", "wrong-secret-0123456789", `{"to_users":["bob"],"text":"x","transient":true}`); code != 401 {
		t.Fatalf("wrong secret: %d %v", code, out)
	}

	// Upload through the real listener.
	tok := pushLogin(t, base, "alice")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "hello.txt")
	_, _ = fw.Write([]byte("hello file"))
	_ = mw.Close()
	req, _ := http.NewRequest("POST", base+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != 201 || up["size"] != 10.0 {
		t.Fatalf("upload: %d %v", resp.StatusCode, up)
	}
	req, _ = http.NewRequest("GET", base+"/v1/files/"+up["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "hello file" {
		t.Fatalf("download: %d %q", resp.StatusCode, got)
	}
}

func pushLogin(t *testing.T, base, user string) string {
	t.Helper()
	resp, err := http.Post(base+"/v1/login", "application/json",
		bytes.NewBufferString(`{"username":"`+user+`","password":"password-`+user+`","device":"http"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("login %s: %d %v", user, resp.StatusCode, err)
	}
	return out.Token
}
