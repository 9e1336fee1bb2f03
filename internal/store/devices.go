package store

import (
	"context"
	"time"
)

// DeviceSessions keep the MQTT persistent sessions (docs/mqtt.md): each
// device's own delivered position, apart from the user's delivered cursors
// that every device of the user moves. A device with a session comes back
// to what it missed, whatever its other devices read meanwhile.
type DeviceSessions interface {
	// StartDeviceSession resumes the device's session, or starts a new one
	// when there is none, it expired by now, or clean is set: a new one
	// begins at the user's delivered cursors. Either way conn (the
	// connection, "gateway/id") holds it from now on and it does not
	// expire until that connection's EndDeviceSessions. present reports a
	// resumed session.
	StartDeviceSession(ctx context.Context, userID int64, device, conn string, clean bool, now time.Time) (present bool, err error)
	// DeviceCursors is the device's position: conversation → the last
	// seq the device acknowledged. Empty without a session.
	DeviceCursors(ctx context.Context, userID int64, device string) (map[string]uint64, error)
	// MoveDeviceCursors raises the positions of existing sessions (never
	// lowers them), all in one transaction. Moves of a device without a
	// session are dropped.
	MoveDeviceCursors(ctx context.Context, moves []DeviceCursorMove) error
	// EndDeviceSessions sets when sessions expire, each only if the
	// connection that ended still holds it (not after a takeover).
	EndDeviceSessions(ctx context.Context, ends []DeviceSessionEnd) error
	// DropDeviceSession ends the device's session, if any.
	DropDeviceSession(ctx context.Context, userID int64, device string) error
	// DropExpiredDeviceSessions ends the sessions expired by now and
	// reports how many.
	DropExpiredDeviceSessions(ctx context.Context, now time.Time) (int, error)
}

// DeviceCursorMove is one device's acknowledgements in one conversation.
type DeviceCursorMove struct {
	UserID         int64
	Device         string
	ConversationID string
	Seq            uint64
}

// DeviceSessionEnd is the end of the connection that held a session.
type DeviceSessionEnd struct {
	UserID    int64
	Device    string
	Conn      string
	ExpiresAt time.Time // the zero time: never
}
