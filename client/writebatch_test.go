package client

import (
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// recordingTransport records each Write's envelope ids; the first Write
// blocks until release is closed.
type recordingTransport struct {
	writes  chan []uint64
	entered chan struct{} // closed when the first Write starts
	release chan struct{}
	first   bool
}

func (t *recordingTransport) Read() (*magpiepb.Envelope, error) { select {} }
func (t *recordingTransport) Write(envs ...*magpiepb.Envelope) error {
	if !t.first {
		t.first = true
		close(t.entered)
		<-t.release
	}
	var ids []uint64
	for _, e := range envs {
		ids = append(ids, e.Id)
	}
	t.writes <- ids
	return nil
}
func (t *recordingTransport) SetReadDeadline(time.Time) error { return nil }
func (t *recordingTransport) Close() error                    { return nil }

// Frames queued while a write is in progress go out together, in order,
// in the next write.
func TestWriterBatchesQueuedFrames(t *testing.T) {
	tr := &recordingTransport{writes: make(chan []uint64, 10), entered: make(chan struct{}), release: make(chan struct{})}
	s := newSession(nil, tr, nil, time.Minute)
	go s.writeLoop()
	defer s.close(nil)
	s.out <- &magpiepb.Envelope{Id: 1}
	<-tr.entered // the writer blocks in its write of 1; 2..4 queue behind it
	for id := uint64(2); id <= 4; id++ {
		s.out <- &magpiepb.Envelope{Id: id}
	}
	close(tr.release)
	if got := <-tr.writes; len(got) != 1 || got[0] != 1 {
		t.Fatalf("first write %v, want [1]", got)
	}
	if got, want := <-tr.writes, []uint64{2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("second write %v, want %v (one write for the queued frames)", got, want)
	}
}

// A TCP transport writes a batch as consecutive frames the gateway's
// reader takes apart one by one.
func TestTCPWriteBatchFrames(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	tr := &tcpTransport{conn: client}
	envs := []*magpiepb.Envelope{
		{Id: 7, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: 42}}},
		{Id: 8, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "hi", ClientMsgId: "x"}}},
	}
	go func() {
		if err := tr.Write(envs...); err != nil {
			t.Error(err)
		}
	}()
	r := wire.NewReader(server, 4096, wire.MaxFrame)
	for _, want := range envs {
		b, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		got := new(magpiepb.Envelope)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// appendFrame encodes like wire.AppendFrame over proto.Marshal, and
// refuses a frame above wire.MaxFrame.
func TestAppendFrame(t *testing.T) {
	env := &magpiepb.Envelope{Id: 3, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToGroup: "g", Text: "hello"}}}
	b, _ := proto.Marshal(env)
	want := wire.AppendFrame([]byte("prefix"), b)
	got, err := appendFrame([]byte("prefix"), env)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("appendFrame = %x, %v; want %x", got, err, want)
	}
	big := &magpiepb.Envelope{Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{Text: strings.Repeat("x", wire.MaxFrame)}}}
	if _, err := appendFrame(nil, big); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("oversized frame: err %v, want a limit error", err)
	}
}

// The write deadline moves only when the one set has aged by an eighth of
// writeTimeout.
func TestWriteDeadlineMovesRarely(t *testing.T) {
	c := &deadlineCounter{}
	var w writeDeadline
	w.set(c)
	w.set(c)
	if c.n != 1 {
		t.Fatalf("%d SetWriteDeadline calls for two writes in a row, want 1", c.n)
	}
	w.at = w.at.Add(-writeTimeout / 4)
	w.set(c)
	if c.n != 2 {
		t.Fatalf("%d calls after the deadline aged, want 2", c.n)
	}
}

type deadlineCounter struct {
	net.Conn
	n int
}

func (c *deadlineCounter) SetWriteDeadline(time.Time) error { c.n++; return nil }
