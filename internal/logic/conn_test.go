package logic

import (
	"context"
	"errors"
	"testing"

	"github.com/magpie-im/magpie/proto/wire"
)

// A full pool of read requests answers unavailable with a retry hint at
// once, and a read that holds a slot ends with the Service.
func TestReadPoolFull(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.MaxReads = 1 })
	alice := login(t, s, "alice", "", "").Identity
	started, release := make(chan struct{}), make(chan struct{})
	s.Read(alice, FailFunc(func(err error) { t.Errorf("first read failed: %v", err) }), func(ctx context.Context, _ Identity) {
		close(started)
		<-release
	})
	<-started
	got := make(chan error, 1)
	s.Read(alice, FailFunc(func(err error) { got <- err }), func(context.Context, Identity) { t.Error("second read ran with the pool full") })
	err := <-got
	var e *Error
	if !errors.As(err, &e) || Code(err) != wire.CodeUnavailable || RetryAfter(err) <= 0 {
		t.Fatalf("second read: %v, want unavailable with retry_after_ms", err)
	}
	close(release)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Read(alice, FailFunc(func(err error) { got <- err }), func(context.Context, Identity) { t.Error("a read ran after Shutdown") })
	if err := <-got; Code(err) != wire.CodeUnavailable {
		t.Fatalf("read after Shutdown: %v, want unavailable", err)
	}
}
