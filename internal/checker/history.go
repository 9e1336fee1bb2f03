package checker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// A history file is the Recorder's input as JSON Lines, one event per
// line, in the order the events happened (docs/testing.md describes every
// field). A Recorder writes one while it records (Record); Replay reads
// one back into a Recorder, so `magpie check FILE` gives the verdict of a
// run made by the fault harness or by anyone else's load.
type event struct {
	Ev      string     `json:"ev"`
	Device  string     `json:"device,omitempty"`
	User    string     `json:"user,omitempty"`
	Fresh   bool       `json:"fresh,omitempty"`
	ID      string     `json:"id,omitempty"`
	Members []string   `json:"members,omitempty"`
	At      *time.Time `json:"at,omitempty"`
	Conv    string     `json:"conv,omitempty"`
	Seq     uint64     `json:"seq,omitempty"`
	Outcome string     `json:"outcome,omitempty"` // end: failed | unknown
	// shown
	ClientMsgID string `json:"client_msg_id,omitempty"`
	Sender      string `json:"sender,omitempty"`
	Text        string `json:"text,omitempty"`
	Phase       string `json:"phase,omitempty"` // live | sync
	// receipt
	Kind string `json:"kind,omitempty"` // delivered | read
	// cursor
	Last          uint64 `json:"last,omitempty"`
	Delivered     uint64 `json:"delivered,omitempty"`
	Read          uint64 `json:"read,omitempty"`
	PeerDelivered uint64 `json:"peer_delivered,omitempty"`
	PeerRead      uint64 `json:"peer_read,omitempty"`
	HasPeer       bool   `json:"has_peer,omitempty"`
	// member
	Op string `json:"op,omitempty"` // join | leave
	// recovered
	Fault string `json:"fault,omitempty"`
	Took  string `json:"took,omitempty"` // a Go duration, e.g. "1.25s"
	OK    bool   `json:"ok,omitempty"`
}

// Record makes r write every event it records from now on to w, one JSON
// line each, under r's lock (so the file's order is the recording order).
// Record(nil) stops and returns the first write error since the last call.
// Wrap a file in a bufio.Writer and flush it after Record(nil).
func (r *Recorder) Record(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.histErr
	r.histErr = nil
	r.hist = nil
	if w != nil {
		r.hist = json.NewEncoder(w)
	}
	return err
}

// emit writes ev to the history, if one is being recorded. Called with
// r.mu held.
func (r *Recorder) emit(ev event) {
	if r.hist == nil || r.histErr != nil {
		return
	}
	r.histErr = r.hist.Encode(ev)
}

func at(t time.Time) *time.Time { return &t }

// MaxHistoryLine is the longest line Replay accepts (a shown event carries
// the message text).
const MaxHistoryLine = 4 << 20

// Replay reads a history (see Record) into a new Recorder. It stops at the
// first bad line, naming it: unparsable JSON, an unknown event, a missing
// field, or a reference to a device or send the history has not declared.
func Replay(rd io.Reader) (*Recorder, error) {
	r := New()
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), MaxHistoryLine)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var ev event
		if err := json.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("history line %d: %v", line, err)
		}
		if err := r.replay(ev); err != nil {
			return nil, fmt.Errorf("history line %d (%q event): %v", line, ev.Ev, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("history line %d: longer than %d bytes", line+1, MaxHistoryLine)
		}
		return nil, fmt.Errorf("history: %w", err)
	}
	return r, nil
}

