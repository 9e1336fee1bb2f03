package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// mqttLogic is a fake logic for MQTT tests: tokens are "good-<user>"
// with the device "dev"; sends are stored once per client_msg_id (a second
// one is answered duplicate), receipts recorded, and sync answers from
// convs and msgs.
type mqttLogic struct {
	mu       sync.Mutex
	stored   []*magpiepb.Send
	keys     map[string]uint64
	receipts []*magpiepb.Receipt
	syncs    []*magpiepb.SyncRequest
	convs    []*magpiepb.ConversationState
	msgs     []*magpiepb.Message
	fail     wire.Code     // answer sends with this error
	syncGate chan struct{} // if set, sync answers wait until it is closed
	sendGate chan struct{} // if set, send answers wait until it is closed
	pending  sync.WaitGroup

	// Stored sessions: present answers auth, position is the device's
	// own (a sync of such a connection starts there), page the messages
	// per sync answer (0: all), and sessions the ConnRefs authenticated.
	present  bool
	position map[string]uint64
	page     int
	sessions []*clusterpb.ConnRef
	ended    []*clusterpb.ConnRef // told their connection closed
}

func (f *mqttLogic) Authenticate(_ context.Context, req *clusterpb.AuthRequest) (*clusterpb.AuthReply, error) {
	user, ok := strings.CutPrefix(req.Token, "good-")
	if !ok || user == "" {
		env, _ := proto.Marshal(errorEnvelope(0, wire.CodeUnauthenticated, "bad token", 0))
		return &clusterpb.AuthReply{Envelope: env}, nil
	}
	ref := proto.CloneOf(req.Conn)
	ref.UserId, ref.SessionId, ref.Device = userID(user), "s-"+user, "dev"
	f.mu.Lock()
	ref.SessionPresent = f.present && ref.SessionExpiry > 0 && !ref.CleanStart
	f.sessions = append(f.sessions, proto.CloneOf(ref))
	f.mu.Unlock()
	env, _ := proto.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_AuthOk{AuthOk: &magpiepb.AuthOK{
		UserId: ref.UserId, Username: user, SessionId: ref.SessionId, Device: "dev",
	}}})
	return &clusterpb.AuthReply{Envelope: env, Conn: ref}, nil
}

func (f *mqttLogic) Forward(req *clusterpb.Request, done func([]byte, error)) {
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(req.Envelope, env); err != nil {
		panic("gateway forwarded an undecodable envelope: " + err.Error())
	}
	out := &magpiepb.Envelope{Id: env.Id, Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}
	f.mu.Lock()
	if req.ConnEnded {
		f.ended = append(f.ended, req.Conn)
	}
	switch b := env.Body.(type) {
	case *magpiepb.Envelope_Send:
		switch {
		case f.fail != 0:
			out = errorEnvelope(env.Id, f.fail, "refused", 0)
		case b.Send.ClientMsgId != "" && f.keys[b.Send.ClientMsgId] > 0:
			out.Body = &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{Seq: f.keys[b.Send.ClientMsgId], Duplicate: true}}
		default:
			f.stored = append(f.stored, b.Send)
			if f.keys == nil {
				f.keys = map[string]uint64{}
			}
			f.keys[b.Send.ClientMsgId] = uint64(len(f.stored))
			out.Body = &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{Seq: uint64(len(f.stored))}}
		}
	case *magpiepb.Envelope_Receipt:
		f.receipts = append(f.receipts, b.Receipt)
	case *magpiepb.Envelope_Sync:
		f.syncs = append(f.syncs, b.Sync)
		res := &magpiepb.SyncResponse{Conversations: f.convs}
		after := map[string]uint64{}
		if req.Conn.SessionExpiry > 0 {
			res.Conversations = nil // logic's DeviceSync sends none
			for c, seq := range f.position {
				after[c] = seq
			}
		}
		for _, c := range b.Sync.Cursors {
			after[c.ConversationId] = max(after[c.ConversationId], c.Seq)
		}
		for _, m := range f.msgs {
			if m.Seq > after[m.ConversationId] {
				if f.page > 0 && len(res.Messages) == f.page {
					res.More = true
					break
				}
				res.Messages = append(res.Messages, m)
			}
		}
		out.Body = &magpiepb.Envelope_SyncResult{SyncResult: res}
	}
	var gate chan struct{}
	switch env.Body.(type) {
	case *magpiepb.Envelope_Sync:
		gate = f.syncGate
	case *magpiepb.Envelope_Send:
		gate = f.sendGate
	}
	f.mu.Unlock()
	b, _ := proto.Marshal(out)
	f.pending.Add(1)
	go func() {
		defer f.pending.Done()
		if gate != nil {
			<-gate
		}
		done(b, nil)
	}()
}

