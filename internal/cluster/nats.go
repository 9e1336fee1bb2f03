package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EmbeddedConfig configures an in-process NATS server.
type EmbeddedConfig struct {
	StoreDir   string   // JetStream directory
	ServerName string   // unique within a cluster
	Listen     string   // client listener "host:port"; empty: in-process only
	Cluster    string   // cluster route listener "host:port"; empty: standalone
	Routes     []string // nats-route://host:port of the other servers
	Name       string   // cluster name
}

// StartEmbedded starts a NATS server with JetStream inside this process and
// waits until it accepts connections.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*server.Server, error) {
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats store dir: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   filepath.Clean(cfg.StoreDir),
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.Cluster != "" {
		host, port, err := splitHostPort(cfg.Cluster)
		if err != nil {
			return nil, fmt.Errorf("nats cluster: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Name, Host: host, Port: port}
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = "magpie"
		}
		if len(cfg.Routes) == 0 {
			// JetStream refuses to cluster without configured routes, and
			// the buckets need JetStream.
			return nil, fmt.Errorf("nats cluster: --nats-routes must list the cluster's servers on every server (listing this one too is fine)")
		}
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
		if opts.ServerName == "" {
			return nil, fmt.Errorf("nats cluster: every server needs a unique --nats-server-name")
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if os.Getenv("MAGPIE_NATS_DEBUG") != "" {
		ns.ConfigureLogger()
		ns.SetLogger(debugLogger{}, true, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats: embedded server not ready within 30s")
	}
	log.Info("embedded nats started", "name", ns.Name(), "client", cfg.Listen, "cluster", cfg.Cluster)
	return ns, nil
}

// ValidGatewayID reports whether id can name a gateway: it becomes a NATS
// subject token and part of presence keys, so 1-64 of [A-Za-z0-9_-].
func ValidGatewayID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// ConnectOptions configures a client connection to NATS.
type ConnectOptions struct {
	URLs        string // comma-separated; empty with Embedded set: in-process
	Embedded    *server.Server
	Name        string
	Credentials string // .creds file
	CAFile      string
	CertFile    string
	KeyFile     string
	// OnReconnect, if set, runs (on a NATS goroutine; do not block) after
	// the connection was lost and re-established.
	OnReconnect func()
}

// Connect dials NATS, retrying forever in the background after the first
// connection; the caller closes the returned connection.
func Connect(ctx context.Context, o ConnectOptions, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(16 << 20),
		// A path that silently drops packets (no reset) is noticed after
		// about 15 s, not the library's default of minutes.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrl())
			if o.OnReconnect != nil {
				o.OnReconnect()
			}
		}),
	}
	if o.Credentials != "" {
		opts = append(opts, nats.UserCredentials(o.Credentials))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	url := o.URLs
	if o.Embedded != nil && url == "" {
		opts = append(opts, nats.InProcessServer(o.Embedded))
		url = o.Embedded.ClientURL()
	}
	if url == "" {
		return nil, fmt.Errorf("nats: no URL and no embedded server")
	}
	var lastErr error
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nats connect %s: %w", url, lastErr)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// keyValue opens (or creates) a memory bucket. maxAge > 0 makes the
// server drop every value and delete marker older than that (the bucket's
// TTL, a stream MaxAge: any NATS server version), so keys of processes
// that died without deleting them cannot pile up. An existing bucket gets
// the same config: a bucket made without a max age (by an older Magpie)
// gets one, and the server then drops what had piled up in it. maxAge is
// only ever raised: a larger one already set (by a process with a longer
// --registry-ttl, or by hand) is kept, so processes that disagree do not
// keep changing it, and none shortens it below what another needs.
func keyValue(ctx context.Context, nc *nats.Conn, bucket string, replicas int, maxAge time.Duration) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if replicas < 1 {
		replicas = 1
	}
	var lastErr error
	for {
		// A request sent before JetStream has a meta leader is never
		// answered: bound each attempt, not just the whole wait.
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var kv jetstream.KeyValue
		have, err := currentMaxAge(actx, js, bucket, maxAge)
		if err == nil {
			kv, err = js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{
				Bucket:   bucket,
				Storage:  jetstream.MemoryStorage,
				History:  1,
				Replicas: replicas,
				TTL:      max(maxAge, have),
			})
		}
		cancel()
		if err == nil {
			return kv, nil
		}
		lastErr = err
		// JetStream may still be electing a leader right after start.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bucket %s: %w", bucket, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// currentMaxAge is the max age of the bucket if it exists, 0 if it does
// not. With want 0 it is not looked up: such a bucket is meant to have no
// max age.
func currentMaxAge(ctx context.Context, js jetstream.JetStream, bucket string, want time.Duration) (time.Duration, error) {
	if want <= 0 {
		return 0, nil
	}
	s, err := js.Stream(ctx, "KV_"+bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().Config.MaxAge, nil
}

type debugLogger struct{}

func (debugLogger) Noticef(f string, a ...any) { fmt.Fprintf(os.Stderr, "NATS "+f+"\n", a...) }
func (debugLogger) Warnf(f string, a ...any)   { fmt.Fprintf(os.Stderr, "NATS "+f+"\n", a...) }
func (debugLogger) Fatalf(f string, a ...any)  { fmt.Fprintf(os.Stderr, "NATS "+f+"\n", a...) }
func (debugLogger) Errorf(f string, a ...any)  { fmt.Fprintf(os.Stderr, "NATS "+f+"\n", a...) }
func (debugLogger) Debugf(f string, a ...any)  { fmt.Fprintf(os.Stderr, "NATS "+f+"\n", a...) }
func (debugLogger) Tracef(f string, a ...any)  {}
