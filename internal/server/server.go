// Package server assembles a Magpie node from its configuration: the
// engines (embedded or external NATS, SQLite or PostgreSQL), the roles
// (gateway, logic, or both), the listeners, and an ordered shutdown. The
// command line and the end-to-end tests both start nodes through it.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/magpie-im/magpie/internal/adapter"
	"github.com/magpie-im/magpie/internal/api"
	"github.com/magpie-im/magpie/internal/cluster"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/gateway"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
	"github.com/magpie-im/magpie/internal/tlsconf"
)

// Roles selects what a node runs.
type Roles struct {
	Gateway bool
	Logic   bool
}

// Node is one running Magpie process (or part of a test).
type Node struct {
	cfg   config.Config
	roles Roles
	log   *slog.Logger

	ns       *natsserver.Server
	nc       *nats.Conn
	st       store.Store
	engine   sqlstore.Engine // logic role: the store's engine
	svc      *logic.Service
	api      *api.Handler // logic role only
	gw       *gateway.Gateway
	lc       *cluster.LogicClient
	bus      *logicBus        // logic role: the request queue, left while the database is down
	handler  *adapter.Handler // logic role: what the bus (and serve's gateway, direct.go) calls
	direct   *directDeliverer // both roles: logic's deliveries to this node's gateway
	http     *http.Server
	metrics  *http.Server
	metricsL net.Listener
	httpL    net.Listener      // a TLS listener with --tls-cert
	tcpL     net.Listener      // likewise
	mqttL    net.Listener      // likewise (--mqtt)
	tls      *tlsconf.Reloader // nil: plain listeners

	reg       *cluster.Registry // logic role only
	gatewayID string
	advTCP    string
	advMQTT   string
	advWS     string

	registrar *cluster.Registrar // gateway role only
	reassert  *reasserter        // gateway role: rewrites presence after a gap
	draining  atomic.Bool        // published in the registry entry

	ext extensions // logic role: uploads, webhooks, push keys (extensions.go)

	steps []stopStep // in start order; Shutdown runs them in reverse (shutdown.go)
	// drainTimer starts the --drain-timeout countdown (nil:
	// time.AfterFunc); tests end the window when they choose.
	drainTimer func(d time.Duration, expire func()) (stop func() bool)
	stopOnce   sync.Once
	stopErr    error
}