func (f *mqttLogic) storedTexts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.stored {
		out = append(out, s.Text)
	}
	return out
}

type mqttServer struct {
	g     *Gateway
	logic *mqttLogic
	addr  string
}

func startMQTT(t *testing.T, cfg Config) *mqttServer {
	t.Helper()
	checkLeaks(t)
	cfg.ID = "gw-mqtt"
	ms := &mqttServer{logic: &mqttLogic{}}
	ms.g = New(cfg, ms.logic, newFakePresence(), testLogger(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- ms.g.ServeMQTT(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ms.g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("ServeMQTT returned %v, want ErrClosed", err)
		}
		ms.logic.pending.Wait()
	})
	return ms
}

// mqttClient speaks MQTT with the same codec.
type mqttClient struct {
	t       *testing.T
	conn    net.Conn
	br      *bufio.Reader
	version byte
}

func (ms *mqttServer) dial(t *testing.T, version byte) *mqttClient {
	t.Helper()
	c, err := net.Dial("tcp", ms.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mqttClient{t: t, conn: c, br: bufio.NewReader(c), version: version}
}

func (c *mqttClient) write(pk *packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.writeRaw(buf.Bytes())
}

func (c *mqttClient) writeRaw(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one packet, or returns the read error (io.EOF once closed).
func (c *mqttClient) next() (packets.Packet, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var pk packets.Packet
	b, err := c.br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

func (c *mqttClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	pk, err := c.next()
	if err != nil {
		c.t.Fatalf("want packet type %d, got %v", typ, err)
	}
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("want packet type %d, got %d (%+v)", typ, pk.FixedHeader.Type, pk)
	}
	return pk
}

func (c *mqttClient) expectClosed() {
	c.t.Helper()
	if pk, err := c.next(); err == nil {
		c.t.Fatalf("want the connection closed, got packet %d", pk.FixedHeader.Type)
	}
	c.conn.Close() // as clients do on EOF
}

// expectDisconnect reads a DISCONNECT with reason rc (MQTT 5), then EOF.
func (c *mqttClient) expectDisconnect(rc byte) {
	c.t.Helper()
	pk := c.expect(packets.Disconnect)
	if pk.ReasonCode != rc {
		c.t.Fatalf("DISCONNECT reason %#x, want %#x (%s)", pk.ReasonCode, rc, pk.Properties.ReasonString)
	}
	c.expectClosed()
}

func connectPacket(clientID, user, token string, clean bool) *packets.Packet {
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}}
	pk.Connect = packets.ConnectParams{
		ProtocolName: []byte("MQTT"), ClientIdentifier: clientID, Keepalive: 60, Clean: clean,
		UsernameFlag: user != "", Username: []byte(user), PasswordFlag: token != "", Password: []byte(token),
	}
	return pk
}

// connect connects as user's device "dev" and returns the CONNACK.
func (c *mqttClient) connect(user string, clean bool) packets.Packet {
	c.t.Helper()
	pk := connectPacket("dev", user, "good-"+user, clean)
	if c.version == 5 && !clean {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	c.write(pk)
	ack := c.expect(packets.Connack)
	if ack.ReasonCode != 0 {
		c.t.Fatalf("CONNACK %#x (%s)", ack.ReasonCode, ack.Properties.ReasonString)
	}
	return ack
}

func publishPacket(topic string, qos byte, pid uint16, payload string) *packets.Packet {
	return &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: pid, Payload: []byte(payload)}
}

func (c *mqttClient) subscribe(pid uint16, filters ...string) []byte {
	c.t.Helper()
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: pid}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	c.write(pk)
	ack := c.expect(packets.Suback)
	if ack.PacketID != pid {
		c.t.Fatalf("SUBACK for %d, want %d", ack.PacketID, pid)
	}
	return ack.ReasonCodes
}

func (c *mqttClient) ack(pid uint16) {
	c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid})
}

func (c *mqttClient) ping() {
	c.t.Helper()
	c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.expect(packets.Pingresp)
}

// inbox reads a PUBLISH on magpie/inbox and decodes its JSON payload.
func (c *mqttClient) inbox(qos byte) (packets.Packet, map[string]any) {
	c.t.Helper()
	pk := c.expect(packets.Publish)
	if pk.TopicName != topicInbox || pk.FixedHeader.Qos != qos {
		c.t.Fatalf("PUBLISH on %q at QoS %d, want %s at %d", pk.TopicName, pk.FixedHeader.Qos, topicInbox, qos)
	}
	var m map[string]any
	if err := json.Unmarshal(pk.Payload, &m); err != nil {
		c.t.Fatalf("payload %q: %v", pk.Payload, err)
	}
	return pk, m
}

