package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/checker"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// MQTT devices in the checked load (LoadConfig.MQTTUsers, docs/mqtt.md):
// users with one MQTT 5 device each, a persistent session (clean start 0,
// session expiry > 0), so every reconnect is caught up by the gateway from
// the device's stored delivered position (docs/mqtt.md). Their sends are QoS 1 PUBLISHes, one at a
// time, redelivered with DUP and the same packet id across reconnects
// until PUBACK; a PUBACK says stored but not at which seq, so the checker
// places them from the views (checker.Recorder.AckedUnsequenced). Their
// inbox deliveries are recorded as shown, after which they are PUBACKed
// (moving the device's position and the user's delivered cursor). Each
// such user has this one device.

// An MQTT send's text is "m " + its harness id; the server stores it under
// a key of its own ("mqtt-…", from the client id, packet id, topic and
// payload), so views name the message by its text (harnessID).
const mqttIDPrefix = "mq-"

// harnessID is the client id the checker knows a shown message by.
func harnessID(clientMsgID, text string) string {
	if strings.HasPrefix(clientMsgID, "mqtt-") {
		if id, ok := strings.CutPrefix(text, "m "); ok && strings.HasPrefix(id, mqttIDPrefix) {
			return id
		}
	}
	return clientMsgID
}

// MQTTDevice is one MQTT device of the load.
type MQTTDevice struct {
	load *Load
	name string // the client id and the login's device
	user string
	idx  int

	mu      sync.Mutex
	conn    net.Conn
	since   time.Time         // of the current connection, or of the disconnect
	cursors map[string]uint64 // conv → the highest seq shown or sent
	paused  time.Time         // no reconnect before
	closed  bool
	acks    chan mqttAck // PUBACKs of this device's PUBLISHes, any connection
	kick    chan struct{}
	pid     uint16

	wmu sync.Mutex // one writer per connection

	// Connects counts CONNACKs; Present the ones that said session
	// present; Redelivered the deliveries at or below what was already
	// shown (QoS 1 is at least once: shown once, PUBACKed again).
	Connects, Present, Redelivered atomic.Int64
	done                           sync.WaitGroup
}

type mqttAck struct {
	conn net.Conn
	pid  uint16
	rc   byte
}

// mqttKeepalive is the devices' keepalive; they ping at a third of it.
const mqttKeepalive = 10 * time.Second