// Start brings a node up; it returns when the node is ready to serve.
func Start(ctx context.Context, cfg config.Config, roles Roles, log *slog.Logger) (n *Node, err error) {
	if !roles.Gateway && !roles.Logic {
		return nil, errors.New("server: no role selected")
	}
	n = &Node{cfg: cfg, roles: roles, log: log, reassert: newReasserter(log)}
	defer func() {
		if err != nil {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = n.Shutdown(sctx)
		}
	}()
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return n, fmt.Errorf("data dir: %w", err)
	}
	if !roles.Logic {
		warnLooseModes(log, cfg.Data)
	}
	if err := n.startNATS(ctx); err != nil {
		return n, err
	}
	if err := n.listen(); err != nil {
		return n, err
	}
	if n.tls != nil && cfg.TLSWatch > 0 {
		n.goUntilStop("tls watch", func(ctx context.Context) { n.tls.Watch(ctx, cfg.TLSWatch) })
	}
	mux := http.NewServeMux()
	if roles.Logic {
		if err := n.startLogic(ctx, mux); err != nil {
			return n, err
		}
	} else {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
		})
	}
	if roles.Gateway {
		if err := n.startGateway(ctx, mux); err != nil {
			return n, err
		}
	}
	n.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	n.goServe("http", func() {
		if err := n.http.Serve(n.httpL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}, func(ctx context.Context) error {
		if err := n.http.Shutdown(ctx); err != nil {
			_ = n.http.Close()
		}
		return nil
	})
	if n.gw != nil && n.tcpL != nil {
		n.goServe("tcp", func() {
			if err := n.gw.ServeTCP(n.tcpL); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, gateway.ErrClosed) {
				log.Error("tcp gateway stopped", "err", err)
			}
		}, func(context.Context) error { return ignoreClosed(n.tcpL.Close()) })
	}
	if n.gw != nil && n.mqttL != nil {
		n.goServe("mqtt", func() {
			if err := n.gw.ServeMQTT(n.mqttL); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, gateway.ErrClosed) {
				log.Error("mqtt gateway stopped", "err", err)
			}
		}, func(context.Context) error { return ignoreClosed(n.mqttL.Close()) })
	}
	if cfg.Metrics != "" {
		if err := n.serveMetrics(cfg.Metrics); err != nil {
			return n, err
		}
	}
	store := "none"
	if n.engine != "" {
		store = string(n.engine)
	}
	log.Info("magpie ready", "http", n.HTTPAddr(), "tcp", n.TCPAddr(), "mqtt", n.MQTTAddr(), "tls", n.tls != nil, "gateway", roles.Gateway, "gateway_id", n.gatewayID, "logic", roles.Logic, "store", store)
	return n, nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (n *Node) startNATS(ctx context.Context) error {
	cfg := n.cfg
	if cfg.NATS == "" {
		name := cfg.NATSServer
		if name == "" {
			name = "magpie-" + randomHex(4)
		}
		ns, err := cluster.StartEmbedded(cluster.EmbeddedConfig{
			StoreDir: filepath.Join(cfg.Data, "nats"), ServerName: name, Listen: cfg.NATSListen,
			Cluster: cfg.NATSCluster, Routes: cfg.NATSRoutes, Name: cfg.NATSName,
		}, n.log)
		if err != nil {
			return err
		}
		n.ns = ns
		n.onStop("embedded nats", func(context.Context) error {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil
		})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := cluster.Connect(cctx, cluster.ConnectOptions{
		URLs: cfg.NATS, Embedded: n.ns, Name: "magpie", Credentials: cfg.NATSCreds,
		CAFile: cfg.NATSCA, CertFile: cfg.NATSCert, KeyFile: cfg.NATSKey,
		OnReconnect: n.reassert.trigger,
	}, n.log)
	if err != nil {
		return err
	}
	n.nc = nc
	n.onStop("nats", func(ctx context.Context) error { return closeNATS(ctx, nc) })
	return nil
}

// listen opens the public listeners, wrapped in TLS with --tls-cert. The
// handshake runs on a connection's first read, in its own goroutine (the
// HTTP server's, or the gateway session's reader under the auth deadline),
// so a client that never finishes one holds up no one else.
func (n *Node) listen() error {
	var err error
	if n.cfg.TLS() {
		if n.tls, err = tlsconf.New(n.cfg.TLSCert, n.cfg.TLSKey, n.log); err != nil {
			return err
		}
	}
	if n.httpL, err = net.Listen("tcp", n.cfg.HTTP); err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	httpL := n.httpL
	n.onStop("http listener", func(context.Context) error { return ignoreClosed(httpL.Close()) })
	if n.tls != nil {
		// HTTP/1.1 only: the WebSocket upgrade needs it (the Go HTTP/2
		// server would offer browsers WebSocket over HTTP/2, which the
		// gateway's WebSocket library does not speak), and the API's
		// small JSON calls gain little from HTTP/2.
		n.httpL = tls.NewListener(n.httpL, n.tls.Config("http/1.1"))
	}
	if n.roles.Gateway && n.cfg.TCP != "" {
		if n.tcpL, err = net.Listen("tcp", n.cfg.TCP); err != nil {
			return fmt.Errorf("tcp listen: %w", err)
		}
		if n.tls != nil {
			n.tcpL = tls.NewListener(n.tcpL, n.tls.Config())
		}
		tcpL := n.tcpL
		n.onStop("tcp listener", func(context.Context) error { return ignoreClosed(tcpL.Close()) })
	}
	if n.roles.Gateway && n.cfg.MQTT != "" {
		if n.mqttL, err = net.Listen("tcp", n.cfg.MQTT); err != nil {
			return fmt.Errorf("mqtt listen: %w", err)
		}
		if n.tls != nil {
			n.mqttL = tls.NewListener(n.mqttL, n.tls.Config())
		}
		mqttL := n.mqttL
		n.onStop("mqtt listener", func(context.Context) error { return ignoreClosed(mqttL.Close()) })
	}
	return nil
}

// TLS reports whether the public listeners speak TLS.
func (n *Node) TLS() bool { return n.tls != nil }

// ReloadTLS reads --tls-cert and --tls-key again (SIGHUP). On failure the
// certificate in use stays, and the error says why.
func (n *Node) ReloadTLS() error {
	if n.tls == nil {
		return errors.New("no --tls-cert configured")
	}
	return n.tls.Reload()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tokenSecret returns the configured secret, or one kept in the data
// directory (created on first start) so tokens survive restarts.
func tokenSecret(cfg config.Config) ([]byte, error) {
	if cfg.TokenSecret != "" {
		return []byte(cfg.TokenSecret), nil
	}
	path := filepath.Join(cfg.Data, "token.secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := []byte(randomHex(32))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	return b, nil
}

// HTTPAddr is the bound HTTP address.
func (n *Node) HTTPAddr() string {
	if n.httpL == nil {
		return ""
	}
	return n.httpL.Addr().String()
}

// TCPAddr is the bound TCP gateway address, or "".
func (n *Node) TCPAddr() string {
	if n.tcpL == nil {
		return ""
	}
	return n.tcpL.Addr().String()
}

// MQTTAddr is the bound MQTT address, or "".
func (n *Node) MQTTAddr() string {
	if n.mqttL == nil {
		return ""
	}
	return n.mqttL.Addr().String()
}

// Gateway is the node's gateway, or nil.
func (n *Node) Gateway() *gateway.Gateway { return n.gw }

// LiveGateways lists the ids of the gateways this logic node routes logins
// to (nil on a gateway-only node). A gateway started elsewhere becomes
// routable a moment after its Start returns; tests wait on this.
func (n *Node) LiveGateways() []string {
	if n.reg == nil {
		return nil
	}
	var ids []string
	for _, g := range n.reg.Live() {
		ids = append(ids, g.GetId())
	}
	return ids
}

// drainNoticeGrace is how long a draining gateway waits, after publishing
// that it drains, before it kicks its clients.
const drainNoticeGrace = 250 * time.Millisecond