func deliverTo(t *testing.T, ms *mqttServer, user string, m *magpiepb.Message) {
	t.Helper()
	b, err := proto.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: m}})
	if err != nil {
		t.Fatal(err)
	}
	ms.g.Deliver(&clusterpb.Delivery{Envelope: b, Conns: ms.g.UserConns(userID(user))})
}

func TestMQTTConnect(t *testing.T) {
	ms := startMQTT(t, Config{})
	for _, v := range []byte{4, 5} {
		c := ms.dial(t, v)
		ack := c.connect("alice", true)
		if ack.SessionPresent {
			t.Fatalf("v%d: a clean session is not present", v)
		}
		if v == 5 && (!ack.Properties.MaximumQosFlag || ack.Properties.MaximumQos != 1 || ack.Properties.MaximumPacketSize != MQTTMaxPacket) {
			t.Fatalf("v5 CONNACK properties %+v", ack.Properties)
		}
		c.ping()
		c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		c.expectClosed()
	}
	waitFor(t, "connections to close", func() bool { return ms.g.Conns() == 0 })

	// An empty client id (MQTT 5) gets the token's device.
	c := ms.dial(t, 5)
	c.write(connectPacket("", "alice", "good-alice", true))
	if ack := c.expect(packets.Connack); ack.ReasonCode != 0 || ack.Properties.AssignedClientID != "dev" {
		t.Fatalf("CONNACK %#x, assigned %q; want 0 and dev", ack.ReasonCode, ack.Properties.AssignedClientID)
	}
}

func TestMQTTConnectRefused(t *testing.T) {
	ms := startMQTT(t, Config{})
	for _, tc := range []struct {
		name         string
		pk           *packets.Packet
		want5, want4 byte
	}{
		{"bad token", connectPacket("dev", "alice", "bad", true), rcBadCredentials, rc3BadCredentials},
		{"no password", connectPacket("dev", "alice", "", true), rcBadCredentials, rc3BadCredentials},
		{"another user's token", connectPacket("dev", "alice", "good-bob", true), rcBadCredentials, rc3BadCredentials},
		{"client id is not the device", connectPacket("phone", "alice", "good-alice", true), rcClientIDInvalid, rc3IdentifierRejected},
	} {
		for _, v := range []byte{4, 5} {
			c := ms.dial(t, v)
			c.write(tc.pk)
			ack := c.expect(packets.Connack)
			want := map[byte]byte{4: tc.want4, 5: tc.want5}[v]
			if ack.ReasonCode != want {
				t.Errorf("%s v%d: CONNACK %#x, want %#x", tc.name, v, ack.ReasonCode, want)
			}
			c.expectClosed()
		}
	}
	// 3.1.1: an empty client id needs a clean session.
	c := ms.dial(t, 4)
	c.write(connectPacket("", "alice", "good-alice", false))
	if ack := c.expect(packets.Connack); ack.ReasonCode != rc3IdentifierRejected {
		t.Fatalf("CONNACK %#x, want %#x", ack.ReasonCode, rc3IdentifierRejected)
	}
	// Protocol level 3 (MQIsdp) is refused with 3.1.1's code.
	c = ms.dial(t, 4)
	pk := connectPacket("dev", "alice", "good-alice", true)
	pk.Connect.ProtocolName = []byte("MQIsdp")
	pk.ProtocolVersion = 3
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.writeRaw(buf.Bytes())
	if ack := c.expect(packets.Connack); ack.ReasonCode != rc3UnacceptableVersion {
		t.Fatalf("CONNACK %#x, want %#x", ack.ReasonCode, rc3UnacceptableVersion)
	}
	// Anything but CONNECT first: closed.
	c = ms.dial(t, 4)
	c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.expectClosed()
}

