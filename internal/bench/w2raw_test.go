package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/server"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// startServer runs a real single-node server (SQLite in a temp directory)
// in-process and returns its HTTP base URL.
func startServer(t *testing.T) string {
	_, url := startNode(t)
	return url
}

func startNode(t *testing.T) (*server.Node, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.HTTP = "127.0.0.1:0"
	cfg.TCP = "127.0.0.1:0"
	cfg.LogLevel = "error"
	// Argon2id under -race on a loaded 2-core machine: wait for a hashing
	// slot instead of answering 503 after the default 2 s.
	cfg.HashWait = 20 * time.Second // under the bench HTTP client's 30 s timeout: then 503 and a retry
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := server.Start(ctx, cfg, server.Roles{Gateway: true, Logic: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n, "http://" + n.HTTPAddr()
}

// testLog logs the bench's lines; a line containing signalOn closes
// signal (once).
type testLog struct {
	t        *testing.T
	signalOn string
	signal   chan struct{}
	once     *sync.Once
}

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	if w.signal != nil && strings.Contains(string(b), w.signalOn) {
		w.once.Do(func() { close(w.signal) })
	}
	return len(b), nil
}

// runTestW2 runs W2 against srv with small defaults changed by o's
// non-zero fields.
func runTestW2(t *testing.T, srv, transport string, o w2Opts) *W2Result {
	t.Helper()
	rep, _, err := runTestW2Log(t, srv, transport, o, testLog{t: t})
	if err != nil {
		t.Fatalf("runW2: %v", err)
	}
	return rep
}

// runTestW2Log also returns the users' prefix.
func runTestW2Log(t *testing.T, srv, transport string, o w2Opts, log testLog) (*W2Result, string, error) {
	t.Helper()
	var rb [3]byte
	rand.Read(rb[:])
	c := &common{Server: srv, Transport: transport, Duration: time.Second, Warmup: 300 * time.Millisecond,
		UsersPrefix: "t" + hex.EncodeToString(rb[:]), stdout: io.Discard, stderr: log, set: map[string]bool{}}
	o.size, o.schedulers, o.maxOutstanding, o.connLimit = 64, 2, 10000, 500
	if o.inflight == 0 {
		o.inflight = 1
	}
	if o.settle == 0 {
		o.settle = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := runW2(ctx, c, o)
	res, _ := rep.(*W2Result)
	return res, c.UsersPrefix, err
}

// TestW2RawDropEndsRun shuts the server down while the raw driver sends:
// the run must end at once with the dropped connection as its error (the
// raw driver does not reconnect), not wait out its steps.
func TestW2RawDropEndsRun(t *testing.T) {
	t.Parallel()
	n, srv := startNode(t)
	log := testLog{t: t, signalOn: "step 0 open loop", signal: make(chan struct{}), once: new(sync.Once)}
	go func() {
		<-log.signal
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	}()
	_, _, err := runTestW2Log(t, srv, "tcp", w2Opts{driver: "raw", pairs: 2, rates: []float64{100}, settle: time.Minute}, log)
	if err == nil || !strings.Contains(err.Error(), "raw connection") && !strings.Contains(err.Error(), "kicked") {
		t.Fatalf("err = %v, want the dropped connection", err)
	}
}

// TestW2Counts runs both drivers end to end: every send ACKed and
// delivered once, in order, and measured.
func TestW2Counts(t *testing.T) {
	for _, tc := range []struct {
		driver, transport string
		rates             []float64
		closed            bool
	}{
		{"raw", "tcp", []float64{200}, true},
		{"raw", "ws", nil, true},
		{"sdk", "tcp", []float64{200}, true},
	} {
		t.Run(tc.driver+"/"+tc.transport, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			res, prefix, err := runTestW2Log(t, srv, tc.transport, w2Opts{driver: tc.driver, pairs: 4, inflight: 4, rates: tc.rates, closed: tc.closed}, testLog{t: t})
			if err != nil {
				t.Fatalf("runW2: %v", err)
			}
			if res.Driver != tc.driver {
				t.Errorf("driver %q, want %s", res.Driver, tc.driver)
			}
			want := len(tc.rates)
			if tc.closed {
				want++
			}
			if len(res.Steps) != want {
				t.Fatalf("%d steps, want %d", len(res.Steps), want)
			}
			for i, s := range res.Steps {
				if s.Acked == 0 || s.Sent != s.Acked || s.Failed+s.Skipped+s.Unsettled != 0 {
					t.Errorf("step %d: sent %d, acked %d, failed %d, skipped %d, unsettled %d; errors %v", i, s.Sent, s.Acked, s.Failed, s.Skipped, s.Unsettled, s.Errors)
				}
				if s.Delivered != s.Acked || s.Lost+s.LostAtStep+s.MissingAtSettle+s.Duplicated+s.Reordered != 0 {
					t.Errorf("step %d: acked %d, delivered %d, missing %d, lost %d, dup %d, reord %d", i, s.Acked, s.Delivered, s.MissingAtSettle, s.Lost, s.Duplicated, s.Reordered)
				}
				if s.Ack.Count == 0 || s.Deliver.Count == 0 || s.AckedRate <= 0 || s.DeliveredRate <= 0 {
					t.Errorf("step %d: nothing measured in the window: ack %+v, deliver %+v", i, s.Ack, s.Deliver)
				}
				if s.GeneratorCPUUsPerMsg <= 0 {
					t.Errorf("step %d: generator CPU per message %v", i, s.GeneratorCPUUsPerMsg)
				}
			}
			if tc.rates != nil {
				// The open loop sends exactly its schedule: 200/s for 1.3 s.
				if s := res.Steps[0]; s.Sent != 260 {
					t.Errorf("open loop sent %d, want 260", s.Sent)
				}
			}
			if p := res.problems(); len(p) > 0 {
				t.Errorf("problems: %v", p)
			}
			// The receiver reported its delivered cursor, as the SDK
			// does: the server's covers at least the open step's 65
			// messages of each pair (the closed step ran after them).
			// (The sender's own cursor the server also moves on send.)
			if tc.rates != nil {
				checkCursors(t, srv, prefix+"_s0", 65)
			}
		})
	}
}

// checkCursors logs in as sender and checks its conversation's delivered
// cursors (its own and its peer's) are at least min.
func checkCursors(t *testing.T, srv, sender string, min uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client.New(client.Options{Server: srv, Username: sender, Password: benchPassword, Device: "check"})
	defer cl.Close()
	convs, err := cl.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations of %s: %v, %v", sender, convs, err)
	}
	cv := convs[0]
	if cv.DeliveredSeq < min || cv.PeerDeliveredSeq < min || cv.PeerDeliveredSeq > cv.LastSeq {
		t.Errorf("%s: last seq %d, delivered %d, peer delivered %d; want both ≥ %d", sender, cv.LastSeq, cv.DeliveredSeq, cv.PeerDeliveredSeq, min)
	}
}

