package logic

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// MQTT persistent sessions (docs/mqtt.md): a connection whose ConnRef has
// a SessionExpiry has its own delivered position, kept by the store apart
// from the user's cursors. Its PUBACKs (delivered receipts) move both; its
// syncs start from the position, so another device reading the messages
// does not take them from it. The session does not expire while its
// connection lives; the gateway says when it ends (ConnEnded).

// NeverExpires is the MQTT 5 session expiry that never ends.
const NeverExpires = 0xFFFFFFFF

// DeviceFlushEvery is how long a device's acknowledgements are gathered
// before they are written: one write per PUBACK would cost more than the
// messages, so a session's position is written at most this often, all
// sessions' moves in one transaction. A crash loses at most this much of
// the position: those messages come again (QoS 1 is at least once).
const DeviceFlushEvery = 200 * time.Millisecond

// deviceSweepEvery is how often expired sessions are deleted.
const deviceSweepEvery = time.Hour

func sessionEnd(now time.Time, expiry uint32) time.Time {
	if expiry == NeverExpires {
		return time.Time{}
	}
	return now.Add(time.Duration(expiry) * time.Second)
}

// startDeviceSession resumes or starts the session of an MQTT connection
// at auth; a connection without one (a clean session) ends any stored
// session of its client id, as MQTT says.
func (s *Service) startDeviceSession(ctx context.Context, ref *clusterpb.ConnRef) error {
	if ref.SessionExpiry == 0 {
		return s.store.DropDeviceSession(ctx, ref.UserId, ref.Device)
	}
	// The device's acknowledgements gathered here so far are written
	// first: a device that reconnects at once gets none of them again
	// (through this logic node; another one's come with its next flush).
	s.flushDevices()
	present, err := s.store.StartDeviceSession(ctx, ref.UserId, ref.Device, connName(ref), ref.CleanStart, s.now())
	ref.SessionPresent = present
	return err
}

// connName names the connection that holds a session.
func connName(c *clusterpb.ConnRef) string { return c.Gateway + "/" + strconv.FormatUint(c.Conn, 10) }

type deviceKey struct {
	user   int64
	device string
}

// devicePositions gathers acknowledgements and ended connections until
// the next flush.
type devicePositions struct {
	mu    sync.Mutex
	moves map[deviceKey]map[string]uint64
	ends  []store.DeviceSessionEnd
}

// ConnEnded is told by the gateway when a connection closed: a stored
// session's expiry counts from now, written with the next flush (after
// the connection's last acknowledgements gathered here).
func (s *Service) ConnEnded(c *clusterpb.ConnRef) {
	if c.SessionExpiry == 0 {
		return
	}
	d := &s.devices
	d.mu.Lock()
	d.ends = append(d.ends, store.DeviceSessionEnd{UserID: c.UserId, Device: c.Device, Conn: connName(c), ExpiresAt: sessionEnd(s.now(), c.SessionExpiry)})
	d.mu.Unlock()
}

// DeviceDelivered records a PUBACK of a persistent session's connection;
// it is written with the next flush.
func (s *Service) DeviceDelivered(c *clusterpb.ConnRef, convID string, seq uint64) {
	if validConversationID(convID) != nil || seq == 0 {
		return
	}
	d := &s.devices
	k := deviceKey{c.UserId, c.Device}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.moves == nil {
		d.moves = make(map[deviceKey]map[string]uint64)
	}
	m := d.moves[k]
	if m == nil {
		m = make(map[string]uint64)
		d.moves[k] = m
	}
	m[convID] = max(m[convID], seq)
}

// flushDevices writes the gathered moves in one transaction, then the
// ended connections' expiries.
func (s *Service) flushDevices() {
	d := &s.devices
	d.mu.Lock()
	moves, ends := d.moves, d.ends
	d.moves, d.ends = nil, nil
	d.mu.Unlock()
	if len(moves) == 0 && len(ends) == 0 {
		return
	}
	var batch []store.DeviceCursorMove
	for k, m := range moves {
		for c, seq := range m {
			batch = append(batch, store.DeviceCursorMove{UserID: k.user, Device: k.device, ConversationID: c, Seq: seq})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := s.store.MoveDeviceCursors(ctx, batch); err != nil {
		s.log.Warn("device positions not written: the messages come again", "moves", len(batch), "err", err)
	}
	if err := s.store.EndDeviceSessions(ctx, ends); err != nil {
		s.log.Warn("device sessions' expiry not written: they are kept until the device connects again", "sessions", len(ends), "err", err)
	}
}

// devicesLoop flushes the acknowledgements and sweeps expired sessions
// until Shutdown, then flushes once more.
func (s *Service) devicesLoop() {
	flush := time.NewTicker(DeviceFlushEvery)
	defer flush.Stop()
	sweep := time.NewTicker(deviceSweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-flush.C:
			s.flushDevices()
		case <-sweep.C:
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			n, err := s.store.DropExpiredDeviceSessions(ctx, s.now())
			cancel()
			if err != nil && !errors.Is(err, store.ErrClosed) {
				s.log.Warn("expired device sessions not swept", "err", err)
			} else if n > 0 {
				s.log.Debug("expired device sessions swept", "sessions", n)
			}
		case <-s.stop:
			s.flushDevices()
			return
		}
	}
}

// DeviceSync is Sync for a persistent session's connection: after the
// device's stored position, raised by cursors (what the connection got
// since), and without the conversations' states, so that a catch-up pages
// through every conversation.
func (s *Service) DeviceSync(ctx context.Context, id Identity, c *clusterpb.ConnRef, cursors map[string]uint64, limit int) (SyncResult, error) {
	for k := range cursors {
		if err := validConversationID(k); err != nil {
			return SyncResult{}, err
		}
	}
	pos, err := s.store.DeviceCursors(ctx, c.UserId, c.Device)
	if err != nil {
		return SyncResult{}, err
	}
	for k, seq := range cursors {
		pos[k] = max(pos[k], seq)
	}
	return s.sync(ctx, id, pos, limit, false)
}
