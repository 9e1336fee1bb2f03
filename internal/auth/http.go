package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPConfig is the external HTTP source (--auth-url).
type HTTPConfig struct {
	URL     string
	Secret  []byte        // signs every request, required (at least 16 bytes)
	Timeout time.Duration // per request, default 2s; a timeout refuses the login
	Client  *http.Client  // default: no redirects followed
}

// HTTPSource asks the operator's endpoint. Each request is a JSON POST
// signed like the webhooks (X-Magpie-Event "auth.password" or
// "auth.token", X-Magpie-Timestamp, X-Magpie-Delivery, X-Magpie-Signature:
// sha256=hex(HMAC-SHA256(secret, body))) of
//
//	{"type":"password","username":"…","password":"…"}   or   {"type":"token","token":"…"}
//
// and the endpoint answers 200 with
//
//	{"allow":true,"username":"…","display_name":"…","email":"…"}
//	{"allow":false}                   (ErrRejected)
//	{"allow":false,"unknown":true}    (ErrUnknownUser: the next source may try)
//
// Anything else (another status, a body without "allow", a timeout) is an
// error, so the login fails closed.
type HTTPSource struct {
	cfg HTTPConfig
}

// maxHTTPAnswer bounds the endpoint's answer.
const maxHTTPAnswer = 64 << 10

// NewHTTP validates cfg.
func NewHTTP(cfg HTTPConfig) (*HTTPSource, error) {
	u, err := url.Parse(cfg.URL)
	if cfg.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--auth-url %q: want an http(s) URL", cfg.URL)
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("--auth-secret: at least 16 characters (the requests carry passwords and must be signed)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			// A redirect would send the signed credentials somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &HTTPSource{cfg: cfg}, nil
}

func (h *HTTPSource) Name() string { return HTTP }

type httpAsk struct {
	Type     string `json:"type"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

type httpAnswer struct {
	Allow       *bool  `json:"allow"`
	Unknown     bool   `json:"unknown"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email"`
}

// Password asks the endpoint about a username and password. An answer
// naming another user is an error: the endpoint vouches for the name the
// user typed, or for none.
func (h *HTTPSource) Password(ctx context.Context, username, password string) (Profile, error) {
	p, err := h.ask(ctx, "auth.password", httpAsk{Type: "password", Username: username, Password: password})
	if err != nil {
		return p, err
	}
	if p.Username == "" {
		p.Username = username
	}
	if !strings.EqualFold(p.Username, username) {
		return Profile{}, fmt.Errorf("auth: %s answered for user %q, asked about %q", redact(h.cfg.URL), p.Username, username)
	}
	return p, nil
}

// Token asks the endpoint about an app's own token; the answer names the
// user.
func (h *HTTPSource) Token(ctx context.Context, token string) (Profile, error) {
	p, err := h.ask(ctx, "auth.token", httpAsk{Type: "token", Token: token})
	if err != nil {
		return p, err
	}
	if p.Username == "" {
		return Profile{}, fmt.Errorf("auth: %s allowed a token without naming the user", redact(h.cfg.URL))
	}
	return p, nil
}

func (h *HTTPSource) ask(ctx context.Context, event string, a httpAsk) (Profile, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return Profile{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Profile{}, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "magpie-auth/1")
	req.Header.Set("X-Magpie-Event", event)
	req.Header.Set("X-Magpie-Delivery", hex.EncodeToString(id[:]))
	req.Header.Set("X-Magpie-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("X-Magpie-Signature", Signature(h.cfg.Secret, body))
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return Profile{}, fmt.Errorf("auth: %s: %w", redact(h.cfg.URL), stripURL(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPAnswer))
	if err != nil {
		return Profile{}, fmt.Errorf("auth: %s: reading the answer: %w", redact(h.cfg.URL), stripURL(err))
	}
	if resp.StatusCode != http.StatusOK {
		return Profile{}, fmt.Errorf("auth: %s answered status %d", redact(h.cfg.URL), resp.StatusCode)
	}
	var ans httpAnswer
	if err := json.Unmarshal(b, &ans); err != nil || ans.Allow == nil {
		return Profile{}, fmt.Errorf("auth: %s: the answer is not {\"allow\":bool,…}", redact(h.cfg.URL))
	}
	switch {
	case *ans.Allow:
		return Profile{Username: ans.Username, DisplayName: ans.DisplayName, Email: ans.Email}, nil
	case ans.Unknown:
		return Profile{}, ErrUnknownUser
	default:
		return Profile{}, ErrRejected
	}
}

// Signature is the X-Magpie-Signature of a body, the same as the
// webhooks' (webhook.Signature): the endpoint recomputes it with the
// secret and compares with hmac.Equal.
func Signature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// redact drops a URL's user info and query, which may hold secrets, for
// logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// stripURL unwraps a *url.Error, whose text repeats the full URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