// TestW2RawDetectsLoss drops two deliveries at the receivers: pair 0's
// seq 3 only from the live stream (the history still has it), pair 1's
// seq 5 from the live stream and from history (as if the server had lost
// an ACKed message). The first must be counted missing and recovered, the
// second lost.
func TestW2RawDetectsLoss(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	res := runTestW2(t, srv, "tcp", w2Opts{driver: "raw", pairs: 4, rates: []float64{200},
		tamper: func(pair int, seq uint64, history bool) bool {
			return pair == 0 && seq == 3 && !history || pair == 1 && seq == 5
		}})
	s := res.Steps[0]
	if s.Sent != s.Acked || s.Acked == 0 {
		t.Fatalf("sent %d, acked %d", s.Sent, s.Acked)
	}
	if s.MissingAtSettle != 2 || s.Recovered != 1 || s.Lost != 1 {
		t.Errorf("missing at settle %d, recovered %d, lost %d; want 2, 1, 1", s.MissingAtSettle, s.Recovered, s.Lost)
	}
	if s.Delivered != s.Acked-1 {
		t.Errorf("delivered %d, want acked−1 = %d", s.Delivered, s.Acked-1)
	}
	if p := res.problems(); len(p) == 0 || !strings.Contains(p[0], "lost 1") {
		t.Errorf("problems %v, want the loss reported", p)
	}
}

