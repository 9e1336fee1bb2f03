package config

import (
	"io"
	"net/netip"
	"slices"
	"testing"
)

func TestParsePushKeys(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"", 0, false},
		{"a:0123456789abcdef", 1, false},
		{"a:0123456789abcdef, b:0123456789abcdef:with-colon", 2, false},
		{"a:short", 0, true},
		{"nocolon", 0, true},
		{":0123456789abcdef", 0, true},
		{"a:0123456789abcdef,a:0123456789abcdef", 0, true},
	}
	for _, tt := range tests {
		k, err := ParsePushKeys(tt.in)
		if (err != nil) != tt.wantErr || len(k) != tt.want {
			t.Errorf("ParsePushKeys(%q) = %d keys, %v; want %d keys, error %v", tt.in, len(k), err, tt.want, tt.wantErr)
		}
	}
}

// The comma-separated flags arrive parsed, and Print writes them back as
// they were given.
func TestListFlags(t *testing.T) {
	cfg, err := Load("serve", []string{"--admins", "root, ops,", "--trusted-proxies", "10.0.0.1,10.1.0.0/16", "--push-keys", "crm:0123456789abcdef"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"root", "ops"}; !slices.Equal(cfg.Admins, want) {
		t.Errorf("admins: got %q, want %q", cfg.Admins, want)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.1.0.0/16")}; !slices.Equal(cfg.TrustedProxies, want) {
		t.Errorf("trusted proxies: got %v, want %v", cfg.TrustedProxies, want)
	}
	if got := string(cfg.PushKeys["crm"]); got != "0123456789abcdef" || len(cfg.PushKeys) != 1 {
		t.Errorf("push keys: got %q", cfg.PushKeys)
	}
	if got, want := formatPrefixes(Default().LimitExempt), "127.0.0.0/8,::1"; got != want {
		t.Errorf("limit-exempt default prints as %q, want %q", got, want)
	}
}
