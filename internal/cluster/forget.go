package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Forget tells every logic node to drop what it caches of one user (its
// names cache entries) or of the app list, after a change committed to the
// store that the cache would otherwise hide: a deleted or disabled user,
// an app's new settings or keys.
type Forget struct {
	// UserID is the user to forget; 0 means the app list instead.
	UserID int64
}

// encode is "u<id>" for a user, "apps" for the app list: small, and no
// generated code for two cases.
func (f Forget) encode() []byte {
	if f.UserID != 0 {
		return []byte("u" + strconv.FormatInt(f.UserID, 10))
	}
	return []byte("apps")
}

func decodeForget(b []byte) (Forget, error) {
	s := string(b)
	if s == "apps" {
		return Forget{}, nil
	}
	if id, err := strconv.ParseInt(strings.TrimPrefix(s, "u"), 10, 64); err == nil && strings.HasPrefix(s, "u") && id > 0 {
		return Forget{UserID: id}, nil
	}
	return Forget{}, fmt.Errorf("cluster: bad forget %q", s)
}

// PublishForget tells every logic node (this one too) to forget f, and
// flushes, so the NATS server has it before the caller answers the change:
// the other nodes get it ahead of any request sent after that answer.
func PublishForget(nc *nats.Conn, f Forget) error {
	if err := nc.Publish(subjForget, f.encode()); err != nil {
		return err
	}
	return nc.FlushTimeout(2 * time.Second)
}

// SubscribeForget hands every Forget published to fn. It is a plain
// subscription, not a queue group: each logic node gets each one.
func SubscribeForget(nc *nats.Conn, fn func(Forget)) (*nats.Subscription, error) {
	return nc.Subscribe(subjForget, func(m *nats.Msg) {
		if f, err := decodeForget(m.Data); err == nil {
			fn(f)
		}
	})
}