func TestMQTTPublish(t *testing.T) {
	ms := startMQTT(t, Config{})
	c := ms.dial(t, 5)
	c.connect("alice", true)

	c.write(publishPacket("magpie/to/user/bob", 1, 7, "hello bob"))
	if ack := c.expect(packets.Puback); ack.PacketID != 7 || ack.ReasonCode != 0 {
		t.Fatalf("PUBACK %d %#x, want 7 success", ack.PacketID, ack.ReasonCode)
	}
	// The same packet again with DUP: stored once.
	dup := publishPacket("magpie/to/user/bob", 1, 7, "hello bob")
	dup.FixedHeader.Dup = true
	c.write(dup)
	c.expect(packets.Puback)
	// The packet id again without DUP is a new message, even with the same
	// payload: stored again.
	c.write(publishPacket("magpie/to/user/bob", 1, 7, "hello bob"))
	c.expect(packets.Puback)
	c.write(publishPacket("magpie/to/group/g_1", 0, 0, "to the group"))
	c.ping() // the QoS 0 send was forwarded before the ping
	waitFor(t, "the sends", func() bool { return len(ms.logic.storedTexts()) == 3 })
	if got := strings.Join(ms.logic.storedTexts(), "|"); got != "hello bob|hello bob|to the group" {
		t.Fatalf("stored %q", got)
	}
	ms.logic.mu.Lock()
	s0, s2 := ms.logic.stored[0], ms.logic.stored[2]
	ms.logic.mu.Unlock()
	if s0.ToUser != "bob" || s0.ClientMsgId == "" || s2.ToGroup != "g_1" || s2.ClientMsgId != "" {
		t.Fatalf("sends %v and %v", s0, s2)
	}

	// Refused topics and payloads, each with its reason; the connection stays.
	for _, tc := range []struct {
		topic, payload string
		want           byte
	}{
		{"elsewhere", "x", rcNotAuthorized},
		{"magpie/inbox", "x", rcNotAuthorized},
		{"magpie/to/user/b", "x", rcTopicNameInvalid},
		{"magpie/to/robot/x", "x", rcTopicNameInvalid},
		{"magpie/to/group/has space", "x", rcTopicNameInvalid},
		{"magpie/to/user/bob", "\xff\xfe", rcPayloadFormatInvalid},
	} {
		c.write(publishPacket(tc.topic, 1, 9, tc.payload))
		if ack := c.expect(packets.Puback); ack.PacketID != 9 || ack.ReasonCode != tc.want {
			t.Errorf("%q %q: PUBACK %#x, want %#x", tc.topic, tc.payload, ack.ReasonCode, tc.want)
		}
	}
	c.ping()

	// Logic's refusals: for good, a PUBACK with the reason; to retry, a
	// DISCONNECT so that the client sends it again.
	ms.logic.mu.Lock()
	ms.logic.fail = wire.CodeNotFound
	ms.logic.mu.Unlock()
	c.write(publishPacket("magpie/to/user/nobody", 1, 10, "x"))
	if ack := c.expect(packets.Puback); ack.ReasonCode != rcTopicNameInvalid {
		t.Fatalf("PUBACK %#x, want %#x", ack.ReasonCode, rcTopicNameInvalid)
	}
	ms.logic.mu.Lock()
	ms.logic.fail = wire.CodeUnavailable
	ms.logic.mu.Unlock()
	c.write(publishPacket("magpie/to/user/bob", 1, 11, "x"))
	c.expectDisconnect(rcServerBusy)
}

func TestMQTTProtocolViolations(t *testing.T) {
	ms := startMQTT(t, Config{})
	for _, tc := range []struct {
		name string
		pk   *packets.Packet
		raw  []byte
		want byte
	}{
		{"QoS 2", publishPacket("magpie/to/user/bob", 2, 1, "x"), nil, rcQoSNotSupported},
		{"retain", &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: "magpie/to/user/bob", Payload: []byte("x")}, nil, rcRetainNotSupported},
		{"wildcard topic", publishPacket("magpie/to/user/+", 0, 0, "x"), nil, rcProtocolError},
		{"topic alias", func() *packets.Packet {
			pk := publishPacket("magpie/to/user/bob", 0, 0, "x")
			pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 1, true
			return pk
		}(), nil, rcTopicAliasInvalid},
		{"second CONNECT", connectPacket("dev", "alice", "good-alice", true), nil, rcProtocolError},
		{"PUBREL", nil, []byte{0x62, 0x02, 0x00, 0x01}, rcQoSNotSupported},
		{"bad flags", nil, []byte{0xC1, 0x00}, rcMalformed}, // PINGREQ with a flag bit
		{"too large", nil, append([]byte{0x30}, 0xff, 0xff, 0x04), rcPacketTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ms.dial(t, 5)
			c.connect("alice", true)
			if tc.pk != nil {
				c.write(tc.pk)
			} else {
				c.writeRaw(tc.raw)
			}
			c.expectDisconnect(tc.want)
		})
	}
}

