package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttConn is a minimal MQTT 3.1.1 client for W8, on the codec the
// gateway uses: one goroutine reads (readLoop), writes are serialized by
// mu.
type mqttConn struct {
	conn net.Conn
	br   *bufio.Reader
	mu   sync.Mutex // writes
	buf  bytes.Buffer
}

// dialMQTT connects to addr (host:port, or tls://host:port) and logs in
// with CONNECT: username, token as password, device as client id.
func dialMQTT(ctx context.Context, addr, user, token, device string, tlsConf *tls.Config) (*mqttConn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	host, useTLS := strings.CutPrefix(addr, "tls://")
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			cfg = tlsConf.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(host)
		}
		c = tls.Client(c, cfg)
	}
	mc := &mqttConn{conn: c, br: bufio.NewReaderSize(c, 4096)}
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4}
	pk.Connect = packets.ConnectParams{
		ProtocolName: []byte("MQTT"), ClientIdentifier: device, Keepalive: 600, Clean: true,
		UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(token),
	}
	if err := mc.write(pk); err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack, err := mc.read()
	c.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		c.Close()
		return nil, err
	case ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0:
		c.Close()
		return nil, fmt.Errorf("mqtt: CONNACK %d with code %d", ack.FixedHeader.Type, ack.ReasonCode)
	}
	return mc, nil
}

func (c *mqttConn) write(pk *packets.Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
	pk.ProtocolVersion = 4
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&c.buf)
	case packets.Publish:
		err = pk.PublishEncode(&c.buf)
	default:
		err = errors.New("mqtt: unexpected packet type")
	}
	if err != nil {
		return err
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.conn.Write(c.buf.Bytes())
	return err
}

// publish sends text to topic at qos (packet id pid for QoS 1).
func (c *mqttConn) publish(topic string, qos byte, pid uint16, text string) error {
	return c.write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: pid, Payload: []byte(text)})
}

// read reads one packet (CONNACK, PUBACK, PINGRESP; others are returned
// with their type only).
func (c *mqttConn) read() (packets.Packet, error) {
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
	pk.ProtocolVersion = 4
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	}
	return pk, err
}

func (c *mqttConn) close() { c.conn.Close() }