func (l *Load) startMQTT(ctx context.Context) error {
	for i := range l.cfg.MQTTUsers {
		u := fmt.Sprintf("%s_mqtt%d", l.prefix, i)
		if _, err := client.Register(ctx, l.cfg.Servers[i%len(l.cfg.Servers)], u, password); err != nil {
			return fmt.Errorf("register %s: %w", u, err)
		}
		d := &MQTTDevice{load: l, name: u + "-m", user: u, idx: i, cursors: map[string]uint64{},
			acks: make(chan mqttAck, 16), kick: make(chan struct{}, 1)}
		l.Rec.Device(d.name, u, false)
		l.mqttUsers = append(l.mqttUsers, u)
		l.mqtt = append(l.mqtt, d)
	}
	for _, d := range l.mqtt {
		d.done.Add(1)
		go d.connLoop()
	}
	// Every device connected once before the load starts.
	deadline := time.Now().Add(2 * time.Minute)
	for _, d := range l.mqtt {
		for d.Connects.Load() == 0 {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("mqtt device %s never connected", d.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// MQTTDevices returns the MQTT devices.
func (l *Load) MQTTDevices() []*MQTTDevice { return l.mqtt }

// connLoop keeps the device connected until Close: log in, CONNECT with
// the persistent session, read until the connection ends, again.
func (d *MQTTDevice) connLoop() {
	defer d.done.Done()
	backoff := 100 * time.Millisecond
	for {
		d.mu.Lock()
		closed, wait := d.closed, time.Until(d.paused)
		d.mu.Unlock()
		if closed {
			return
		}
		if wait > 0 {
			time.Sleep(wait)
			continue
		}
		conn, br, err := d.dial()
		if err != nil {
			time.Sleep(backoff/2 + rand.N(backoff))
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		d.mu.Lock()
		if d.closed || time.Now().Before(d.paused) {
			// Closed, or a Flap while this dial ran: away means away.
			closed := d.closed
			d.mu.Unlock()
			conn.Close()
			if closed {
				return
			}
			continue
		}
		d.conn, d.since = conn, time.Now()
		d.mu.Unlock()
		stop := make(chan struct{})
		go d.pinger(conn, stop)
		d.readLoop(conn, br)
		close(stop)
		conn.Close()
		d.mu.Lock()
		if d.conn == conn {
			d.conn, d.since = nil, time.Now()
		}
		d.mu.Unlock()
	}
}

// dial logs in (a new token each time: the last one may belong to a
// gateway that is gone) and connects to the MQTT listener the login names.
func (d *MQTTDevice) dial() (net.Conn, *bufio.Reader, error) {
	l := d.load
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"username": d.user, "password": password, "device": d.name})
	hc := l.hcs[d.idx%len(l.hcs)]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.Servers[d.idx%len(l.cfg.Servers)]+"/v1/login", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	var login struct {
		Token   string `json:"token"`
		Gateway struct {
			MQTT string `json:"mqtt"`
		} `json:"gateway"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || login.Token == "" {
		return nil, nil, fmt.Errorf("login %s: HTTP %d %v", d.name, resp.StatusCode, err)
	}
	addr := login.Gateway.MQTT
	if addr == "" {
		return nil, nil, fmt.Errorf("login %s: no MQTT gateway named", d.name)
	}
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
	pk.Connect = packets.ConnectParams{
		ProtocolName: []byte("MQTT"), ClientIdentifier: d.name, Keepalive: uint16(mqttKeepalive / time.Second),
		UsernameFlag: true, Username: []byte(d.user), PasswordFlag: true, Password: []byte(login.Token),
	}
	pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	pk.Properties.ReceiveMaximum = 64
	if err := d.write(conn, pk); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	ack, err := readMQTT(conn, br, 10*time.Second)
	if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		conn.Close()
		return nil, nil, fmt.Errorf("connect %s: %v (packet %d, reason %#x)", d.name, err, ack.FixedHeader.Type, ack.ReasonCode)
	}
	d.Connects.Add(1)
	if ack.SessionPresent {
		d.Present.Add(1)
	}
	return conn, br, nil
}

func (d *MQTTDevice) pinger(conn net.Conn, stop chan struct{}) {
	t := time.NewTicker(mqttKeepalive / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if d.write(conn, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}) != nil {
				conn.Close()
				return
			}
		}
	}
}

// readLoop handles what the gateway sends until the connection ends.
func (d *MQTTDevice) readLoop(conn net.Conn, br *bufio.Reader) {
	for {
		pk, err := readMQTT(conn, br, 2*mqttKeepalive)
		if err != nil {
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			d.delivered(pk)
			if pk.FixedHeader.Qos == 1 {
				ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
				if d.write(conn, ack) != nil {
					return
				}
			}
		case packets.Puback:
			select {
			case d.acks <- mqttAck{conn: conn, pid: pk.PacketID, rc: pk.ReasonCode}:
			default: // nobody waits for it: a late answer to an earlier packet
			}
		case packets.Disconnect:
			return
		}
	}
}

// delivered records an inbox PUBLISH: shown once per (conversation, seq),
// in the order it came; the device's own sends come back too and are not
// shown (as the SDK's), but count as seen.
func (d *MQTTDevice) delivered(pk packets.Packet) {
	var m magpiepb.Message
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(pk.Payload, &m); err != nil || m.Seq == 0 {
		return // transient, or not a message: nothing to check
	}
	d.mu.Lock()
	if m.Seq <= d.cursors[m.ConversationId] {
		d.mu.Unlock()
		d.Redelivered.Add(1)
		return
	}
	d.cursors[m.ConversationId] = m.Seq
	d.mu.Unlock()
	if m.Sender == d.user && m.Event == nil {
		return // its own send (this user has no other device that sends)
	}
	d.load.showMessage(d.name, client.Message{
		ConversationID: m.ConversationId, Seq: m.Seq, Sender: m.Sender, ClientMsgID: m.ClientMsgId, Text: m.Text,
		Event: groupEvent(m.Event),
	})
}

func groupEvent(ev *magpiepb.GroupEvent) *client.GroupEvent {
	if ev == nil {
		return nil
	}
	return &client.GroupEvent{Type: ev.Type, Actor: ev.Actor, Usernames: ev.Usernames}
}

// sendLoop: like Device.sendLoop, at the same rate; to the user's two SDK
// peers and, every fourth, to the MQTT group.
func (d *MQTTDevice) sendLoop() {
	l := d.load
	defer l.senders.Done()
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	next := time.Now().Add(time.Duration(d.idx%10) * interval / 10)
	for n := 0; ; n++ {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-l.stop:
				return
			case <-time.After(wait):
			}
		}
		select {
		case <-l.stop:
			return
		default:
		}
		next = next.Add(interval)
		if time.Until(next) < -5*interval {
			next = time.Now()
		}
		id := fmt.Sprintf("%s%s-%d", mqttIDPrefix, d.name, n)
		var topic string
		var members []string
		if g := l.mqttGroup; g != "" && n%4 == 3 {
			topic, members = "magpie/to/group/"+g, l.groups[g]
		} else {
			peer := l.users[(d.idx+n%2)%len(l.users)]
			topic, members = "magpie/to/user/"+peer, []string{d.user, peer}
		}
		d.send(id, topic, members)
	}
}

// send publishes one message at QoS 1 until PUBACK, a refusal, or
// SendTimeout: after a reconnect the same packet again, with DUP.
func (d *MQTTDevice) send(id, topic string, members []string) {
	l := d.load
	l.Rec.Invoke(id, d.name, members, time.Now())
	d.mu.Lock()
	d.pid = d.pid%65535 + 1
	pid := d.pid
	d.mu.Unlock()
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, PacketID: pid, Payload: []byte("m " + id)}
	deadline := time.Now().Add(l.cfg.SendTimeout)
	for time.Now().Before(deadline) {
		conn := d.current()
		if conn == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err := d.write(conn, pk); err != nil {
			conn.Close() // the read loop notices and reconnects
			pk.FixedHeader.Dup = true
			time.Sleep(50 * time.Millisecond)
			continue
		}
		pk.FixedHeader.Dup = true // from now on, a redelivery
		wait := time.NewTimer(time.Until(deadline))
		for answered := false; !answered; {
			select {
			case a := <-d.acks:
				if a.pid != pid {
					continue // a late PUBACK of an earlier packet
				}
				wait.Stop()
				if a.rc >= 0x80 {
					l.Rec.Ended(id, checker.Failed)
				} else {
					l.Rec.AckedUnsequenced(id, time.Now())
				}
				return
			case <-wait.C:
				answered = true
			case <-time.After(200 * time.Millisecond):
				// The connection this was published on is gone:
				// publish again on the next one.
				if d.current() != conn {
					wait.Stop()
					answered = true
				}
			}
		}
	}
	l.Rec.Ended(id, checker.Unknown)
}

func (d *MQTTDevice) current() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn
}

// Connected reports whether the device has a connection.
func (d *MQTTDevice) Connected() bool { return d.current() != nil }

// Flap closes the device's connection and keeps it away for pause; it
// comes back with its persistent session and is caught up by the gateway.
func (d *MQTTDevice) Flap(pause time.Duration) {
	d.mu.Lock()
	d.paused = time.Now().Add(pause)
	conn := d.conn
	d.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

func (d *MQTTDevice) close() {
	d.mu.Lock()
	d.closed = true
	conn := d.conn
	d.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	d.done.Wait()
}

func (d *MQTTDevice) write(conn net.Conn, pk *packets.Packet) error {
	pk.ProtocolVersion = 5
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		err = fmt.Errorf("mqtt device: no encoder for packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write(buf.Bytes())
	return err
}

// readMQTT reads one MQTT 5 packet.
func readMQTT(conn net.Conn, br *bufio.Reader, timeout time.Duration) (packets.Packet, error) {
	var pk packets.Packet
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = 5
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return pk, errors.Join(errors.New("mqtt device: bad packet"), err)
	}
	return pk, nil
}

// MQTTChurnFigure is what MQTTChurn did.
type MQTTChurnFigure struct {
	Flaps, Joins, Leaves, FailedChanges int
}

func (f *MQTTChurnFigure) String() string {
	return fmt.Sprintf("%d MQTT flaps (persistent sessions), %d joins, %d leaves of the MQTT group (%d changes failed)",
		f.Flaps, f.Joins, f.Leaves, f.FailedChanges)
}

// MQTTChurn flaps the MQTT devices but the first (0.2-3 s away, back with
// the persistent session), and makes the first MQTT user leave and rejoin
// the MQTT group, for d, drawn from seed; the devices' views must hold
// exactly the member windows. It ends a member again.
func (l *Load) MQTTChurn(ctx context.Context, d time.Duration, seed int64) *MQTTChurnFigure {
	f := &MQTTChurnFigure{}
	if len(l.mqtt) == 0 || l.mqttGroup == "" {
		return f
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 15))
	u := l.mqttUsers[0]
	// Membership changes through the HTTP API, as another device of the
	// user that never connects (so it moves no delivered cursor).
	api := client.New(client.Options{Server: l.cfg.Servers[0], Username: u, Password: password, Device: u + "-api", HTTPClient: l.hcs[0]})
	defer api.Close()
	member := true
	toggle := func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		if member {
			err = api.LeaveGroup(cctx, l.mqttGroup)
		} else {
			_, err = api.JoinGroup(cctx, l.mqttGroup)
		}
		switch {
		case err != nil:
			f.FailedChanges++
		case member:
			f.Leaves++
			member = false
		default:
			f.Joins++
			member = true
		}
	}
	for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; {
		if len(l.mqtt) > 1 && rng.IntN(2) == 0 {
			l.mqtt[1+rng.IntN(len(l.mqtt)-1)].Flap(time.Duration(200+rng.IntN(2800)) * time.Millisecond)
			f.Flaps++
		} else {
			toggle()
		}
		sleepCtx(ctx, time.Duration(500+rng.IntN(1000))*time.Millisecond)
	}
	for tries := 0; !member && tries < 5 && ctx.Err() == nil; tries++ {
		toggle()
	}
	return f
}

// MQTTAway is scenario 11's persistent-session check: one MQTT device
// away for d while messages to it are sent, then back.
type MQTTAway struct {
	Device         string
	Away           time.Duration
	Sent, Acked    int           // the scenario's own sends to the device's user while it was away
	MissedBack     int           // messages it had not shown when it reconnected
	SessionPresent bool          // the CONNACK said session present
	CaughtUp       time.Duration // from the reconnect until it showed them all
	OK             bool
}

func (a *MQTTAway) String() string {
	return fmt.Sprintf("%s away %v (%d sent to it meanwhile, %d ACKed), back with session present %v, %d messages to catch up, caught up after %v (ok %v)",
		a.Device, a.Away, a.Sent, a.Acked, a.SessionPresent, a.MissedBack, a.CaughtUp.Round(time.Millisecond), a.OK)
}

// awaySends is how many messages AwayMQTT sends to the away device's
// user itself, so that the catch-up has something to catch up whatever
// the load's routing sends it.
const awaySends = 5

// AwayMQTT takes the last MQTT device away for d, sends awaySends
// messages to its user from an SDK device meanwhile, and waits until it is
// back and shows everything acknowledged for it (within 120 s).
func (l *Load) AwayMQTT(ctx context.Context, d time.Duration) *MQTTAway {
	if len(l.mqtt) == 0 {
		return nil
	}
	dev := l.mqtt[len(l.mqtt)-1]
	a := &MQTTAway{Device: dev.name, Away: d}
	// From a connected device (a churn flap may still be reconnecting it).
	for wait := time.Now().Add(60 * time.Second); !dev.Connected() && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
	}
	present := dev.Present.Load()
	connects := dev.Connects.Load()
	dev.Flap(d)
	// The scenario's own sends, spread over the away time, from the
	// first device of the user that talks to this one.
	sender := l.devs[(dev.idx%len(l.users))*l.cfg.DevicesPerUser]
	prefix := "away-" + randHex(3)
	var acked atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := range awaySends {
			sleepCtx(ctx, d/(awaySends+1))
			id := fmt.Sprintf("%s-%d", prefix, k)
			sender.send(client.SendRequest{ClientMsgID: id, ToUser: dev.user, Text: "m " + id}, []string{sender.user, dev.user})
			if l.Rec.OutcomeOf(id) == checker.OK {
				acked.Add(1)
			}
		}
	}()
	a.Sent = awaySends
	deadline := time.Now().Add(d + 120*time.Second)
	a.MissedBack = missingAtReconnect(dev.Connects.Load, connects, func() int { return l.Rec.MissingOn(dev.name) },
		func() bool { return time.Now().Before(deadline) && ctx.Err() == nil })
	back := time.Now()
	a.SessionPresent = dev.Present.Load() > present
	wg.Wait()
	a.Acked = int(acked.Load())
	for l.Rec.MissingOn(dev.name) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	a.CaughtUp, a.OK = time.Since(back), l.Rec.MissingOn(dev.name) == 0
	return a
}

// missingAtReconnect polls missing while the device is away (connects
// still at before) and returns the last count taken before it connected
// again. Counting after the reconnect saw nothing: the gateway sends a
// persistent session's backlog right after the CONNACK, and the device had
// shown all of it before the poll (the 11:31 CI run: 40 messages shown in
// 1 ms, "0 to catch up"). A device shows nothing before its CONNACK is
// counted, so a count followed by an unchanged connects is one from before
// the reconnect.
func missingAtReconnect(connects func() int64, before int64, missing func() int, more func() bool) int {
	last := 0
	for more() {
		start := time.Now()
		n := missing()
		if connects() != before {
			return last
		}
		last = n
		// missing walks the history under the recorder's lock: leave it
		// free most of the time.
		time.Sleep(max(100*time.Millisecond, 2*time.Since(start)))
	}
	return last
}