func TestMQTTSubscribe(t *testing.T) {
	ms := startMQTT(t, Config{})
	c := ms.dial(t, 5)
	c.connect("alice", true)
	got := c.subscribe(3, "magpie/inbox", "#", "magpie/+/x", "a/#/b", "$share/g/magpie/inbox")
	want := []byte{1, rcNotAuthorized, rcNotAuthorized, rcTopicFilterInvalid, rcSharedSubsUnsupported}
	if !bytes.Equal(got, want) {
		t.Fatalf("SUBACK %x, want %x", got, want)
	}
	c4 := ms.dial(t, 4)
	c4.write(connectPacket("dev", "bob", "good-bob", true))
	c4.expect(packets.Connack)
	if got := c4.subscribe(1, "magpie/inbox", "#"); !bytes.Equal(got, []byte{1, 0x80}) {
		t.Fatalf("3.1.1 SUBACK %x", got)
	}

	// Stored messages at QoS 1; PUBACK moves the delivered cursor.
	deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "p_1_2", Seq: 4, Sender: "bob", Text: "hi"})
	pk, m := c.inbox(1)
	if m["text"] != "hi" || m["seq"] != "4" || m["sender"] != "bob" {
		t.Fatalf("payload %v", m)
	}
	c.ack(pk.PacketID)
	// Transient ones at QoS 0, and acks of them move nothing.
	deliverTo(t, ms, "alice", &magpiepb.Message{Transient: true, Kind: magpiepb.MessageKind_MESSAGE_KIND_NOTIFICATION, Text: "ding"})
	if _, m := c.inbox(0); m["text"] != "ding" {
		t.Fatalf("payload %v", m)
	}
	c.ping()
	waitFor(t, "the receipt", func() bool {
		ms.logic.mu.Lock()
		defer ms.logic.mu.Unlock()
		return len(ms.logic.receipts) == 1
	})
	ms.logic.mu.Lock()
	r := ms.logic.receipts[0]
	ms.logic.mu.Unlock()
	if r.ConversationId != "p_1_2" || r.Seq != 4 || r.Kind != magpiepb.ReceiptKind_RECEIPT_KIND_DELIVERED {
		t.Fatalf("receipt %v", r)
	}
	// The same seq again (a live push after a catch-up): not published twice.
	deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "p_1_2", Seq: 4, Text: "hi"})
	deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "p_1_2", Seq: 5, Text: "next"})
	if _, m := c.inbox(1); m["seq"] != "5" {
		t.Fatalf("got %v, want seq 5", m)
	}

	// Unsubscribed: nothing more.
	c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 4, Filters: packets.Subscriptions{{Filter: "magpie/inbox"}}})
	if ack := c.expect(packets.Unsuback); ack.PacketID != 4 || !bytes.Equal(ack.ReasonCodes, []byte{0}) {
		t.Fatalf("UNSUBACK %+v", ack)
	}
	deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "p_1_2", Seq: 6, Text: "unseen"})
	c.ping() // a PUBLISH would come before the PINGRESP
}

func TestMQTTTakeover(t *testing.T) {
	ms := startMQTT(t, Config{})
	old := ms.dial(t, 5)
	old.connect("alice", true)
	c := ms.dial(t, 5)
	c.connect("alice", true)
	old.expectDisconnect(rcSessionTakenOver)
	c.ping()
	// Kicks map to reasons: logged out is not authorized.
	ms.g.Kick(ms.g.UserConns(userID("alice")), wire.CodeLoggedOut, "logged out")
	c.expectDisconnect(rcNotAuthorized)
}

