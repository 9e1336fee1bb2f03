// Package webhook implements logic.Hooks over HTTP: signed JSON events
// POSTed to configured URLs after things happen, and a "before send" URL
// that may veto each message.
//
// Events never wait for the network on the message path: After only puts
// the event on each URL's bounded queue (dropping and counting it when
// the queue is full); a small pool of workers per URL delivers them,
// retrying failures with exponential backoff and full jitter. A dead URL
// only fills its own queue.
//
// Every request carries
//
//	X-Magpie-Event:     the event type ("message.before_send" for the veto call)
//	X-Magpie-Timestamp: unix seconds when the request was made
//	X-Magpie-Delivery:  the event id, the same on every retry (for de-duplication)
//	X-Magpie-Signature: sha256=hex(HMAC-SHA256(secret, body))   (if a secret is set)
//
// Hooks is safe for concurrent use; Shutdown is safe to call twice.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/logic"
)

// Config tunes Hooks. Zero values take the defaults.
type Config struct {
	URLs   []string // receive After events
	Secret []byte   // signs every request; required with URLs

	BeforeSendURL     string        // "": no veto hook
	BeforeAddURL      string        // "": no veto of friend and member adds (same timeout and fail-open)
	BeforeSendTimeout time.Duration // default 500ms
	FailOpen          bool          // allow the message when the veto hook fails

	QueueSize      int           // events waiting per URL, default 10000
	Workers        int           // concurrent deliveries per URL, default 4
	MaxAttempts    int           // per event and URL, default 5
	BaseBackoff    time.Duration // first retry after up to this, default 200ms
	MaxBackoff     time.Duration // cap of one wait, default 10s
	AttemptTimeout time.Duration // one POST of an event, default 10s

	Client *http.Client // default: no redirects followed
}

func (c *Config) setDefaults() {
	if c.BeforeSendTimeout <= 0 {
		c.BeforeSendTimeout = 500 * time.Millisecond
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.Client == nil {
		c.Client = &http.Client{
			// A redirect would send the signed body somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: 32,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second,
			},
		}
	}
}

// Stats counts what happened to events, summed over URLs.
type Stats struct {
	Queued    int64 // accepted onto a queue
	Dropped   int64 // refused because a queue was full or Hooks was shut down
	Delivered int64 // answered 2xx
	Failed    int64 // given up after MaxAttempts (or at shutdown)
	Retries   int64 // attempts after the first
}

// Hooks implements logic.Hooks.
type Hooks struct {
	cfg   Config
	log   *slog.Logger
	sinks []*sink

	delivered, failed, retries, dropped, queued atomic.Int64

	mu       sync.RWMutex // guards closed against After's sends on the queues
	closed   bool
	stopOnce sync.Once
	abort    context.CancelFunc // ends attempts and backoffs when Shutdown's ctx runs out
	runCtx   context.Context
	wg       sync.WaitGroup // workers
}

var _ logic.Hooks = (*Hooks)(nil)

// sink is one URL with its queue.
type sink struct {
	url   string
	queue chan *payload
}

// payload is one event, encoded once and shared by every URL.
type payload struct {
	id, typ string
	body    []byte
}

// New validates cfg and starts the workers.
func New(cfg Config, log *slog.Logger) (*Hooks, error) {
	cfg.setDefaults()
	if len(cfg.URLs) > 0 && len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: --webhook-urls needs --webhook-secret (requests must be signed)")
	}
	for _, u := range append(append([]string{}, cfg.URLs...), cfg.BeforeSendURL, cfg.BeforeAddURL) {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("webhook: %q is not an http(s) URL", u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hooks{cfg: cfg, log: log, runCtx: ctx, abort: cancel}
	for _, u := range cfg.URLs {
		s := &sink{url: u, queue: make(chan *payload, cfg.QueueSize)}
		h.sinks = append(h.sinks, s)
		for i := 0; i < cfg.Workers; i++ {
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				h.work(s)
			}()
		}
	}
	return h, nil
}

// event is the JSON body of an After event.
type event struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	At   time.Time `json:"at"`
	Data any       `json:"data"`
}

