package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/magpie-im/magpie/internal/logic"
)

// ErrPolicyFailed is a before-send hook that failed or timed out while
// the configuration says to fail closed.
var ErrPolicyFailed = errors.New("message policy check failed")

// maxReason bounds the veto reason shown to the sender.
const maxReason = 200

// verdict is what the before-send URL answers.
type verdict struct {
	Allow  *bool  `json:"allow"`
	Reason string `json:"reason"`
}

// BeforeSend implements logic.Hooks: it POSTs the message to the
// before-send URL and waits at most BeforeSendTimeout for
// 200 {"allow":true} or {"allow":false,"reason":"…"}. Anything else (an
// error, a timeout, another status, a body without "allow") allows the
// message when FailOpen, and otherwise refuses it with code unavailable.
func (h *Hooks) BeforeSend(ctx context.Context, m logic.OutgoingMessage) error {
	return h.veto(ctx, h.cfg.BeforeSendURL, "message.before_send", m, "message refused by policy", "conversation", m.ConversationID)
}

// BeforeAdd implements logic.Hooks like BeforeSend, with the before-add
// URL: event friend.before_add or group.before_member_add.
func (h *Hooks) BeforeAdd(ctx context.Context, a logic.AddRequest) error {
	typ := "friend.before_add"
	if a.Kind == "member" {
		typ = "group.before_member_add"
	}
	return h.veto(ctx, h.cfg.BeforeAddURL, typ, a, "refused by policy", "actor", a.Actor)
}

// veto asks url about v and turns its answer into nil or a refusal.
func (h *Hooks) veto(ctx context.Context, url, typ string, v any, defaultReason, logKey, logVal string) error {
	if url == "" {
		return nil
	}
	body, err := json.Marshal(v)
	if err != nil {
		return h.policyFailed(url, logKey, logVal, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.BeforeSendTimeout)
	defer cancel()
	status, resp, err := h.post(ctx, url, typ, newID(), body)
	if err != nil {
		return h.policyFailed(url, logKey, logVal, err)
	}
	if status != 200 {
		return h.policyFailed(url, logKey, logVal, fmt.Errorf("status %d", status))
	}
	var vd verdict
	if err := json.Unmarshal(resp, &vd); err != nil || vd.Allow == nil {
		return h.policyFailed(url, logKey, logVal, fmt.Errorf("answer is not {\"allow\":bool}"))
	}
	if *vd.Allow {
		return nil
	}
	reason := cleanReason(vd.Reason)
	if reason == "" {
		reason = defaultReason
	}
	return logic.Vetoed(reason)
}

func (h *Hooks) policyFailed(url, logKey, logVal string, err error) error {
	h.log.Warn("webhook: veto hook failed", "url", redact(url), "fail_open", h.cfg.FailOpen, logKey, logVal, "err", err)
	if h.cfg.FailOpen {
		return nil
	}
	msg := "message policy check failed"
	if url != h.cfg.BeforeSendURL {
		msg = "add policy check failed"
	}
	return &logic.Error{Kind: logic.KindUnavailable, Msg: msg, RetryAfter: 1000, Err: ErrPolicyFailed}
}

// cleanReason keeps a veto reason printable and short.
func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	for len(s) > maxReason {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return strings.TrimSpace(s)
}
