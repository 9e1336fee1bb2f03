package gateway

// The MQTT transport (docs/mqtt.md). An MQTT connection is a session like
// any other: it authenticates through logic, is rate limited, is cut when
// slow or silent, and gets deliveries and kicks, all by the code in
// session.go and queue.go. What differs is the framing, so mqttTransport
// translates at the edges of that code:
//
//   - readFrame reads MQTT packets and hands the session the Envelope each
//     one stands for: CONNECT is auth, PUBLISH is send, PUBACK of a
//     delivered message is a DELIVERED receipt, PINGREQ is ping. Packets
//     the transport answers itself (SUBSCRIBE, UNSUBSCRIBE) still hand the
//     session a ping, whose pong it drops, so they count against the rate
//     limit and move the read deadline like any other.
//   - writeFrames turns the Envelopes the session queues (answers,
//     deliveries, kicks) into MQTT packets: AuthOK is CONNACK, SendAck is
//     PUBACK, Message is PUBLISH on magpie/inbox, Kick is DISCONNECT.
//     Frames the transport builds itself go through the same queue, marked
//     by their first byte (frameRaw and the others below), which
//     no encoded Envelope starts with (field number 0 does not exist).
//
// The codec is github.com/mochi-mqtt/server/v2/packets: it decodes and
// encodes both MQTT 3.1.1 and 5.0 packets and nothing else (docs/mqtt.md
// says why it was chosen).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// MQTTMaxPacket is the largest MQTT packet accepted, fixed header
// included; also told to MQTT 5 clients as Maximum Packet Size.
const MQTTMaxPacket = wire.MaxFrame

// First bytes of queued frames that are not Envelopes.
const (
	frameRaw         byte = 0 // an encoded MQTT packet follows
	frameCatchUp     byte = 1 // an encoded Message from a catch-up sync follows
	frameCatchUpDone byte = 2 // the catch-up sync finished
	frameRelease     byte = 3 // PUBACKs freed packet ids: publish what waits for one
)

// connectID is the Envelope id of the auth made of CONNECT; the ids of the
// other requests the transport makes start after it.
const connectID = 1

// errMQTTClosed ends the read loop after the transport queued its own
// last packet (a CONNACK refusal or a DISCONNECT) with closeWith.
var errMQTTClosed = errors.New("gateway: mqtt connection closed by the gateway")

// ServeMQTT accepts MQTT connections on ln (plain TCP, or TLS when ln is
// a TLS listener) until ln fails or the gateway drains, like ServeTCP.
func (g *Gateway) ServeMQTT(ln net.Listener) error {
	return g.acceptLoop(ln, func(c net.Conn) bool {
		return g.startSession(newMQTTTransport(c), encProto, MQTT)
	})
}

// mqttTransport is one MQTT connection; see the top of this file.
type mqttTransport struct {
	conn net.Conn
	br   *bufio.Reader // borrowed from mqttReaders while input is pending; nil when idle
	s    *session

	// Set by the reader while handling CONNECT, before the auth frame is
	// handed to the session; read by the flusher only after that (the
	// session's queue lock orders the two).
	version    byte   // 4 (3.1.1) or 5
	clientID   string // as sent; "" if the server assigns the device name
	username   string
	keepalive  time.Duration // the client's keepalive; 0: none
	persistent bool          // catch up from the device's position on connect
	expiry     uint32        // the stored session's expiry in seconds (0: none; see ConnRef.session_expiry)
	cleanStart bool          // the stored session starts anew
	recvMax    int           // QoS 1 PUBLISHes the client takes unacknowledged
	maxOut     int           // the largest packet the client takes; 0: no limit

	serverKeepAlive uint16 // MQTT 5 without keepalive: the one the server asks for

	// Flusher only.
	dead      bool // a refusal or DISCONNECT was written: write nothing more
	connacked bool // CONNACK was written

	mu        sync.Mutex // a leaf below session.mu's callers: never held while calling the session
	nextReqID uint64
	pending   map[uint64]mqttPending // requests made of packets, by Envelope id
	subQoS    int8                   // magpie/inbox subscription: -1 none, 0 or 1
	nextPID   uint16
	inflight  map[uint16]cursor // QoS 1 PUBLISHes sent, awaiting PUBACK
	waiting   []outPublish      // QoS 1 PUBLISHes over the client's receive maximum
	published map[string]uint64 // conversation → highest seq published (or the cursor)
	catchUp   *catchUp          // a catch-up sync is running; live messages wait in held
	held      [][]byte          // live Message envelopes held during a catch-up
}