// After implements logic.Hooks: it encodes e and queues it for every URL
// without waiting. e.Data must not change afterwards.
func (h *Hooks) After(e logic.Event) {
	if len(h.sinks) == 0 {
		return
	}
	id := newID()
	body, err := json.Marshal(event{ID: id, Type: e.Type, At: e.At, Data: e.Data})
	if err != nil {
		h.log.Error("webhook: encode event", "type", e.Type, "err", err)
		h.dropped.Add(int64(len(h.sinks)))
		return
	}
	p := &payload{id: id, typ: e.Type, body: body}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.sinks {
		if h.closed {
			h.dropped.Add(1)
			continue
		}
		select {
		case s.queue <- p:
			h.queued.Add(1)
		default:
			h.dropped.Add(1)
		}
	}
}

// work delivers one URL's events until the queue is closed and empty.
func (h *Hooks) work(s *sink) {
	for p := range s.queue {
		if h.deliver(s.url, p) {
			h.delivered.Add(1)
		} else {
			h.failed.Add(1)
		}
	}
}

// deliver tries one event until it succeeds, MaxAttempts run out, or
// the shutdown deadline passes.
func (h *Hooks) deliver(u string, p *payload) bool {
	var lastErr error
	if h.runCtx.Err() != nil {
		return false // shutdown ran out of time: the rest of the queue is abandoned
	}
	for attempt := 0; attempt < h.cfg.MaxAttempts; attempt++ {
		if attempt > 0 {
			h.retries.Add(1)
			t := time.NewTimer(backoff(h.cfg.BaseBackoff, h.cfg.MaxBackoff, attempt))
			select {
			case <-t.C:
			case <-h.runCtx.Done():
				t.Stop()
				return false
			}
		}
		ctx, cancel := context.WithTimeout(h.runCtx, h.cfg.AttemptTimeout)
		status, _, err := h.post(ctx, u, p.typ, p.id, p.body)
		cancel()
		if err == nil && status/100 == 2 {
			return true
		}
		if err == nil {
			err = fmt.Errorf("status %d", status)
		}
		lastErr = err
		if h.runCtx.Err() != nil {
			return false
		}
	}
	h.log.Warn("webhook: giving up on event", "url", redact(u), "type", p.typ, "id", p.id, "attempts", h.cfg.MaxAttempts, "err", lastErr)
	return false
}

// backoff is "full jitter": a uniform wait in [0, min(max, base·2^(n-1))].
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := max
	if attempt-1 < 30 {
		if b := base << (attempt - 1); b > 0 && b < max {
			d = b
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// maxResponse is how much of a response body is read.
const maxResponse = 64 << 10

// post sends one signed request and returns the status and (at most
// maxResponse bytes of) the body.
func (h *Hooks) post(ctx context.Context, u, typ, id string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "magpie-webhook/1")
	req.Header.Set("X-Magpie-Event", typ)
	req.Header.Set("X-Magpie-Delivery", id)
	req.Header.Set("X-Magpie-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	if len(h.cfg.Secret) > 0 {
		req.Header.Set("X-Magpie-Signature", Signature(h.cfg.Secret, body))
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse)) // let the connection be reused
	return resp.StatusCode, b, nil
}

// Signature is the X-Magpie-Signature value of a body: what a receiver
// recomputes (and compares with hmac.Equal).
func Signature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Stats returns the counters.
func (h *Hooks) Stats() Stats {
	return Stats{
		Queued: h.queued.Load(), Dropped: h.dropped.Load(), Delivered: h.delivered.Load(),
		Failed: h.failed.Load(), Retries: h.retries.Load(),
	}
}

// Shutdown stops accepting events and delivers what is queued, until ctx
// ends; then pending attempts are abandoned (counted as failed). Safe to
// call twice.
func (h *Hooks) Shutdown(ctx context.Context) error {
	h.stopOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		for _, s := range h.sinks {
			close(s.queue)
		}
		h.mu.Unlock()
	})
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		h.abort()
		return nil
	case <-ctx.Done():
		h.abort() // workers see runCtx end and finish quickly
		<-done
		return fmt.Errorf("webhook: events left undelivered at shutdown: %w", ctx.Err())
	}
}

func newID() string {
	b := make([]byte, 12)
	_, _ = crand.Read(b)
	return "ev_" + hex.EncodeToString(b)
}

// redact drops credentials and the query from a URL before it is logged.
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(invalid url)"
	}
	pu.User, pu.RawQuery = nil, ""
	return pu.String()
}
