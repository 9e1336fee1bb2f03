package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// fakeSender is the logic role for POST /v1/messages only: any token is
// alice's, and Send fails with err. The rest of Logic is nil (unused).
type fakeSender struct {
	Logic
	err error
}

func (fakeSender) Authenticate(context.Context, string) (logic.Identity, error) {
	return logic.Identity{UserID: 1, Username: "alice"}, nil
}

func (f fakeSender) Send(context.Context, logic.Identity, logic.SendRequest) (logic.Ack, error) {
	return logic.Ack{}, f.err
}

// The HTTP edge picks status, code and text from the error alone
// (logic.Code, then the code table's status), whatever logic returned.
func TestErrorsAtTheEdge(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		code   string
		retry  bool
	}{
		{"kind invalid", &logic.Error{Kind: logic.KindInvalid, Msg: "to_user is required"}, http.StatusBadRequest, "bad_request", false},
		{"kind rate limited", &logic.Error{Kind: logic.KindRateLimited, Msg: "slow", RetryAfter: 1500}, http.StatusTooManyRequests, "rate_limited", true},
		{"sentinel", fmt.Errorf("x: %w", store.ErrNotMember), http.StatusForbidden, "not_member", false},
		{"refusal", rules.Refuse(rules.Blocked), http.StatusForbidden, "blocked", false},
		{"deadline", context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable", false},
		{"internal", errors.New("disk on fire"), http.StatusInternalServerError, "internal", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			New(mux, fakeSender{err: tt.err}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			status, body := do(mux, "POST", "/v1/messages", "t", `{"to_user":"bob","text":"hi"}`)
			e, _ := body["error"].(map[string]any)
			if status != tt.status || e["code"] != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if _, ok := e["retry_after_ms"]; ok != tt.retry {
				t.Errorf("retry_after_ms present %v, want %v", ok, tt.retry)
			}
			if tt.code == "internal" && e["message"] != "internal error" {
				t.Errorf("internal fault shown as %q", e["message"])
			}
		})
	}
}