type cursor struct {
	conv string
	seq  uint64
}

// outPublish is a QoS 1 PUBLISH waiting for a packet id.
type outPublish struct {
	at      cursor // seq 0: transient
	payload []byte
}

// mqttPending is what a request made of a packet stands for.
type mqttPending struct {
	kind pendingKind
	pid  uint16         // the client's PUBLISH packet id (QoS 1)
	dup  bool           // the PUBLISH had DUP set
	ack  bool           // QoS 1: answer with PUBACK
	send *magpiepb.Send // QoS 1 sends: kept to send again under a fresh key
}

type pendingKind uint8

const (
	pendPing    pendingKind = iota // PINGREQ: answer the pong with PINGRESP
	pendNoop                       // a packet answered by the transport: drop the pong
	pendSend                       // PUBLISH
	pendReceipt                    // PUBACK of a stored message: drop the answer
)

func newMQTTTransport(c net.Conn) *mqttTransport {
	return &mqttTransport{conn: c, nextReqID: connectID, subQoS: -1}
}

// mqttReaders are the read buffers of MQTT connections, shared: an idle
// connection holds none (see idle), like TCP's inbuf.
var mqttReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, inBufSize) }}

// idle gives the read buffer back once every byte read was consumed, so
// the session can park (park.go) holding nothing.
func (t *mqttTransport) idle() bool {
	if t.br != nil && t.br.Buffered() == 0 {
		t.br.Reset(nil)
		mqttReaders.Put(t.br)
		t.br = nil
	}
	return t.br == nil
}

// rawConn is the socket to park on: plain TCP only (TLS may hold records).
func (t *mqttTransport) rawConn() syscall.RawConn { return tcpRawConn(t.conn) }

var (
	_ transport = (*mqttTransport)(nil)
	_ idler     = (*mqttTransport)(nil)
)

func (t *mqttTransport) attach(s *session)                 { t.s = s }
func (t *mqttTransport) setReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }
func (t *mqttTransport) close()                            { t.conn.Close() }
func (t *mqttTransport) discard()                          { discardInput(t.conn) }

// heartbeatTimeout maps the client's keepalive to the read deadline: one
// and a half keepalives (MQTT 3.1.2.10); 0 keeps the gateway's own.
func (t *mqttTransport) heartbeatTimeout() time.Duration { return t.keepalive * 3 / 2 }

func (t *mqttTransport) shutdownWrite(_ wire.Code, _ time.Time) {
	if cw, ok := t.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// encode encodes a packet for this connection's protocol version.
func (t *mqttTransport) encode(pk *packets.Packet) []byte {
	pk.ProtocolVersion = t.version
	if t.maxOut > 0 {
		pk.Mods.MaxSize = uint32(t.maxOut)
	}
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = errors.New("unexpected packet type")
	}
	if err != nil { // packets built here always encode: a failure is a bug
		panic("gateway: encode mqtt packet: " + err.Error())
	}
	return buf.Bytes()
}

func raw(b []byte) []byte { return append([]byte{frameRaw}, b...) }

func header(typ byte) packets.FixedHeader { return packets.FixedHeader{Type: typ} }

// refuse queues a last packet (nil: none) and closes the connection; the
// read loop ends with errMQTTClosed.
func (t *mqttTransport) refuse(code wire.Code, pk *packets.Packet) error {
	var f []byte
	if pk != nil {
		f = raw(t.encode(pk))
	}
	t.s.closeWith(code, f, false)
	return errMQTTClosed
}

// disconnect closes with an MQTT 5 DISCONNECT carrying rc (3.1.1 has no
// DISCONNECT from the server: the connection just closes).
func (t *mqttTransport) disconnect(code wire.Code, rc byte, reason string) error {
	if t.version != 5 {
		return t.refuse(code, nil)
	}
	pk := &packets.Packet{FixedHeader: header(packets.Disconnect), ReasonCode: rc}
	pk.Properties.ReasonString = reason
	return t.refuse(code, pk)
}

