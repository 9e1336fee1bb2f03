//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/clustertest"
)

// The MQTT transport (docs/mqtt.md) against the real binary, driven by
// Debian's mosquitto clients and the Eclipse Paho Go clients (3.1.1 and 5).

// mqttServer is a serve with --mqtt on fixed addresses, so it can be
// killed and started again where the clients reconnect.
type mqttServer struct {
	*server
	data, httpAddr, tcpAddr, mqttAddr string
}

func startMQTTServer(t *testing.T) *mqttServer {
	t.Helper()
	ms := &mqttServer{data: t.TempDir(), httpAddr: freeAddr(t), tcpAddr: freeAddr(t), mqttAddr: freeAddr(t)}
	ms.start(t)
	return ms
}

func (ms *mqttServer) start(t *testing.T) {
	t.Helper()
	ms.server = startServer(t, ms.data, "--http", ms.httpAddr, "--tcp", ms.tcpAddr, "--mqtt", ms.mqttAddr)
	waitOutput(t, ms.out, "the MQTT listener", regexp.MustCompile(`MQTT for devices: `+regexp.QuoteMeta(ms.mqttAddr)))
}

// kill9 kills the server with SIGKILL: nothing is flushed or drained.
func (ms *mqttServer) kill9(t *testing.T) {
	t.Helper()
	_ = ms.cmd.Process.Kill()
	<-ms.exited
}

func (ms *mqttServer) port() string {
	_, p, _ := net.SplitHostPort(ms.mqttAddr)
	return p
}

// api calls the HTTP API and decodes the JSON answer into out.
func (ms *mqttServer) api(t *testing.T, method, path, token string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, "http://"+ms.httpAddr+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0 // the server is down: the caller retries
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkOpenAPI(t, "http://"+ms.httpAddr, method, req.URL.Path, resp, raw)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// account registers user and logs device in; it returns the token.
func (ms *mqttServer) account(t *testing.T, user, password, device string) string {
	t.Helper()
	ms.api(t, "POST", "/v1/users", "", map[string]string{"username": user, "password": password}, nil)
	var login struct {
		Token   string            `json:"token"`
		Gateway map[string]string `json:"gateway"`
	}
	if code := ms.api(t, "POST", "/v1/login", "", map[string]string{"username": user, "password": password, "device": device}, &login); code != 200 {
		t.Fatalf("login %s: HTTP %d", user, code)
	}
	if login.Gateway["mqtt"] != ms.mqttAddr {
		t.Fatalf("login names the MQTT gateway %q, want %q", login.Gateway["mqtt"], ms.mqttAddr)
	}
	return login.Token
}

// history returns the texts of a user's conversation, in seq order.
func (ms *mqttServer) history(t *testing.T, token, conv string) []string {
	t.Helper()
	var texts []string
	after := 0
	for {
		var page struct {
			Messages []struct {
				Seq  int    `json:"seq"`
				Text string `json:"text"`
			} `json:"messages"`
		}
		if code := ms.api(t, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=500", conv, after), token, nil, &page); code != 200 {
			t.Fatalf("history: HTTP %d", code)
		}
		if len(page.Messages) == 0 {
			return texts
		}
		for _, m := range page.Messages {
			texts = append(texts, m.Text)
			after = m.Seq
		}
	}
}

func mosquitto(t *testing.T, ctx context.Context, name string, args ...string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (apt-get install mosquitto-clients; .ci/run does)", name)
	}
	return exec.CommandContext(ctx, path, args...)
}

