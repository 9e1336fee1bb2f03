package webhook

import (
	"context"
	"testing"
)

// An app's hooks are made once for its settings, made again when they
// change, none without URLs or with refused settings, and none after
// Shutdown.
func TestAppsFor(t *testing.T) {
	a := NewApps(Config{}, testLog())
	urls := []string{"http://127.0.0.1:1/hook"}
	h1 := a.For(2, urls, "secret-0123456789")
	if h1 == nil || a.For(2, urls, "secret-0123456789") != h1 {
		t.Fatalf("For twice with the same settings = %v, then another; want the same hooks", h1)
	}
	if h2 := a.For(2, urls, "secret-9876543210"); h2 == nil || h2 == h1 {
		t.Errorf("For with a new secret = %v, want new hooks", h2)
	}
	if h3 := a.For(3, urls, "secret-0123456789"); h3 == nil || h3 == h1 {
		t.Errorf("another app's hooks = %v, want its own", h3)
	}
	if h := a.For(2, nil, ""); h != nil {
		t.Errorf("For without URLs = %v, want nil", h)
	}
	if h := a.For(4, []string{"ftp://x"}, "secret-0123456789"); h != nil {
		t.Errorf("For with a refused URL = %v, want nil", h)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := a.For(3, urls, "secret-0123456789"); h != nil {
		t.Errorf("For after Shutdown = %v, want nil", h)
	}
}
