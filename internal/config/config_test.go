package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "magpie.json")
	if err := os.WriteFile(file, []byte(`{"http":"127.0.0.1:1111","tcp":"127.0.0.1:2222","heartbeat":"20s","max-batch":100}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAGPIE_TCP", "127.0.0.1:3333")
	t.Setenv("MAGPIE_MAX_BATCH", "200")
	cfg, err := Load("serve", []string{"--config", file, "--max-batch", "300"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"file beats default", cfg.HTTP, "127.0.0.1:1111"},
		{"env beats file", cfg.TCP, "127.0.0.1:3333"},
		{"flag beats env", fmt.Sprint(cfg.MaxBatch), "300"},
		{"file duration", cfg.Heartbeat.String(), (20 * time.Second).String()},
		{"default kept", cfg.DevicePolicy, "unlimited"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--http", "nope"}, "--http"},
		{[]string{"--device-policy", "many"}, "--device-policy"},
		{[]string{"--route-strategy", "fastest"}, "--route-strategy"},
		{[]string{"--online-visibility", "friends"}, "--online-visibility"},
		{[]string{"--schedule-horizon", "-1s"}, "--schedule-horizon"},
		{[]string{"--accept-rate", "-1"}, "--accept-rate must not be negative"},
		{[]string{"--heartbeat", "1m", "--heartbeat-timeout", "30s"}, "--heartbeat-timeout"},
		{[]string{"--token-secret", "short"}, "--token-secret"},
		{[]string{"--push-keys", "k1:short"}, "--push-keys"},
		{[]string{"--metrics-token", "short"}, "--metrics-token"},
		{[]string{"--nats-cert", "client.pem"}, "--nats-cert and --nats-key"},
		{[]string{"--nats-key", "client.key"}, "--nats-cert and --nats-key"},
		{[]string{"--tls-cert", "server.pem"}, "--tls-cert and --tls-key"},
		{[]string{"--tls-key", "server.key"}, "--tls-cert and --tls-key"},
		{[]string{"--tls-watch", "1ms"}, "--tls-watch"},
		{[]string{"extra-arg"}, "unexpected argument"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,proxy.local"}, "--trusted-proxies"},
		{[]string{"--limit-exempt", "300.1.1.1"}, "--limit-exempt"},
		{[]string{"--login-ip-rate", "-1"}, "--login-ip-rate"},
		{[]string{"--hash-wait", "1ms"}, "--hash-wait"},
		{[]string{"--files-quota", "-5"}, "--files-quota"},
		{[]string{"--max-sessions-per-user", "-1"}, "--max-sessions-per-user"},
		{[]string{"--commit-window", "1s"}, "--commit-window"},
		{[]string{"--auth", ""}, "name at least one"},
		{[]string{"--auth", "local,kerberos"}, `unknown source "kerberos"`},
		{[]string{"--auth", "local,local"}, "listed twice"},
		{[]string{"--auth", "http", "--auth-secret", "0123456789abcdef"}, "--auth http needs --auth-url"},
		{[]string{"--auth", "http", "--auth-url", "http://a/b", "--auth-secret", "short"}, "--auth-secret"},
		{[]string{"--auth-url", "http://a/b"}, "--auth does not list http"},
		{[]string{"--auth-http-timeout", "0s"}, "--auth-http-timeout"},
		{[]string{"--auth", "local,ldap", "--auth-ldap-url", "ldap://x:389"}, "--auth-ldap-base-dn"},
		{[]string{"--auth-ldap-url", "ldap://x:389"}, "--auth does not list ldap"},
		{[]string{"--auth", "local,oidc", "--auth-oidc-issuer", "https://id.example"}, "--auth-oidc-audience"},
		{[]string{"--auth-oidc-issuer", "https://id.example"}, "--auth does not list oidc"},
		{[]string{"--admin-keys", "migrate:short"}, "--admin-keys"},
	}
	for _, tt := range tests {
		_, err := Load("serve", tt.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want mention of %s", tt.args, err, tt.want)
		}
	}
}

func TestPrefixes(t *testing.T) {
	got, err := Prefixes("10.0.0.1, 192.168.1.7/24,::1,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1/32", "192.168.1.0/24", "::1/128", "fd00::/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d: got %s, want %s", i, got[i], want[i])
		}
	}
}

func TestUnknownFileKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	_ = os.WriteFile(file, []byte(`{"htp":"x"}`), 0o600)
	if _, err := Load("serve", []string{"--config", file}, io.Discard); err == nil || !strings.Contains(err.Error(), `unknown key "htp"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	cfg := Default()
	cfg.TokenSecret = "super-secret-token-value"
	cfg.MetricsToken = "super-secret-metrics-token"
	var b strings.Builder
	if err := cfg.Print(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "super-secret") || !strings.Contains(b.String(), `"token-secret": "(set)"`) || !strings.Contains(b.String(), `"metrics-token": "(set)"`) {
		t.Fatalf("print leaked or lost the secret:\n%s", b.String())
	}
}

func TestTLSFromEnvironmentAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "magpie.json")
	if err := os.WriteFile(file, []byte(`{"tls-key":"/etc/magpie/key.pem"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAGPIE_TLS_CERT", "/etc/magpie/cert.pem")
	cfg, err := Load("gateway", []string{"--config", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLSCert != "/etc/magpie/cert.pem" || cfg.TLSKey != "/etc/magpie/key.pem" || !cfg.TLS() {
		t.Fatalf("got cert %q key %q TLS %v", cfg.TLSCert, cfg.TLSKey, cfg.TLS())
	}
}
