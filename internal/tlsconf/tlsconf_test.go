package tlsconf

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/tlsconf/tlstest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// echoServer accepts TLS connections with r's configuration and echoes
// lines back.
func echoServer(t *testing.T, r *Reloader) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, r.Config())
	t.Cleanup(func() { tl.Close() })
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func echo(t *testing.T, c *tls.Conn, br *bufio.Reader, text string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, text+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := br.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != text {
		t.Fatalf("echo: got %q, %v; want %q", got, err, text)
	}
}

func TestReloadSwapsCertificateAndKeepsOpenConnections(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Issue(t, "127.0.0.1").Write(t, dir)
	r, err := New(first.CertFile, first.KeyFile, quiet())
	if err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, r)

	old := dial(t, addr, ca.ClientConfig())
	oldR := bufio.NewReader(old)
	echo(t, old, oldR, "before")
	if got := tlstest.PeerSerial(old); got.Cmp(first.Serial) != 0 {
		t.Fatalf("first handshake: serial %v, want %v", got, first.Serial)
	}

	second := ca.Issue(t, "127.0.0.1").Write(t, dir)
	if err := r.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	fresh := dial(t, addr, ca.ClientConfig())
	echo(t, fresh, bufio.NewReader(fresh), "new")
	if got := tlstest.PeerSerial(fresh); got.Cmp(second.Serial) != 0 {
		t.Fatalf("after reload: serial %v, want %v", got, second.Serial)
	}
	echo(t, old, oldR, "after") // the connection from before the reload lives on
}

func TestFailedReloadKeepsCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	other := ca.Issue(t, "127.0.0.1") // a key that does not match
	for _, tc := range []struct {
		name       string
		cert, key  func(l *tlstest.Leaf) []byte
		wantErrSub string
	}{
		{"garbage certificate", func(*tlstest.Leaf) []byte { return []byte("not pem") }, func(l *tlstest.Leaf) []byte { return l.KeyPEM }, "certificate"},
		{"garbage key", func(l *tlstest.Leaf) []byte { return l.CertPEM }, func(*tlstest.Leaf) []byte {
			return []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, "key"},
		{"key of another certificate", func(l *tlstest.Leaf) []byte { return l.CertPEM }, func(*tlstest.Leaf) []byte { return other.KeyPEM }, "match"},
		{"empty files", func(*tlstest.Leaf) []byte { return nil }, func(*tlstest.Leaf) []byte { return nil }, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first := ca.Issue(t, "127.0.0.1").Write(t, dir)
			r, err := New(first.CertFile, first.KeyFile, quiet())
			if err != nil {
				t.Fatal(err)
			}
			next := ca.Issue(t, "127.0.0.1")
			os.WriteFile(first.CertFile, tc.cert(next), 0o600)
			os.WriteFile(first.KeyFile, tc.key(next), 0o600)
			err = r.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
				t.Fatalf("reload: got %v, want an error about %q", err, tc.wantErrSub)
			}
			if got := r.Certificate().Leaf.SerialNumber; got.Cmp(first.Serial) != 0 {
				t.Fatalf("after a failed reload: serial %v, want the old %v", got, first.Serial)
			}
			addr := echoServer(t, r)
			c := dial(t, addr, ca.ClientConfig())
			echo(t, c, bufio.NewReader(c), "still served")
		})
	}
}

func TestNewRefusesBadPair(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	l := ca.Issue(t, "127.0.0.1").Write(t, dir)
	if _, err := New(l.CertFile, filepath.Join(dir, "missing.pem"), quiet()); err == nil {
		t.Fatal("New with a missing key: got nil error")
	}
	if _, err := New(l.CertFile, "", quiet()); err == nil {
		t.Fatal("New without a key file: got nil error")
	}
	os.WriteFile(l.KeyFile, ca.Issue(t, "127.0.0.1").KeyPEM, 0o600)
	if _, err := New(l.CertFile, l.KeyFile, quiet()); err == nil {
		t.Fatal("New with a mismatched key: got nil error")
	}
}

func TestWatchReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Issue(t, "127.0.0.1").Write(t, dir)
	r, err := New(first.CertFile, first.KeyFile, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx, 10*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	second := ca.Issue(t, "127.0.0.1").Write(t, dir)
	// A rewrite within the same clock tick as the first write, with the
	// same size, would look unchanged; move the times on to be sure.
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(second.CertFile, later, later)
	os.Chtimes(second.KeyFile, later, later)
	for deadline := time.Now().Add(10 * time.Second); r.Certificate().Leaf.SerialNumber.Cmp(second.Serial) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not load the changed files within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMinimumVersionIsTLS12(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	l := ca.Issue(t, "127.0.0.1").Write(t, dir)
	r, err := New(l.CertFile, l.KeyFile, quiet())
	if err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, r)
	for _, tc := range []struct {
		version uint16
		ok      bool
	}{{tls.VersionTLS10, false}, {tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		cfg := ca.ClientConfig()
		cfg.MinVersion, cfg.MaxVersion = tc.version, tc.version
		c, err := tls.Dial("tcp", addr, cfg)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("TLS version %x: handshake error %v, want ok=%v", tc.version, err, tc.ok)
		}
	}
}

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "private CA")
	l := ca.Issue(t, "127.0.0.1").Write(t, dir)
	r, err := New(l.CertFile, l.KeyFile, quiet())
	if err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, r)

	cfg, err := ClientConfig(ca.WriteCA(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr, cfg)
	echo(t, c, bufio.NewReader(c), "trusted")

	sys, err := ClientConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tls.Dial("tcp", addr, sys); err == nil {
		c.Close()
		t.Fatal("system roots trusted a private CA")
	}
	if _, err := ClientConfig(filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("missing CA file: got nil error")
	}
	if _, err := ClientConfig(l.KeyFile); err == nil {
		t.Fatal("CA file without a certificate: got nil error")
	}
}