func TestMQTTCatchUp(t *testing.T) {
	ms := startMQTT(t, Config{})
	msg := func(conv string, seq uint64) *magpiepb.Message {
		return &magpiepb.Message{ConversationId: conv, Seq: seq, Sender: "bob", Text: "m"}
	}
	// The user's delivered cursor is 4 (another device got it all); the
	// device's own position is 2.
	ms.logic.convs = []*magpiepb.ConversationState{{ConversationId: "p_1_2", LastSeq: 4, DeliveredSeq: 4}}
	ms.logic.position = map[string]uint64{"p_1_2": 2}
	ms.logic.msgs = []*magpiepb.Message{msg("p_1_2", 1), msg("p_1_2", 2), msg("p_1_2", 3), msg("p_1_2", 4)}
	for _, v := range []byte{4, 5} {
		ms.logic.present = v == 5
		c := ms.dial(t, v)
		if ack := c.connect("alice", false); ack.SessionPresent != (v == 5) {
			t.Fatalf("v%d: session present %v, want logic's %v", v, ack.SessionPresent, v == 5)
		}
		// What came after the device's position, in order, at QoS 1,
		// without a SUBSCRIBE.
		for _, want := range []string{"3", "4"} {
			if _, m := c.inbox(1); m["seq"] != want {
				t.Fatalf("v%d: got seq %v, want %s", v, m["seq"], want)
			}
		}
		c.ping()
		c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		c.expectClosed()
	}
	waitFor(t, "logic told the sessions' connections closed", func() bool {
		ms.logic.mu.Lock()
		defer ms.logic.mu.Unlock()
		return len(ms.logic.ended) == 2
	})
	ms.logic.mu.Lock()
	for i, want := range []uint32{sessionNeverExpires, 3600} { // 3.1.1: until a clean session; 5: connectPacket's
		if got := ms.logic.sessions[i]; got.SessionExpiry != want || got.CleanStart {
			t.Errorf("session %d: expiry %d, clean %v; want %d, false", i, got.SessionExpiry, got.CleanStart, want)
		}
		ended := false // the connections' ends come in any order
		for _, e := range ms.logic.ended {
			ended = ended || (e.Conn == ms.logic.sessions[i].Conn && e.SessionExpiry == want)
		}
		if !ended {
			t.Errorf("session %d's end not told to logic: %v", i, ms.logic.ended)
		}
	}
	ms.logic.mu.Unlock()

	// A live push beyond the next seq starts a catch-up of the gap.
	c := ms.dial(t, 5)
	c.connect("alice", false)
	c.inbox(1)
	c.inbox(1)
	ms.logic.mu.Lock()
	ms.logic.msgs = append(ms.logic.msgs, msg("p_1_2", 5), msg("p_1_2", 6))
	ms.logic.mu.Unlock()
	deliverTo(t, ms, "alice", msg("p_1_2", 6))
	for _, want := range []string{"5", "6"} {
		if _, m := c.inbox(1); m["seq"] != want {
			t.Fatalf("got seq %v, want %s", m["seq"], want)
		}
	}
	c.ping() // and 6 only once
}

// TestMQTTCatchUpPages: a persistent session's catch-up pages through
// every conversation with missed messages, not only those whose state
// fits one sync answer (here none), and sends each message once.
func TestMQTTCatchUpPages(t *testing.T) {
	ms := startMQTT(t, Config{})
	var want []string
	for i := range 5 {
		conv := "p_1_" + string(rune('2'+i))
		for seq := uint64(1); seq <= 3; seq++ {
			ms.logic.msgs = append(ms.logic.msgs, &magpiepb.Message{ConversationId: conv, Seq: seq, Text: "m"})
			want = append(want, conv+"/"+string(rune('0'+seq)))
		}
	}
	ms.logic.page = 2
	c := ms.dial(t, 5)
	c.connect("alice", false)
	for _, w := range want {
		pk, m := c.inbox(1)
		if got := m["conversation_id"].(string) + "/" + m["seq"].(string); got != w {
			t.Fatalf("got %s, want %s", got, w)
		}
		c.ack(pk.PacketID)
	}
	c.ping() // nothing more
	ms.logic.mu.Lock()
	defer ms.logic.mu.Unlock()
	if len(ms.logic.syncs) != 8 { // 15 messages by 2, and a last empty answer
		t.Errorf("%d syncs, want 8", len(ms.logic.syncs))
	}
	if len(ms.logic.syncs[0].Cursors) != 0 {
		t.Errorf("the first sync sent cursors %v: it starts from the device's position", ms.logic.syncs[0].Cursors)
	}
}

// TestMQTTCleanSession: a clean session is not caught up and tells logic
// to drop the stored one (no expiry); an MQTT 5 clean start with an
// expiry keeps a new one.
func TestMQTTCleanSession(t *testing.T) {
	ms := startMQTT(t, Config{})
	ms.logic.present = true
	ms.logic.msgs = []*magpiepb.Message{{ConversationId: "p_1_2", Seq: 1, Text: "m"}}
	for _, v := range []byte{4, 5} {
		c := ms.dial(t, v)
		pk := connectPacket("dev", "alice", "good-alice", true)
		if v == 5 {
			pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
		}
		c.write(pk)
		if ack := c.expect(packets.Connack); ack.SessionPresent {
			t.Fatalf("v%d: a clean session is not present", v)
		}
		c.ping() // no catch-up
	}
	ms.logic.mu.Lock()
	defer ms.logic.mu.Unlock()
	if len(ms.logic.syncs) != 0 {
		t.Errorf("clean sessions synced: %v", ms.logic.syncs)
	}
	for i, want := range []uint32{0, 3600} {
		if got := ms.logic.sessions[i]; got.SessionExpiry != want || !got.CleanStart {
			t.Errorf("session %d: expiry %d, clean %v; want %d, true", i, got.SessionExpiry, got.CleanStart, want)
		}
	}
}

