package logic

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

func TestEveryKindHasACode(t *testing.T) {
	for k := range numKinds {
		if codes[k] == 0 {
			t.Errorf("kind %d has no wire code", k)
		}
	}
}

func TestCode(t *testing.T) {
	for _, tt := range []struct {
		name  string
		err   error
		code  wire.Code
		msg   string
		retry int
	}{
		{"nil", nil, 0, "", 0},
		{"invalid", invalid("to_user is required"), wire.CodeBadRequest, "to_user is required", 0},
		{"too large", tooLarge("too many cursors"), wire.CodeTooLarge, "too many cursors", 0},
		{"wrapped", fmt.Errorf("send: %w", notFound("no such user", store.ErrNotFound)), wire.CodeNotFound, "no such user", 0},
		{"rate limited", rateLimited("slow down", 1500e6), wire.CodeRateLimited, "slow down", 1501},
		{"busy", errBusy, wire.CodeRateLimited, "server busy, retry", 100},
		{"unavailable", unavailable("message not stored, retry", 200e6, errors.New("disk")), wire.CodeUnavailable, "message not stored, retry", 200},
		{"refusal", fmt.Errorf("store: %w", rules.Refuse(rules.Blocked)), rules.Refuse(rules.Blocked).Code(), rules.Refuse(rules.Blocked).Error(), 0},
		{"sentinel", ErrInvalidCredentials, wire.CodeInvalidCredential, ErrInvalidCredentials.Error(), 0},
		{"stopped", ErrStopped, wire.CodeUnavailable, "service unavailable, retry", 0},
		{"store not member", fmt.Errorf(`conversation "p_3_4": %w`, store.ErrNotMember), wire.CodeNotMember, "not a member of the conversation", 0},
		{"store exists", store.ErrExists, wire.CodeConflict, strings.TrimPrefix(store.ErrExists.Error(), "store: "), 0},
		{"deadline", context.DeadlineExceeded, wire.CodeUnavailable, "service unavailable, retry", 0},
		{"internal", errors.New("disk on fire"), wire.CodeInternal, "internal error", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Code(tt.err); got != tt.code {
				t.Errorf("Code = %v, want %v", got, tt.code)
			}
			if tt.err == nil {
				return
			}
			if got := Message(tt.err); got != tt.msg {
				t.Errorf("Message = %q, want %q", got, tt.msg)
			}
			if got := RetryAfter(tt.err); got != tt.retry {
				t.Errorf("RetryAfter = %d, want %d", got, tt.retry)
			}
		})
	}
}
