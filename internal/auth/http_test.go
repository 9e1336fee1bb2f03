package auth_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/webhook"
)

const httpSecret = "auth-secret-0123456789"

// endpoint is the operator's auth endpoint: it checks the signature like
// a webhook receiver would, then answers from its table.
func endpoint(t *testing.T, answer func(ask map[string]string) (int, string)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if got, want := r.Header.Get("X-Magpie-Signature"), webhook.Signature([]byte(httpSecret), body); !hmac.Equal([]byte(got), []byte(want)) {
			t.Errorf("signature %q, want %q (as the webhooks sign)", got, want)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-Magpie-Timestamp") == "" || r.Header.Get("X-Magpie-Delivery") == "" || !strings.HasPrefix(r.Header.Get("X-Magpie-Event"), "auth.") {
			t.Errorf("headers %v: want X-Magpie-Timestamp, -Delivery and an auth.* event", r.Header)
		}
		var ask map[string]string
		if err := json.Unmarshal(body, &ask); err != nil {
			t.Errorf("body %q: %v", body, err)
		}
		if ask["type"] != strings.TrimPrefix(r.Header.Get("X-Magpie-Event"), "auth.") {
			t.Errorf("type %q under event %q", ask["type"], r.Header.Get("X-Magpie-Event"))
		}
		status, resp := answer(ask)
		w.WriteHeader(status)
		io.WriteString(w, resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newHTTP(t *testing.T, url string, timeout time.Duration) *auth.HTTPSource {
	t.Helper()
	h, err := auth.NewHTTP(auth.HTTPConfig{URL: url, Secret: []byte(httpSecret), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHTTPPassword(t *testing.T) {
	srv := endpoint(t, func(ask map[string]string) (int, string) {
		switch {
		case ask["username"] == "carol" && ask["password"] == "right-pass":
			return 200, `{"allow":true,"display_name":"Carol C","email":"carol@example.org"}`
		case ask["username"] == "carol":
			return 200, `{"allow":false}`
		case ask["username"] == "liar":
			return 200, `{"allow":true,"username":"someone-else"}`
		case ask["username"] == "broken":
			return 500, `oops`
		case ask["username"] == "garbled":
			return 200, `{"ok":true}`
		}
		return 200, `{"allow":false,"unknown":true}`
	})
	h := newHTTP(t, srv.URL, time.Second)
	ctx := context.Background()
	p, err := h.Password(ctx, "carol", "right-pass")
	if err != nil || p != (auth.Profile{Username: "carol", DisplayName: "Carol C", Email: "carol@example.org"}) {
		t.Errorf("allowed: %+v, %v", p, err)
	}
	if _, err := h.Password(ctx, "carol", "wrong-pass"); !errors.Is(err, auth.ErrRejected) {
		t.Errorf("denied: %v, want ErrRejected", err)
	}
	if _, err := h.Password(ctx, "nobody", "x"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("unknown: %v, want ErrUnknownUser", err)
	}
	for _, name := range []string{"liar", "broken", "garbled"} {
		_, err := h.Password(ctx, name, "x")
		if err == nil || errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("%s: %v, want a failure (the login fails closed)", name, err)
		}
	}
}

func TestHTTPToken(t *testing.T) {
	srv := endpoint(t, func(ask map[string]string) (int, string) {
		switch ask["token"] {
		case "app-token-1":
			return 200, `{"allow":true,"username":"dan"}`
		case "nameless":
			return 200, `{"allow":true}`
		}
		return 200, `{"allow":false}`
	})
	h := newHTTP(t, srv.URL, time.Second)
	ctx := context.Background()
	if p, err := h.Token(ctx, "app-token-1"); err != nil || p.Username != "dan" {
		t.Errorf("allowed token: %+v, %v", p, err)
	}
	if _, err := h.Token(ctx, "other"); !errors.Is(err, auth.ErrRejected) {
		t.Errorf("denied token: %v", err)
	}
	if _, err := h.Token(ctx, "nameless"); err == nil || errors.Is(err, auth.ErrRejected) {
		t.Errorf("allowed without a username: %v, want a failure", err)
	}
}

// A slow endpoint is a failure once the timeout passes, not a yes.
func TestHTTPTimeoutFailsClosed(t *testing.T) {
	release := make(chan struct{})
	srv := endpoint(t, func(map[string]string) (int, string) {
		<-release
		return 200, `{"allow":true}`
	})
	defer close(release)
	h := newHTTP(t, srv.URL, 100*time.Millisecond)
	start := time.Now()
	_, err := h.Password(context.Background(), "carol", "right-pass")
	if err == nil || errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("slow endpoint: %v, want a failure", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow endpoint: %v, want a deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

func TestNewHTTPErrors(t *testing.T) {
	for _, c := range []auth.HTTPConfig{
		{URL: "", Secret: []byte(httpSecret)},
		{URL: "ftp://x", Secret: []byte(httpSecret)},
		{URL: "http://x", Secret: []byte("short")},
	} {
		if _, err := auth.NewHTTP(c); err == nil {
			t.Errorf("NewHTTP(%q, %d-byte secret): no error", c.URL, len(c.Secret))
		}
	}
}