// TestMQTTMosquittoAndChat: a device publishes with mosquitto_pub and a
// user's `magpie chat` shows it; the user answers and mosquitto_sub prints
// it; bad topics, filters and tokens get their reason codes.
func TestMQTTMosquittoAndChat(t *testing.T) {
	ms := startMQTTServer(t)
	token := ms.account(t, "sensor1", "sensor1-pw", "dev1")
	runChat(t, ms.server, "alice", "alice-pw", ":q\n", "--register")
	alice := startChat(t, ms.server, "alice", "alice-pw")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev := []string{"-p", ms.port(), "-h", "127.0.0.1", "-i", "dev1", "-u", "sensor1", "-P", token}

	for _, v := range []string{"mqttv311", "mqttv5"} {
		text := "temperature 21.5 over " + v
		out, err := mosquitto(t, ctx, "mosquitto_pub", append(dev, "-V", v, "-q", "1", "-t", "magpie/to/user/alice", "-m", text)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub %s: %v\n%s", v, err, out)
		}
		waitOutput(t, alice.out, "alice sees the device's message", regexp.MustCompile(`\] sensor1: `+regexp.QuoteMeta(text)))
	}

	// The user answers; a subscribed device prints it.
	// stdbuf: mosquitto_sub's -d lines must reach the pipe as printed.
	sub := exec.CommandContext(ctx, "stdbuf", append([]string{"-oL", mosquitto(t, ctx, "mosquitto_sub").Path}, append(dev, "-V", "mqttv5", "-q", "1", "-t", "magpie/inbox", "-C", "1", "-d")...)...)
	subOut := &output{}
	sub.Stdout, sub.Stderr = subOut, subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, subOut, "the subscription", regexp.MustCompile(`received SUBACK`))
	alice.send(t, "sensor1;;set point 19")
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, subOut.String())
	}
	m := regexp.MustCompile(`(?m)^\{.*\}$`).FindString(subOut.String())
	var msg map[string]any
	if err := json.Unmarshal([]byte(m), &msg); err != nil || msg["text"] != "set point 19" || msg["sender"] != "alice" {
		t.Fatalf("mosquitto_sub printed %q (%v)", subOut.String(), err)
	}

	// Refusals, as mosquitto reports them.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a topic outside magpie/to", append(dev, "-V", "mqttv5", "-q", "1", "-t", "sensors/kitchen", "-m", "x"), "Not authorized"},
		{"no such user", append(dev, "-V", "mqttv5", "-q", "1", "-t", "magpie/to/user/nobody", "-m", "x"), "Topic Name invalid"},
		{"QoS 2", append(dev, "-V", "mqttv5", "-q", "2", "-t", "magpie/to/user/alice", "-m", "x"), "QoS not supported"},
		{"a wrong token (5)", []string{"-p", ms.port(), "-h", "127.0.0.1", "-i", "dev1", "-u", "sensor1", "-P", "wrong", "-V", "mqttv5", "-t", "x", "-m", "x"}, "Bad User Name or Password"},
		{"a wrong token (3.1.1)", []string{"-p", ms.port(), "-h", "127.0.0.1", "-i", "dev1", "-u", "sensor1", "-P", "wrong", "-V", "mqttv311", "-t", "x", "-m", "x"}, "bad user name or password"},
	} {
		out, _ := mosquitto(t, ctx, "mosquitto_pub", tc.args...).CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: mosquitto_pub said %q, want %q", tc.name, out, tc.want)
		}
	}
	out, _ := mosquitto(t, ctx, "mosquitto_sub", append(dev, "-V", "mqttv5", "-t", "#", "-C", "1", "-W", "5")...).CombinedOutput()
	if !strings.Contains(string(out), "All subscription requests were denied") {
		t.Errorf("subscribing to #: mosquitto_sub said %q", out)
	}
	// Nothing refused was stored: alice's conversation holds the three messages.
	aliceToken := ms.account(t, "alice", "alice-pw", "check")
	var convs struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	ms.api(t, "GET", "/v1/conversations", aliceToken, nil, &convs)
	if len(convs.Conversations) != 1 {
		t.Fatalf("alice's conversations: %+v", convs)
	}
	if got := ms.history(t, aliceToken, convs.Conversations[0].ID); len(got) != 3 {
		t.Fatalf("alice's conversation holds %q", got)
	}
}

// pahoConnect connects a Paho MQTT 5 client.
func pahoConnect(t *testing.T, addr, clientID, user, token string, cfg paho.ClientConfig) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = conn
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{
		ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(token), PasswordFlag: true,
	})
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, ca, err
}