// TestRawSendFrame decodes the patched template with the real decoder.
func TestRawSendFrame(t *testing.T) {
	b := &w2{pad: strings.Repeat("x", 32)}
	peer := &rawPeer{rc: &rawConn{}} // TCP framing
	rs := &rawSend{step: 3, measured: true, intended: 1764650000123456789}
	for i, id := range []uint64{1, 300, 1 << 40} {
		frame := peer.encodeSendLocked(b, "bob_r1", rs, id)
		env := new(magpiepb.Envelope)
		if err := proto.Unmarshal(frame[4:], env); err != nil {
			t.Fatal(err)
		}
		if n := int(frame[0])<<24 | int(frame[1])<<16 | int(frame[2])<<8 | int(frame[3]); n != len(frame)-4 {
			t.Errorf("frame header %d, payload %d bytes", n, len(frame)-4)
		}
		snd := env.GetSend()
		wantText := b.text(3, true, rs.intended)
		if env.GetId() != id || snd.GetToUser() != "bob_r1" || snd.GetText() != wantText || len(snd.GetClientMsgId()) != 32 {
			t.Fatalf("id %d: decoded %v", id, env)
		}
		if got, ok := readCmid([]byte(snd.GetClientMsgId())); !ok || got != uint64(i+1) {
			t.Errorf("client_msg_id %q: counter %d, want %d", snd.GetClientMsgId(), got, i+1)
		}
		if step, measured, intended, ok := parseText([]byte(snd.GetText())); !ok || step != 3 || !measured || intended != rs.intended {
			t.Errorf("parseText(%q) = %d %v %d %v", snd.GetText(), step, measured, intended, ok)
		}
		rs.cmid = 0 // a new message
	}
	// The same bytes as proto.Marshal of the SDK's envelope.
	rs = &rawSend{step: 0, intended: 1764650000123456789, cmid: 7}
	frame := peer.encodeSendLocked(b, "bob_r1", rs, 9)
	want, _ := proto.Marshal(&magpiepb.Envelope{Id: 9, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{
		ToUser: "bob_r1", ClientMsgId: "raw" + strings.Repeat("0", 28) + "7", Text: b.text(0, false, rs.intended)}}})
	if string(frame[4:]) != string(want) {
		t.Errorf("frame differs from proto.Marshal:\n got %x\nwant %x", frame[4:], want)
	}
}

func TestParseText(t *testing.T) {
	b := &w2{pad: "xx"}
	for _, tc := range []struct {
		text     string
		step     int
		measured bool
		at       int64
		ok       bool
	}{
		{b.text(12, true, 1764650000123456789), 12, true, 1764650000123456789, true},
		{b.text(0, false, 5), 0, false, 5, true},
		{"b1|m|123", 1, true, 123, true},
		{"hello", 0, false, 0, false},
		{"b|m|1|", 0, false, 0, false},
		{"b1|m||x", 0, false, 0, false},
		{"b1|m", 0, false, 0, false},
		{"bx|m|1|", 0, false, 0, false},
	} {
		step, measured, at, ok := parseText(tc.text)
		if ok != tc.ok || ok && (step != tc.step || measured != tc.measured || at != tc.at) {
			t.Errorf("parseText(%q) = %d %v %d %v", tc.text, step, measured, at, ok)
		}
	}
}