func (r *Recorder) replay(ev event) error {
	need := func(fields ...string) error {
		for i := 0; i+1 < len(fields); i += 2 {
			if fields[i+1] == "" {
				return fmt.Errorf("%s is missing", fields[i])
			}
		}
		return nil
	}
	known := func(device string) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.devices[device] == nil {
			return fmt.Errorf("device %q was not declared by a \"device\" event before", device)
		}
		return nil
	}
	invoked := func(id string) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.sends[id] == nil {
			return fmt.Errorf("send %q was not declared by an \"invoke\" event before", id)
		}
		return nil
	}
	when := func() (time.Time, error) {
		if ev.At == nil {
			return time.Time{}, errors.New("at is missing")
		}
		return *ev.At, nil
	}
	switch ev.Ev {
	case "device":
		if err := need("device", ev.Device, "user", ev.User); err != nil {
			return err
		}
		r.Device(ev.Device, ev.User, ev.Fresh)
	case "invoke":
		if err := need("id", ev.ID, "device", ev.Device); err != nil {
			return err
		}
		if len(ev.Members) == 0 {
			return errors.New("members is missing")
		}
		t, err := when()
		if err != nil {
			return err
		}
		if err := known(ev.Device); err != nil {
			return err
		}
		r.Invoke(ev.ID, ev.Device, ev.Members, t)
	case "ack":
		if err := need("id", ev.ID); err != nil {
			return err
		}
		// Without conv and seq: an ACK that does not say where (MQTT's
		// PUBACK, AckedUnsequenced). With one, both.
		unsequenced := ev.Conv == "" && ev.Seq == 0
		if err := need("conv", ev.Conv); err != nil && !unsequenced {
			return err
		}
		if ev.Seq == 0 && !unsequenced {
			return errors.New("seq is missing (seqs start at 1)")
		}
		t, err := when()
		if err != nil {
			return err
		}
		if err := invoked(ev.ID); err != nil {
			return err
		}
		if unsequenced {
			r.AckedUnsequenced(ev.ID, t)
		} else {
			r.Acked(ev.ID, ev.Conv, ev.Seq, t)
		}
	case "end":
		if err := need("id", ev.ID); err != nil {
			return err
		}
		var o Outcome
		switch ev.Outcome {
		case "failed":
			o = Failed
		case "unknown":
			o = Unknown
		default:
			return fmt.Errorf("outcome %q: want failed or unknown", ev.Outcome)
		}
		if err := invoked(ev.ID); err != nil {
			return err
		}
		r.Ended(ev.ID, o)
	case "shown":
		if err := need("device", ev.Device, "conv", ev.Conv); err != nil {
			return err
		}
		if ev.Seq == 0 {
			return errors.New("seq is missing (seqs start at 1)")
		}
		var p Phase
		switch ev.Phase {
		case "live", "":
			p = Live
		case "sync":
			p = Sync
		default:
			return fmt.Errorf("phase %q: want live or sync", ev.Phase)
		}
		t, err := when()
		if err != nil {
			return err
		}
		if err := known(ev.Device); err != nil {
			return err
		}
		r.Shown(ev.Device, Message{Conv: ev.Conv, Seq: ev.Seq, ClientMsgID: ev.ClientMsgID, Sender: ev.Sender, Text: ev.Text}, p, t)
	case "receipt":
		if err := need("device", ev.Device, "conv", ev.Conv, "user", ev.User); err != nil {
			return err
		}
		if ev.Kind != "delivered" && ev.Kind != "read" {
			return fmt.Errorf("kind %q: want delivered or read", ev.Kind)
		}
		if err := known(ev.Device); err != nil {
			return err
		}
		r.Receipt(ev.Device, ev.Conv, ev.User, ev.Kind == "read", ev.Seq)
	case "cursor":
		if err := need("user", ev.User, "conv", ev.Conv); err != nil {
			return err
		}
		r.Cursors(Cursor{User: ev.User, Conv: ev.Conv, Last: ev.Last, Delivered: ev.Delivered, Read: ev.Read,
			PeerDelivered: ev.PeerDelivered, PeerRead: ev.PeerRead, HasPeer: ev.HasPeer})
	case "member":
		if err := need("conv", ev.Conv, "user", ev.User); err != nil {
			return err
		}
		if ev.Op != "join" && ev.Op != "leave" {
			return fmt.Errorf("op %q: want join or leave", ev.Op)
		}
		if ev.Seq == 0 {
			return errors.New("seq is missing (seqs start at 1)")
		}
		r.Member(ev.Conv, ev.User, ev.Op == "join", ev.Seq)
	case "recovered":
		if err := need("fault", ev.Fault, "took", ev.Took); err != nil {
			return err
		}
		d, err := time.ParseDuration(ev.Took)
		if err != nil {
			return fmt.Errorf("took: %v", err)
		}
		r.Recovered(ev.Fault, d, ev.OK)
	case "":
		return errors.New("ev is missing")
	default:
		return fmt.Errorf("unknown event %q: want device, invoke, ack, end, shown, receipt, cursor, member or recovered", ev.Ev)
	}
	return nil
}