// TestMQTTPahoReasonCodes: the reason codes of docs/mqtt.md as the Paho
// MQTT 5 client sees them, a takeover, and raw bad packets.
func TestMQTTPahoReasonCodes(t *testing.T) {
	ms := startMQTTServer(t)
	token := ms.account(t, "sensor2", "sensor2-pw", "dev2")
	ms.account(t, "bob", "bob-pw", "laptop")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if _, ca, err := pahoConnect(t, ms.mqttAddr, "dev2", "sensor2", "not-a-token", paho.ClientConfig{}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("a bad token: %v, %+v; want CONNACK 0x86", err, ca)
	}
	if _, ca, err := pahoConnect(t, ms.mqttAddr, "other-device", "sensor2", token, paho.ClientConfig{}); err == nil || ca == nil || ca.ReasonCode != 0x85 {
		t.Fatalf("a client id that is not the device: %v, %+v; want CONNACK 0x85", err, ca)
	}

	taken := make(chan byte, 1)
	old, _, err := pahoConnect(t, ms.mqttAddr, "dev2", "sensor2", token, paho.ClientConfig{
		OnServerDisconnect: func(d *paho.Disconnect) { taken <- d.ReasonCode },
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = old
	c, ca, err := pahoConnect(t, ms.mqttAddr, "dev2", "sensor2", token, paho.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-taken; got != 0x8E {
		t.Fatalf("the older connection got DISCONNECT %#x, want 0x8E (session taken over)", got)
	}
	if ca.Properties.MaximumQoS == nil || *ca.Properties.MaximumQoS != 1 {
		t.Fatalf("CONNACK properties %+v", ca.Properties)
	}

	pr, err := c.Publish(ctx, &paho.Publish{Topic: "magpie/to/user/bob", QoS: 1, Payload: []byte("hello bob")})
	if err != nil || pr.ReasonCode != 0 {
		t.Fatalf("publish: %v %+v", err, pr)
	}
	for _, tc := range []struct {
		topic, payload string
		want           byte
	}{
		{"sensors/kitchen", "x", 0x87},
		{"magpie/inbox", "x", 0x87},
		{"magpie/to/user/x", "x", 0x90},
		{"magpie/to/user/nobody", "x", 0x90},
		{"magpie/to/user/bob", "\xff\xfe", 0x99},
		{"magpie/to/user/bob", strings.Repeat("x", 16385), 0x97},
	} {
		pr, _ := c.Publish(ctx, &paho.Publish{Topic: tc.topic, QoS: 1, Payload: []byte(tc.payload)})
		if pr == nil || pr.ReasonCode != tc.want {
			t.Errorf("publish to %q: %+v, want PUBACK %#x", tc.topic, pr, tc.want)
		}
	}
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "magpie/inbox", QoS: 2}, {Topic: "sensors/kitchen", QoS: 1}}})
	if err != nil && sa == nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa.Reasons, []byte{1, 0x87}) {
		t.Fatalf("SUBACK %x, want 01 87", sa.Reasons)
	}

	// Raw bad packets on a fresh connection: garbage first, then QoS 2 after a CONNECT.
	raw, err := net.Dial("tcp", ms.mqttAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = raw.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := raw.Read(make([]byte, 16)); err == nil {
		t.Fatalf("garbage answered with %d bytes, want the connection closed", n)
	}
	raw, err = net.Dial("tcp", ms.mqttAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	connect := packets.NewControlPacket(packets.CONNECT)
	cp := connect.Content.(*packets.Connect)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientID, cp.KeepAlive, cp.CleanStart = "MQTT", 5, "raw", 30, true
	bobToken := ms.account(t, "bob", "bob-pw", "raw")
	cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, "bob", true, []byte(bobToken)
	if _, err := connect.WriteTo(raw); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if p, err := packets.ReadPacket(raw); err != nil || p.Type != packets.CONNACK || p.Content.(*packets.Connack).ReasonCode != 0 {
		t.Fatalf("raw CONNECT: %v %v", p, err)
	}
	// PUBLISH QoS 2, topic "magpie/to/user/sensor2", packet id 1, no properties.
	topic := "magpie/to/user/sensor2"
	pub := append([]byte{0x34, byte(2 + len(topic) + 2 + 1 + 1), 0, byte(len(topic))}, topic...)
	pub = append(pub, 0, 1, 0, 'x')
	if _, err := raw.Write(pub); err != nil {
		t.Fatal(err)
	}
	p, err := packets.ReadPacket(raw)
	if err != nil || p.Type != packets.DISCONNECT || p.Content.(*packets.Disconnect).ReasonCode != 0x9B {
		t.Fatalf("QoS 2 PUBLISH: %v %v, want DISCONNECT 0x9B", p, err)
	}
}

// TestMQTTQoS1AcrossKill9: a device publishes at QoS 1 with the Paho 3.1.1
// client (persistent session) while the server is killed with SIGKILL and
// started again: every message is stored exactly once, in order. And a
// user sends to a device with a persistent session across a SIGKILL:
// the device gets every message, in order (QoS 1 is at least once: a
// message in flight at the kill may come twice, with its seq).
func TestMQTTQoS1AcrossKill9(t *testing.T) {
	ms := startMQTTServer(t)
	sensorToken := ms.account(t, "sensor3", "sensor3-pw", "dev3")
	aliceToken := ms.account(t, "alice", "alice-pw", "phone")

	var mu sync.Mutex
	var got []map[string]any
	store := paho3.NewOrderedMemoryStore()
	opts := paho3.NewClientOptions().AddBroker("tcp://" + ms.mqttAddr).SetClientID("dev3").
		SetUsername("sensor3").SetPassword(sensorToken).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetKeepAlive(10 * time.Second).SetOrderMatters(true).SetStore(store).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			var msg map[string]any
			if json.Unmarshal(m.Payload(), &msg) == nil {
				mu.Lock()
				got = append(got, msg)
				mu.Unlock()
			}
		})
	dev := paho3.NewClient(opts)
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer dev.Disconnect(100)

	// Device → user: publish n messages without waiting, killing the
	// server after a third. Paho completes a publish's token when it
	// resends it after a reconnect, before the PUBACK, so what is done is
	// read from its store: empty once every PUBLISH was acknowledged.
	const n = 60
	for i := range n {
		if i == n/3 {
			ms.kill9(t)
			ms.start(t)
		}
		dev.Publish("magpie/to/user/alice", 1, false, fmt.Sprintf("reading %03d", i))
	}
	waitFor(t, "every PUBLISH acknowledged", func() bool {
		for _, k := range store.All() {
			if strings.HasPrefix(k, "o.") {
				return false
			}
		}
		return true
	})
	var convs struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	ms.api(t, "GET", "/v1/conversations", aliceToken, nil, &convs)
	if len(convs.Conversations) != 1 {
		t.Fatalf("alice's conversations: %+v", convs)
	}
	conv := convs.Conversations[0].ID
	texts := ms.history(t, aliceToken, conv)
	if len(texts) != n {
		t.Fatalf("alice's conversation holds %d messages, want %d: %q", len(texts), n, texts)
	}
	for i, text := range texts {
		if want := fmt.Sprintf("reading %03d", i); text != want {
			t.Fatalf("message %d is %q, want %q (all: %q)", i, text, want, texts)
		}
	}

	// User → device, the server killed half way.
	for i := range n {
		if i == n/2 {
			ms.kill9(t)
			ms.start(t)
		}
		body := map[string]string{"to_user": "sensor3", "text": fmt.Sprintf("command %03d", i), "client_msg_id": fmt.Sprintf("cmd-%d", i)}
		deadline := time.Now().Add(30 * time.Second)
		for ms.api(t, "POST", "/v1/messages", aliceToken, body, nil) != 200 { // idempotent: retry until stored
			if time.Now().After(deadline) {
				t.Fatalf("send %d never succeeded", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The device gets every command in seq order; a repeat is of a seq it had.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		seen := map[string]bool{}
		last, inOrder := 0, true
		for _, m := range got {
			text, _ := m["text"].(string)
			if !strings.HasPrefix(text, "command ") {
				continue
			}
			var seq int
			fmt.Sscan(m["seq"].(string), &seq)
			if !seen[text] && seq < last {
				inOrder = false
			}
			seen[text] = true
			last = max(last, seq)
		}
		count := len(seen)
		mu.Unlock()
		if !inOrder {
			t.Fatalf("the device got a new message below one it had: %v", got)
		}
		if count == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device got %d of %d commands", count, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMQTTBenchSmoke runs W8's smoke profile (a few idle MQTT connections,
// then QoS 1 and QoS 0 pass-through) against a server with --mqtt; it
// fails on any drop or loss.
func TestMQTTBenchSmoke(t *testing.T) {
	ms := startMQTTServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "bench", "w8", "--smoke", "--server", "http://"+ms.httpAddr,
		"--pid", fmt.Sprint(ms.cmd.Process.Pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("bench w8 --smoke: %v\n%s\nserver log:\n%s", err, out, ms.out.String())
	}
	t.Logf("%s", out)
}

// TestClusterMQTT: in the cluster harness (3 NATS servers, PostgreSQL, one
// logic node, two gateways), a device on one gateway's MQTT listener and a
// user on the other gateway (the Go SDK) write to each other, and the same
// client id through the other gateway takes the first connection's place.
func TestClusterMQTT(t *testing.T) {
	topo := clusterTopology(t, 2, 1, func(c *clustertest.Config) { c.MQTT = true })
	server := topo.LogicURLs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	got := make(chan client.Message, 16)
	alice := client.New(client.Options{Server: server, Username: "alice", Password: "alice-pw", Device: "phone",
		OnMessage: func(m client.Message) { got <- m }})
	defer alice.Close()
	if _, err := alice.Register(ctx); err != nil {
		t.Fatal(err)
	}
	sensor := client.New(client.Options{Server: server, Username: "sensor4", Password: "sensor4-pw"})
	if _, err := sensor.Register(ctx); err != nil {
		t.Fatal(err)
	}
	sensor.Close()
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var devGW *clustertest.Node
	for _, g := range topo.Gateways {
		if g.ID != alice.Gateway() {
			devGW = g
		}
	}
	if devGW == nil {
		t.Fatalf("alice is on %q: no other gateway among %d", alice.Gateway(), len(topo.Gateways))
	}

	var login struct {
		Token string `json:"token"`
	}
	body, _ := json.Marshal(map[string]string{"username": "sensor4", "password": "sensor4-pw", "device": "dev4"})
	resp, err := http.Post(server+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.Token == "" {
		t.Fatalf("login: %v", err)
	}
	inbox := make(chan []byte, 16)
	replaced := make(chan byte, 1)
	dev, _, err := pahoConnect(t, devGW.MQTT, "dev4", "sensor4", login.Token, paho.ClientConfig{
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			inbox <- p.Packet.Payload
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { replaced <- d.ReasonCode },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "magpie/inbox", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	if pr, err := dev.Publish(ctx, &paho.Publish{Topic: "magpie/to/user/alice", QoS: 1, Payload: []byte("from " + devGW.ID)}); err != nil {
		t.Fatalf("publish: %v %+v", err, pr)
	}
	select {
	case m := <-got:
		if m.Sender != "sensor4" || m.Text != "from "+devGW.ID {
			t.Fatalf("alice got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("alice never got the device's message")
	}
	if _, err := alice.Send(ctx, client.SendRequest{ToUser: "sensor4", Text: "from " + alice.Gateway()}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-inbox:
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil || m["text"] != "from "+alice.Gateway() || m["sender"] != "alice" {
			t.Fatalf("the device got %q (%v)", p, err)
		}
	case <-ctx.Done():
		t.Fatal("the device never got alice's message")
	}

	// The same client id through the other gateway takes over: the first
	// connection gets DISCONNECT 0x8E (session taken over), the second
	// gets what follows.
	var otherGW *clustertest.Node
	for _, g := range topo.Gateways {
		if g != devGW {
			otherGW = g
		}
	}
	inbox2 := make(chan []byte, 16)
	dev2, _, err := pahoConnect(t, otherGW.MQTT, "dev4", "sensor4", login.Token, paho.ClientConfig{
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			inbox2 <- p.Packet.Payload
			return true, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case rc := <-replaced:
		if rc != 0x8E {
			t.Fatalf("the first connection got DISCONNECT 0x%02X, want 0x8E", rc)
		}
	case <-ctx.Done():
		t.Fatal("the first connection was not taken over")
	}
	if _, err := dev2.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "magpie/inbox", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, client.SendRequest{ToUser: "sensor4", Text: "after takeover"}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-inbox2:
		if !bytes.Contains(p, []byte("after takeover")) {
			t.Fatalf("the new connection got %q", p)
		}
	case <-ctx.Done():
		t.Fatal("the new connection never got alice's message")
	}
}

// TestMQTTPersistentSessionOwnPosition: a persistent Paho device (3.1.1,
// and MQTT 5 with a session expiry) that is offline while the same
// user's phone reads the messages gets them all when it comes back, once
// and in order: its session keeps its own delivered position, which the
// phone's receipts do not move.
func TestMQTTPersistentSessionOwnPosition(t *testing.T) {
	ms := startMQTTServer(t)
	aliceToken := ms.account(t, "alice", "alice-pw", "laptop")
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			user := "sensor5-" + strings.ReplaceAll(version, ".", "")
			devToken := ms.account(t, user, "sensor5-pw", "dev5")
			phoneToken := ms.account(t, user, "sensor5-pw", "phone")
			var mu sync.Mutex
			var got []string
			onMessage := func(payload []byte) {
				var msg struct {
					Text string `json:"text"`
				}
				if json.Unmarshal(payload, &msg) == nil {
					mu.Lock()
					got = append(got, msg.Text)
					mu.Unlock()
				}
			}
			// connect connects the device and returns its disconnect.
			connect := func(wantPresent bool) (disconnect func()) {
				t.Helper()
				if version == "5" {
					conn, err := net.Dial("tcp", ms.mqttAddr)
					if err != nil {
						t.Fatal(err)
					}
					c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
						func(p paho.PublishReceived) (bool, error) { onMessage(p.Packet.Payload); return true, nil },
					}})
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					expiry := uint32(300)
					ca, err := c.Connect(ctx, &paho.Connect{
						ClientID: "dev5", KeepAlive: 30, CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry},
						Username: user, UsernameFlag: true, Password: []byte(devToken), PasswordFlag: true,
					})
					if err != nil || ca.SessionPresent != wantPresent {
						t.Fatalf("connect: %+v, %v; want session present %v", ca, err, wantPresent)
					}
					return func() { _ = c.Disconnect(&paho.Disconnect{}) }
				}
				opts := paho3.NewClientOptions().AddBroker("tcp://" + ms.mqttAddr).SetClientID("dev5").
					SetUsername(user).SetPassword(devToken).SetCleanSession(false).SetOrderMatters(true).
					SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { onMessage(m.Payload()) })
				dev := paho3.NewClient(opts)
				tok := dev.Connect()
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("connect: %v", tok.Error())
				}
				if present := tok.(*paho3.ConnectToken).SessionPresent(); present != wantPresent {
					t.Fatalf("session present %v, want %v", present, wantPresent)
				}
				return func() { dev.Disconnect(250) }
			}
			send := func(text string) int {
				t.Helper()
				var ack struct {
					Seq int `json:"seq"`
				}
				if code := ms.api(t, "POST", "/v1/messages", aliceToken, map[string]string{"to_user": user, "text": text}, &ack); code != 200 {
					t.Fatalf("send %q: HTTP %d", text, code)
				}
				return ack.Seq
			}
			received := func(want string) func() bool {
				return func() bool {
					mu.Lock()
					defer mu.Unlock()
					return slices.Contains(got, want)
				}
			}

			// Online: the device gets one message (and acknowledges it),
			// then leaves.
			disconnect := connect(false)
			send("first")
			waitFor(t, "the first message on the device", received("first"))
			disconnect()

			// Offline: n messages, which the phone reads.
			const n = 20
			var conv struct {
				Conversations []struct {
					ID           string `json:"id"`
					DeliveredSeq int    `json:"delivered_seq"`
				} `json:"conversations"`
			}
			var last int
			for i := range n {
				last = send(fmt.Sprintf("offline %02d", i))
			}
			ms.api(t, "GET", "/v1/conversations", phoneToken, nil, &conv)
			if len(conv.Conversations) != 1 {
				t.Fatalf("the phone's conversations: %+v", conv)
			}
			if code := ms.api(t, "POST", "/v1/conversations/"+conv.Conversations[0].ID+"/read", phoneToken, map[string]int{"seq": last}, nil); code != 200 {
				t.Fatalf("the phone's read receipt: HTTP %d", code)
			}
			ms.api(t, "GET", "/v1/conversations", phoneToken, nil, &conv)
			if conv.Conversations[0].DeliveredSeq != last {
				t.Fatalf("the user's delivered cursor is %d, want %d", conv.Conversations[0].DeliveredSeq, last)
			}

			// Back: every offline message, in order, once (the marker,
			// sent after they were all stored, comes after them).
			disconnect = connect(true)
			defer disconnect()
			waitFor(t, "the offline messages on the device", received(fmt.Sprintf("offline %02d", n-1)))
			send("marker")
			waitFor(t, "the marker on the device", received("marker"))
			mu.Lock()
			defer mu.Unlock()
			want := []string{"first"}
			for i := range n {
				want = append(want, fmt.Sprintf("offline %02d", i))
			}
			want = append(want, "marker")
			if !slices.Equal(got, want) {
				t.Fatalf("the device got %q, want %q", got, want)
			}
		})
	}
}
