package logic

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
)

// unreachableStore is a real store whose Ping fails while down is set, as
// when a network path to the database is cut.
type unreachableStore struct {
	store.Store
	down  atomic.Bool
	pings atomic.Int64
}

func (u *unreachableStore) Ping(ctx context.Context) error {
	u.pings.Add(1)
	if u.down.Load() {
		return errors.New("dial tcp: i/o timeout")
	}
	return u.Store.Ping(ctx)
}

func TestStoreHealthLeavesAndRejoins(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	us := &unreachableStore{Store: st}
	var mu sync.Mutex
	var changes []bool
	bus := newFakeBus()
	cfg := Config{
		TokenSecret:    []byte("0123456789abcdef0123456789abcdef"),
		Encoder:        envelope.Encoder{},
		HealthInterval: 5 * time.Millisecond,
		OnStoreHealth:  func(ok bool) { mu.Lock(); changes = append(changes, ok); mu.Unlock() },
	}
	svc, err := New(cfg, us, bus, bus, bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	defer svc.Shutdown(context.Background())
	got := func() []bool { mu.Lock(); defer mu.Unlock(); return append([]bool(nil), changes...) }

	waitFor(t, "several healthy pings", func() bool { return us.pings.Load() >= 5 }) // and no calls
	if c := got(); len(c) != 0 || svc.StoreErr() != nil {
		t.Fatalf("healthy store: changes %v, StoreErr %v; want none", c, svc.StoreErr())
	}
	us.down.Store(true)
	waitFor(t, "unhealthy", func() bool { return len(got()) == 1 })
	if c := got(); c[0] != false || svc.StoreErr() == nil {
		t.Fatalf("after the cut: changes %v, StoreErr %v; want [false] and an error", c, svc.StoreErr())
	}
	us.down.Store(false)
	waitFor(t, "healthy again", func() bool { return len(got()) == 2 })
	if c := got(); c[1] != true || svc.StoreErr() != nil {
		t.Fatalf("after the heal: changes %v, StoreErr %v; want [false true] and nil", c, svc.StoreErr())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
	}
}