// readFrame reads the next packet and returns the Envelope it stands for.
func (t *mqttTransport) readFrame() ([]byte, error) {
	fh, body, err := t.readPacket()
	if err != nil {
		return nil, err
	}
	if t.version == 0 { // nothing but CONNECT before CONNECT
		if fh.Type != packets.Connect {
			return nil, errUndecodable
		}
		return t.connect(fh, body)
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: t.version}
	switch fh.Type {
	case packets.Publish:
		if err := pk.PublishDecode(body); err != nil {
			return nil, t.disconnect(wire.CodeProtocolError, rcMalformed, err.Error())
		}
		return t.publish(&pk)
	case packets.Puback:
		if err := pk.PubackDecode(body); err != nil {
			return nil, t.disconnect(wire.CodeProtocolError, rcMalformed, err.Error())
		}
		return t.acked(pk.PacketID), nil
	case packets.Subscribe:
		if err := pk.SubscribeDecode(body); err != nil || pk.SubscribeValidate() != packets.CodeSuccess {
			return nil, t.disconnect(wire.CodeProtocolError, rcMalformed, "malformed SUBSCRIBE")
		}
		return t.subscribe(&pk), nil
	case packets.Unsubscribe:
		if err := pk.UnsubscribeDecode(body); err != nil || pk.UnsubscribeValidate() != packets.CodeSuccess {
			return nil, t.disconnect(wire.CodeProtocolError, rcMalformed, "malformed UNSUBSCRIBE")
		}
		return t.unsubscribe(&pk), nil
	case packets.Pingreq:
		return t.request(mqttPending{kind: pendPing}, pingEnvelope), nil
	case packets.Disconnect:
		return nil, io.EOF // the client leaves: a clean close
	case packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return nil, t.disconnect(wire.CodeProtocolError, rcQoSNotSupported, "QoS 2 is not supported")
	}
	return nil, t.disconnect(wire.CodeProtocolError, rcProtocolError, "unexpected packet")
}

// readPacket reads one packet's fixed header and body.
func (t *mqttTransport) readPacket() (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	if t.br == nil {
		t.br = mqttReaders.Get().(*bufio.Reader)
		t.br.Reset(t.conn)
	}
	b, err := t.br.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(b); err != nil {
		return fh, nil, errors.Join(errUndecodable, err)
	}
	n, size, err := packets.DecodeLength(t.br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.EOF) {
			return fh, nil, err
		}
		return fh, nil, errors.Join(errUndecodable, err)
	}
	if 1+size+n > MQTTMaxPacket {
		return fh, nil, errTooLarge
	}
	fh.Remaining = n
	body := make([]byte, n) // the codec keeps strings pointing into it
	if _, err := io.ReadFull(t.br, body); err != nil {
		return fh, nil, err
	}
	return fh, body, nil
}