// TestMQTTSessionEnd: the end of a connection with a stored session is
// told to logic (its expiry counts from then); a clean session's is not.
func TestMQTTSessionEnd(t *testing.T) {
	ms := startMQTT(t, Config{})
	clean := ms.dial(t, 4)
	clean.connect("alice", true)
	clean.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	clean.expectClosed()
	c := ms.dial(t, 5)
	c.connect("alice", false)
	c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.expectClosed()
	waitFor(t, "logic told the session's connection closed", func() bool {
		ms.logic.mu.Lock()
		defer ms.logic.mu.Unlock()
		return len(ms.logic.ended) > 0
	})
	ms.logic.mu.Lock()
	defer ms.logic.mu.Unlock()
	if len(ms.logic.ended) != 1 || ms.logic.ended[0].Conn != ms.logic.sessions[1].Conn || ms.logic.ended[0].SessionExpiry != 3600 {
		t.Fatalf("ended %v, want only the persistent session's connection", ms.logic.ended)
	}
}

// A live message that arrives while a catch-up of another conversation
// runs (a clean session's syncs only that one) is held and published
// after it; if it follows a lost push it must still start a catch-up of
// its own gap: published past the gap, it made the device skip the lost
// message for good.
func TestMQTTHeldMessageFillsItsGap(t *testing.T) {
	ms := startMQTT(t, Config{})
	msg := func(conv string, seq uint64) *magpiepb.Message {
		return &magpiepb.Message{ConversationId: conv, Seq: seq, Sender: "bob", Text: fmt.Sprintf("%s/%d", conv, seq)}
	}
	c := ms.dial(t, 5)
	c.connect("alice", true) // a clean session: a gap's catch-up syncs only its conversation
	c.subscribe(1, "magpie/inbox")
	ms.logic.mu.Lock()
	ms.logic.msgs = []*magpiepb.Message{msg("p_1_2", 1), msg("g_9", 1), msg("p_1_2", 2), msg("p_1_2", 3), msg("g_9", 2), msg("g_9", 3)}
	ms.logic.mu.Unlock()
	deliverTo(t, ms, "alice", msg("p_1_2", 1))
	deliverTo(t, ms, "alice", msg("g_9", 1))
	for _, want := range []string{"p_1_2/1", "g_9/1"} {
		if pk, m := c.inbox(1); m["text"] != want {
			t.Fatalf("got %v, want %s", m["text"], want)
		} else {
			c.ack(pk.PacketID)
		}
	}
	gate := make(chan struct{})
	ms.logic.mu.Lock()
	ms.logic.syncGate = gate
	ms.logic.mu.Unlock()
	deliverTo(t, ms, "alice", msg("p_1_2", 3)) // 2's push was lost: a catch-up of p_1_2, waiting at the gate
	deliverTo(t, ms, "alice", msg("g_9", 3))   // 2's push was lost too: held behind it
	c.ping()
	close(gate)
	for _, want := range []string{"p_1_2/2", "p_1_2/3", "g_9/2", "g_9/3"} {
		if _, m := c.inbox(1); m["text"] != want {
			t.Fatalf("got %v, want %s", m["text"], want)
		}
	}
	c.ping() // and nothing twice
}

func TestMQTTReceiveMaximum(t *testing.T) {
	ms := startMQTT(t, Config{})
	c := ms.dial(t, 5)
	pk := connectPacket("dev", "alice", "good-alice", true)
	pk.Properties.ReceiveMaximum = 2
	c.write(pk)
	c.expect(packets.Connack)
	c.subscribe(1, "magpie/inbox")
	for seq := uint64(1); seq <= 4; seq++ {
		deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "c", Seq: seq, Text: "m"})
	}
	p1, _ := c.inbox(1)
	c.inbox(1)
	c.ping() // no third one while two are unacknowledged
	c.ack(p1.PacketID)
	if _, m := c.inbox(1); m["seq"] != "3" {
		t.Fatalf("got %v, want seq 3", m["seq"])
	}
}

func TestMQTTKeepalive(t *testing.T) {
	ms := startMQTT(t, Config{})
	c := ms.dial(t, 5)
	pk := connectPacket("dev", "alice", "good-alice", true)
	pk.Connect.Keepalive = 1
	c.write(pk)
	c.expect(packets.Connack)
	c.expectDisconnect(rcKeepAliveTimeout) // silent for one and a half keepalives
}

