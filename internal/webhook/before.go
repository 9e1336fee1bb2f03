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
	if h.cfg.BeforeSendURL == "" {
		return nil
	}
	body, err := json.Marshal(m)
	if err != nil {
		return h.policyFailed(m, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.BeforeSendTimeout)
	defer cancel()
	status, resp, err := h.post(ctx, h.cfg.BeforeSendURL, "message.before_send", newID(), body)
	if err != nil {
		return h.policyFailed(m, err)
	}
	if status != 200 {
		return h.policyFailed(m, fmt.Errorf("status %d", status))
	}
	var v verdict
	if err := json.Unmarshal(resp, &v); err != nil || v.Allow == nil {
		return h.policyFailed(m, fmt.Errorf("answer is not {\"allow\":bool}"))
	}
	if *v.Allow {
		return nil
	}
	return logic.Vetoed(cleanReason(v.Reason))
}

func (h *Hooks) policyFailed(m logic.OutgoingMessage, err error) error {
	h.log.Warn("webhook: before-send hook failed", "url", redact(h.cfg.BeforeSendURL), "fail_open", h.cfg.FailOpen,
		"conversation", m.ConversationID, "err", err)
	if h.cfg.FailOpen {
		return nil
	}
	return &logic.Error{Kind: logic.KindUnavailable, Msg: "message policy check failed", RetryAfter: 1000, Err: ErrPolicyFailed}
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