// connect handles CONNECT: it checks what the gateway can check itself,
// then hands the session an auth with the password as the token.
func (t *mqttTransport) connect(fh packets.FixedHeader, body []byte) ([]byte, error) {
	pk := packets.Packet{FixedHeader: fh}
	if err := pk.ConnectDecode(body); err != nil {
		return nil, errors.Join(errUndecodable, err)
	}
	if pk.ProtocolVersion != 4 && pk.ProtocolVersion != 5 {
		t.version = 4 // 3.1.1's CONNACK layout: the one older clients read
		return nil, t.refuse(wire.CodeProtocolError, &packets.Packet{FixedHeader: header(packets.Connack), ReasonCode: rc3UnacceptableVersion})
	}
	t.version = pk.ProtocolVersion
	if pk.ConnectValidate() != packets.CodeSuccess {
		return nil, t.refuseConnect(wire.CodeProtocolError, rcMalformed, rc3NotAuthorized, "malformed CONNECT")
	}
	c := pk.Connect
	if c.WillFlag {
		return nil, t.refuseConnect(wire.CodeBadRequest, rcNotAuthorized, rc3NotAuthorized, "wills are not supported")
	}
	if !c.UsernameFlag || !c.PasswordFlag || !utf8.Valid(c.Password) {
		return nil, t.refuseConnect(wire.CodeUnauthenticated, rcBadCredentials, rc3BadCredentials, "username and token required")
	}
	t.clientID = strings.Clone(c.ClientIdentifier)
	t.username = string(c.Username)
	t.keepalive = time.Duration(c.Keepalive) * time.Second
	if t.version == 5 && t.keepalive == 0 {
		// MQTT 5 lets the server set the keepalive (Server Keep Alive).
		t.keepalive = t.s.g.cfg.HeartbeatInterval.Truncate(time.Second)
		t.serverKeepAlive = uint16(min(t.keepalive/time.Second, 65535))
	}
	t.recvMax = 65535
	t.cleanStart = c.Clean
	if t.version == 5 {
		// A session expiry keeps a session, even one that starts clean;
		// only one that does not is caught up on connect.
		t.expiry = pk.Properties.SessionExpiryInterval
		t.persistent = !c.Clean && t.expiry > 0
		if pk.Properties.ReceiveMaximum > 0 {
			t.recvMax = int(pk.Properties.ReceiveMaximum)
		}
		t.maxOut = int(pk.Properties.MaximumPacketSize)
	} else {
		t.persistent = !c.Clean
		if t.persistent {
			t.expiry = sessionNeverExpires // 3.1.1: until a clean session
		}
		if t.clientID == "" && !c.Clean { // MQTT-3.1.3-8
			return nil, t.refuseConnect(wire.CodeBadRequest, rcClientIDInvalid, rc3IdentifierRejected, "an empty client id needs a clean session")
		}
	}
	t.recvMax = min(t.recvMax, t.s.g.cfg.SendQueue)
	if t.persistent {
		t.subQoS = 1 // a persistent session is subscribed to magpie/inbox at QoS 1
	}
	env := &magpiepb.Envelope{Id: connectID, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: string(c.Password)}}}
	return marshal(env), nil
}

// sessionNeverExpires is MQTT 5's session expiry that never ends.
const sessionNeverExpires = 0xFFFFFFFF

// storedSession is what the auth request tells logic of the session.
func (t *mqttTransport) storedSession() (expiry uint32, clean bool) { return t.expiry, t.cleanStart }

// refuseConnect answers CONNECT with a refusal and closes.
func (t *mqttTransport) refuseConnect(code wire.Code, v5, v3 byte, reason string) error {
	pk := &packets.Packet{FixedHeader: header(packets.Connack), ReasonCode: v5}
	if t.version != 5 {
		pk.ReasonCode = v3
	} else {
		pk.Properties.ReasonString = reason
	}
	return t.refuse(code, pk)
}

func marshal(env *magpiepb.Envelope) []byte {
	b, err := proto.Marshal(env)
	if err != nil { // built here from checked text: a failure is a bug
		panic("gateway: encode envelope: " + err.Error())
	}
	return b
}

var pingEnvelope = &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{}}

// request registers p under a fresh Envelope id and encodes body with it.
func (t *mqttTransport) request(p mqttPending, body any) []byte {
	t.mu.Lock()
	t.nextReqID++
	id := t.nextReqID
	if t.pending == nil {
		t.pending = make(map[uint64]mqttPending)
	}
	t.pending[id] = p
	t.mu.Unlock()
	env := &magpiepb.Envelope{Id: id}
	switch b := body.(type) {
	case *magpiepb.Envelope_Ping:
		env.Body = b
	case *magpiepb.Envelope_Send:
		env.Body = b
	case *magpiepb.Envelope_Receipt:
		env.Body = b
	}
	return marshal(env)
}

func (t *mqttTransport) takePending(id uint64) (mqttPending, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[id]
	delete(t.pending, id)
	return p, ok
}