func TestMQTTReasonTables(t *testing.T) {
	// Every wire code maps to a reason MQTT 5 allows in DISCONNECT, CONNACK and PUBACK.
	disconnect := map[byte]bool{0x80: true, 0x81: true, 0x82: true, 0x87: true, 0x89: true, 0x8B: true, 0x8D: true, 0x8E: true, 0x95: true, 0x96: true, 0x97: true, 0x9C: true}
	connack := map[byte]bool{0x80: true, 0x86: true, 0x87: true, 0x88: true, 0x9F: true}
	puback := map[byte]bool{0x80: true, 0x87: true, 0x90: true, 0x97: true, 0x99: true}
	for _, code := range wire.Codes() {
		if rc := disconnectReason(code); !disconnect[rc] {
			t.Errorf("%v: DISCONNECT %#x", code, rc)
		}
		if v5, _ := connackReason(code); !connack[v5] {
			t.Errorf("%v: CONNACK %#x", code, v5)
		}
		if rc, retry := pubackReason(code); !retry && !puback[rc] {
			t.Errorf("%v: PUBACK %#x", code, rc)
		}
	}
}

// The per-connection limits of docs/mqtt.md's Limits table, each at a
// small setting, with the reason code the table gives.
func TestMQTTLimits(t *testing.T) {
	t.Run("requests per second", func(t *testing.T) {
		ms := startMQTT(t, Config{RateLimit: 1, RateBurst: 3})
		c := ms.dial(t, 5)
		c.connect("alice", true)
		for range 6 {
			c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		}
		for {
			pk, err := c.next()
			if err != nil {
				t.Fatalf("closed without a DISCONNECT: %v", err)
			}
			if pk.FixedHeader.Type == packets.Pingresp {
				continue
			}
			if pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0x96 {
				t.Fatalf("got packet %d reason %#x, want DISCONNECT 0x96", pk.FixedHeader.Type, pk.ReasonCode)
			}
			break
		}
	})
	t.Run("unanswered PUBLISHes", func(t *testing.T) {
		ms := startMQTT(t, Config{MaxInFlight: 2})
		gate := make(chan struct{})
		ms.logic.mu.Lock()
		ms.logic.sendGate = gate
		ms.logic.mu.Unlock()
		t.Cleanup(func() { close(gate) }) // before the server's cleanup waits for the answers
		c := ms.dial(t, 5)
		if ack := c.connect("alice", true); ack.Properties.ReceiveMaximum != 2 {
			t.Errorf("CONNACK Receive Maximum %d, want 2 (MaxInFlight)", ack.Properties.ReceiveMaximum)
		}
		for pid := uint16(1); pid <= 3; pid++ {
			c.write(publishPacket("magpie/to/user/bob", 1, pid, "held"))
		}
		c.expectDisconnect(0x96)
	})
	t.Run("unacknowledged deliveries", func(t *testing.T) {
		ms := startMQTT(t, Config{SendQueue: 4})
		c := ms.dial(t, 5)
		pk := connectPacket("dev", "alice", "good-alice", true)
		pk.Properties.ReceiveMaximum = 1
		c.write(pk)
		c.expect(packets.Connack)
		c.subscribe(1, "magpie/inbox")
		// One in flight, four waiting for a packet id (--send-queue), the
		// sixth is one too many: a slow consumer. Each delivery is written
		// before the next (the PINGRESP follows it), so the send queue
		// itself never holds more than one.
		deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "c", Seq: 1, Text: "m"})
		c.inbox(1)
		for seq := uint64(2); seq <= 5; seq++ {
			deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "c", Seq: seq, Text: "m"})
			c.ping()
		}
		deliverTo(t, ms, "alice", &magpiepb.Message{ConversationId: "c", Seq: 6, Text: "m"})
		dis := c.expect(packets.Disconnect)
		if dis.ReasonCode != 0x97 || dis.Properties.ReasonString != "too many unacknowledged messages" {
			t.Fatalf("DISCONNECT %#x %q, want 0x97 too many unacknowledged messages", dis.ReasonCode, dis.Properties.ReasonString)
		}
	})
	t.Run("time to CONNECT", func(t *testing.T) {
		ms := startMQTT(t, Config{AuthTimeout: 200 * time.Millisecond})
		c := ms.dial(t, 5)
		c.expectClosed() // nothing sent: closed after the auth timeout
	})
}
