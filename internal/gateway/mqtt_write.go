package gateway

import (
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// writeFrames translates the queued frames into MQTT packets (see the top
// of mqtt.go) and writes them at once. Flush goroutine only.
func (t *mqttTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := t.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	bp := writeBufs.Get().(*[]byte)
	w := &mqttWriter{buf: (*bp)[:0]}
	for _, f := range frames {
		if t.dead {
			break
		}
		t.translate(w, f)
	}
	var err error
	if len(w.buf) > 0 {
		_, err = t.conn.Write(w.buf)
	}
	if cap(w.buf) <= 2*writeChunk {
		*bp = w.buf[:0]
		writeBufs.Put(bp)
	}
	if w.closeCode != 0 {
		t.s.closeWith(w.closeCode, nil, false) // after what was written: the refusal is the last packet
	}
	for _, f := range w.later {
		f()
	}
	return err
}

// mqttWriter collects one batch's packets and what to do after writing.
type mqttWriter struct {
	buf       []byte
	closeCode wire.Code // close after the batch (the last packet is in buf)
	later     []func()  // calls into logic, made after the batch is written
}

func (t *mqttTransport) translate(w *mqttWriter, f []byte) {
	if len(f) == 0 {
		return
	}
	switch f[0] {
	case frameRaw:
		w.buf = append(w.buf, f[1:]...)
		return
	case frameCatchUp:
		m := new(magpiepb.Message)
		if proto.Unmarshal(f[1:], m) == nil {
			t.deliver(w, m, nil, true)
		}
		return
	case frameCatchUpDone:
		t.catchUpDone(w)
		return
	case frameRelease:
		t.release(w)
		return
	}
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(f, env); err != nil {
		t.s.g.log.Warn("undecodable frame for mqtt", "conn", t.s.id, "err", err)
		return
	}
	switch b := env.Body.(type) {
	case *magpiepb.Envelope_AuthOk:
		t.connected(w, b.AuthOk)
	case *magpiepb.Envelope_Kick:
		t.kicked(w, wire.Code(b.Kick.Code), b.Kick.Reason)
	case *magpiepb.Envelope_Message:
		t.deliver(w, b.Message, f, false)
	case *magpiepb.Envelope_Error:
		if env.Id == connectID {
			t.connackRefused(w, wire.Code(b.Error.Code), b.Error.Message)
			return
		}
		p, ok := t.takePending(env.Id)
		switch {
		case !ok:
		case p.kind == pendSend:
			t.sendFailed(w, p, wire.Code(b.Error.Code), b.Error.Message)
		case p.kind == pendPing && wire.Code(b.Error.Code) == wire.CodeRateLimited:
			// A PINGREQ over the connection's rate gets the limit's
			// DISCONNECT (3.1.1: closed), as a QoS 1 PUBLISH does, not
			// silence (docs/mqtt.md, Limits).
			t.kicked(w, wire.CodeRateLimited, b.Error.Message)
			w.closeCode = wire.CodeRateLimited
		}
	case *magpiepb.Envelope_SendAck:
		if p, ok := t.takePending(env.Id); ok && p.kind == pendSend && p.ack {
			t.sendAcked(w, p, b.SendAck)
		}
	case *magpiepb.Envelope_Pong:
		if p, ok := t.takePending(env.Id); ok && p.kind == pendPing {
			w.buf = append(w.buf, t.encode(&packets.Packet{FixedHeader: header(packets.Pingresp)})...)
		}
	case *magpiepb.Envelope_Ok:
		t.takePending(env.Id) // a receipt's answer
	}
	// Receipt and conversation pushes have no MQTT form: dropped.
}

// connected answers a successful auth with CONNACK, once the connection
// proved it is the user and device it says.
func (t *mqttTransport) connected(w *mqttWriter, ok *magpiepb.AuthOK) {
	switch {
	case !strings.EqualFold(ok.Username, t.username):
		t.connackRefused(w, wire.CodeUnauthenticated, "the token is not this username's")
		return
	case t.clientID != "" && t.clientID != ok.Device:
		v5, v3 := rcClientIDInvalid, rc3IdentifierRejected
		t.refuseInBatch(w, wire.CodeUnauthenticated, v5, v3, "the client id must be the token's device ("+ok.Device+")")
		return
	}
	t.takeOver(ok.Device)
	pk := &packets.Packet{FixedHeader: header(packets.Connack), SessionPresent: t.s.ref.SessionPresent}
	if t.version == 5 {
		p := &pk.Properties
		if t.clientID == "" {
			p.AssignedClientID = ok.Device
		}
		p.ReceiveMaximum = uint16(min(t.s.g.cfg.MaxInFlight, 65535))
		p.MaximumQos, p.MaximumQosFlag = 1, true
		p.RetainAvailable, p.RetainAvailableFlag = 0, true
		p.WildcardSubAvailable, p.WildcardSubAvailableFlag = 0, true
		p.SubIDAvailable, p.SubIDAvailableFlag = 0, true
		p.SharedSubAvailable, p.SharedSubAvailableFlag = 0, true
		p.MaximumPacketSize = MQTTMaxPacket
		if t.serverKeepAlive > 0 {
			p.ServerKeepAlive, p.ServerKeepAliveFlag = t.serverKeepAlive, true
		}
	}
	if t.persistent && t.startCatchUp(map[string]uint64{}) {
		w.later = append(w.later, t.syncNext)
	}
	w.buf = append(w.buf, t.encode(pk)...)
	t.connacked = true
}

// takeOver closes this gateway's other MQTT connections of the device: a
// second CONNECT with a client id takes its place (MQTT 3.1.4-3).
func (t *mqttTransport) takeOver(device string) {
	s := t.s
	for _, o := range s.g.shards.userSessions(s.ref.UserId) {
		if o != s && o.kind == MQTT && o.ref.Device == device {
			o.closeWith(wire.CodeReplaced, s.g.kickFrame(encProto, wire.CodeReplaced, "another connection took this client id"), false)
		}
	}
}

// connackRefused answers CONNECT with the refusal for logic's code.
func (t *mqttTransport) connackRefused(w *mqttWriter, code wire.Code, reason string) {
	v5, v3 := connackReason(code)
	t.refuseInBatch(w, code, v5, v3, reason)
}

func (t *mqttTransport) refuseInBatch(w *mqttWriter, code wire.Code, v5, v3 byte, reason string) {
	pk := &packets.Packet{FixedHeader: header(packets.Connack), ReasonCode: v5}
	if t.version != 5 {
		pk.ReasonCode = v3
	} else {
		pk.Properties.ReasonString = reason
	}
	w.buf = append(w.buf, t.encode(pk)...)
	t.dead, w.closeCode = true, code
}

// kicked writes a Kick: MQTT 5 DISCONNECT with the code's reason; before
// CONNACK a CONNACK refusal; 3.1.1 just closes.
func (t *mqttTransport) kicked(w *mqttWriter, code wire.Code, reason string) {
	switch {
	case t.version == 0:
	case !t.connacked:
		t.connackRefused(w, code, reason)
	case t.version == 5:
		pk := &packets.Packet{FixedHeader: header(packets.Disconnect), ReasonCode: disconnectReason(code)}
		pk.Properties.ReasonString = reason
		w.buf = append(w.buf, t.encode(pk)...)
	}
	t.dead = true
}

// sendAcked answers a committed QoS 1 PUBLISH with PUBACK. A PUBLISH
// without DUP is new by the protocol's rule (MQTT 4.3.2), so when its key
// was taken by an earlier message (the same packet id, topic and payload
// again) it is sent once more under a fresh key and stored.
func (t *mqttTransport) sendAcked(w *mqttWriter, p mqttPending, ack *magpiepb.SendAck) {
	if ack.Duplicate && !p.dup && p.send != nil {
		send := proto.CloneOf(p.send)
		send.ClientMsgId = freshKey()
		p.send = nil // once
		w.later = append(w.later, func() { t.resend(p, send) })
		return
	}
	w.buf = append(w.buf, t.puback(p.pid, rcSuccess)...)
}

// resend forwards a send outside the session's read path (its answer
// comes back here, not through the queue as an Envelope).
func (t *mqttTransport) resend(p mqttPending, send *magpiepb.Send) {
	env := marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Send{Send: send}})
	t.s.g.logic.Forward(&clusterpb.Request{Conn: t.s.ref, Envelope: env}, func(reply []byte, err error) {
		out := new(magpiepb.Envelope)
		if err == nil {
			err = proto.Unmarshal(reply, out)
		}
		var f []byte
		switch {
		case err != nil:
			t.s.kick(wire.CodeUnavailable, "service unavailable")
			return
		case out.GetSendAck() != nil:
			f = t.puback(p.pid, rcSuccess)
		case out.GetError() != nil:
			w := &mqttWriter{}
			t.sendFailed(w, p, wire.Code(out.GetError().Code), out.GetError().Message)
			if w.closeCode != 0 {
				t.s.kick(w.closeCode, out.GetError().Message)
				return
			}
			f = w.buf
		}
		if len(f) > 0 {
			t.s.send(raw(f))
		}
	})
}

// sendFailed answers a refused PUBLISH. QoS 0: nothing. A code to retry
// closes the connection, so the client sends it again after reconnecting;
// any other is a PUBACK with the reason (3.1.1 has none: a plain PUBACK,
// the message is dropped).
func (t *mqttTransport) sendFailed(w *mqttWriter, p mqttPending, code wire.Code, msg string) {
	if !p.ack {
		return
	}
	rc, retry := pubackReason(code)
	if retry {
		if t.version == 5 {
			pk := &packets.Packet{FixedHeader: header(packets.Disconnect), ReasonCode: disconnectReason(code)}
			pk.Properties.ReasonString = msg
			w.buf = append(w.buf, t.encode(pk)...)
		}
		t.dead, w.closeCode = true, code
		return
	}
	t.s.g.log.Debug("mqtt publish refused", "conn", t.s.id, "code", uint32(code), "reason", msg)
	w.buf = append(w.buf, t.puback(p.pid, rc)...)
}
