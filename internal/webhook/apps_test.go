package webhook

import (
	"context"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// settings are an app's webhook settings.
func settings(urls []string, secret string) store.AppSettings {
	return store.AppSettings{WebhookURLs: urls, WebhookSecret: secret}
}

// An app's hooks are made once for its settings, made again when they
// change, none without URLs or with refused settings, and none after
// Shutdown.
func TestAppsFor(t *testing.T) {
	a := NewApps(Config{}, testLog())
	urls := []string{"http://127.0.0.1:1/hook"}
	h1 := a.For(2, settings(urls, "secret-0123456789"))
	if h1 == nil || a.For(2, settings(urls, "secret-0123456789")) != h1 {
		t.Fatalf("For twice with the same settings = %v, then another; want the same hooks", h1)
	}
	if h2 := a.For(2, settings(urls, "secret-9876543210")); h2 == nil || h2 == h1 {
		t.Errorf("For with a new secret = %v, want new hooks", h2)
	}
	if h3 := a.For(3, settings(urls, "secret-0123456789")); h3 == nil || h3 == h1 {
		t.Errorf("another app's hooks = %v, want its own", h3)
	}
	if h := a.For(2, settings(nil, "")); h != nil {
		t.Errorf("For without URLs = %v, want nil", h)
	}
	if h := a.For(4, settings([]string{"ftp://x"}, "secret-0123456789")); h != nil {
		t.Errorf("For with a refused URL = %v, want nil", h)
	}
	// A veto URL alone makes hooks too, and a change of it new ones.
	veto := store.AppSettings{WebhookSecret: "secret-0123456789", BeforeAddURL: "http://127.0.0.1:1/veto"}
	h4 := a.For(5, veto)
	if h4 == nil {
		t.Fatal("For with a before-add URL only = nil, want hooks")
	}
	veto.BeforeSendURL = "http://127.0.0.1:1/send"
	if h5 := a.For(5, veto); h5 == nil || h5 == h4 {
		t.Errorf("For with a before-send URL added = %v, want new hooks", h5)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := a.For(3, settings(urls, "secret-0123456789")); h != nil {
		t.Errorf("For after Shutdown = %v, want nil", h)
	}
}