// publish turns a PUBLISH into a send.
func (t *mqttTransport) publish(pk *packets.Packet) ([]byte, error) {
	fh := pk.FixedHeader
	switch {
	case fh.Qos > 1:
		return nil, t.disconnect(wire.CodeProtocolError, rcQoSNotSupported, "QoS 2 is not supported")
	case fh.Retain:
		return nil, t.disconnect(wire.CodeProtocolError, rcRetainNotSupported, "retained messages are not supported")
	case pk.Properties.TopicAlias > 0 || pk.Properties.TopicAliasFlag:
		return nil, t.disconnect(wire.CodeProtocolError, rcTopicAliasInvalid, "topic aliases are not supported")
	}
	if code := pk.PublishValidate(0); code != packets.CodeSuccess {
		return nil, t.disconnect(wire.CodeProtocolError, rcProtocolError, code.Reason)
	}
	user, group, rc := sendTarget(pk.TopicName)
	if rc == rcSuccess && !utf8.Valid(pk.Payload) {
		rc = rcPayloadFormatInvalid
	}
	if rc != rcSuccess {
		if fh.Qos == 1 {
			t.s.send(raw(t.puback(pk.PacketID, rc)))
		}
		return t.request(mqttPending{kind: pendNoop}, pingEnvelope), nil
	}
	send := &magpiepb.Send{ToUser: user, ToGroup: group, Text: string(pk.Payload)}
	p := mqttPending{kind: pendSend, pid: pk.PacketID, dup: fh.Dup}
	if fh.Qos == 1 {
		send.ClientMsgId = t.idempotencyKey(pk)
		p.ack, p.send = true, send
	}
	return t.request(p, &magpiepb.Envelope_Send{Send: send}), nil
}

// idempotencyKey is the client_msg_id of a QoS 1 PUBLISH: the client id
// and packet id, plus the topic and payload, because a client reuses a
// packet id once it was acknowledged (mosquitto_pub starts at 1 on every
// run). A redelivery (DUP) is the same packet, so it gets the same key and
// is stored once; see sendResult for a new PUBLISH that collides.
func (t *mqttTransport) idempotencyKey(pk *packets.Packet) string {
	h := sha256.New()
	for _, s := range []string{t.deviceName(), "\x00", pk.TopicName, "\x00"} {
		h.Write([]byte(s))
	}
	h.Write([]byte{byte(pk.PacketID >> 8), byte(pk.PacketID)})
	h.Write(pk.Payload)
	return "mqtt-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// deviceName is the device the connection authenticated as (the client
// id, or the token's device when the client sent none).
func (t *mqttTransport) deviceName() string {
	if t.s.ref != nil {
		return t.s.ref.Device
	}
	return t.clientID
}

// freshKey is the key of a PUBLISH without DUP whose first key was taken
// by an earlier message: random, so it is stored.
func freshKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "mqtt-" + hex.EncodeToString(b)
}

// puback encodes a PUBACK (3.1.1 has no reason code: it is dropped).
func (t *mqttTransport) puback(pid uint16, rc byte) []byte {
	pk := &packets.Packet{FixedHeader: header(packets.Puback), PacketID: pid}
	if t.version == 5 {
		pk.ReasonCode = rc
	}
	return t.encode(pk)
}

// subscribe answers SUBSCRIBE itself: only magpie/inbox is granted.
func (t *mqttTransport) subscribe(pk *packets.Packet) []byte {
	codes := make([]byte, len(pk.Filters))
	granted := int8(-1)
	for i, f := range pk.Filters {
		rc := subscribeReason(f.Filter, f.Qos)
		if rc <= 1 {
			granted = int8(rc)
		} else if t.version != 5 {
			rc = rcUnspecified // 3.1.1's only failure code
		}
		codes[i] = rc
	}
	if granted >= 0 {
		t.mu.Lock()
		t.subQoS = granted
		t.mu.Unlock()
	}
	t.s.send(raw(t.encode(&packets.Packet{FixedHeader: header(packets.Suback), PacketID: pk.PacketID, ReasonCodes: codes})))
	return t.request(mqttPending{kind: pendNoop}, pingEnvelope)
}

func (t *mqttTransport) unsubscribe(pk *packets.Packet) []byte {
	codes := make([]byte, len(pk.Filters))
	t.mu.Lock()
	for i, f := range pk.Filters {
		codes[i] = rcNoSubscriptionExisted
		if f.Filter == topicInbox && t.subQoS >= 0 {
			codes[i] = rcSuccess
			t.subQoS = -1
		}
	}
	t.mu.Unlock()
	out := &packets.Packet{FixedHeader: header(packets.Unsuback), PacketID: pk.PacketID}
	if t.version == 5 {
		out.ReasonCodes = codes
	}
	t.s.send(raw(t.encode(out)))
	return t.request(mqttPending{kind: pendNoop}, pingEnvelope)
}
