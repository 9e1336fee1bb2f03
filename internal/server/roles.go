package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/adapter"
	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"github.com/magpie-im/magpie/internal/api"
	"github.com/magpie-im/magpie/internal/cluster"
	"github.com/magpie-im/magpie/internal/gateway"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
	"github.com/magpie-im/magpie/web"
)

func (n *Node) startLogic(ctx context.Context, mux *http.ServeMux) error {
	st, err := sqlstore.Open(ctx, n.cfg.StoreDSN())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	n.st = st
	n.engine = st.Engine()
	n.onStop("store", func(context.Context) error { return st.Close() })
	secret, err := tokenSecret(n.cfg)
	if err != nil {
		return err
	}
	warnLooseModes(n.log, n.privatePaths()...)
	// The registry's callback may run before WatchPresence returns: it
	// reads the view through an atomic, and a gateway that dies in that
	// moment is cleaned up by the view's own collect sweep instead.
	var presence atomic.Pointer[cluster.PresenceView]
	watchCtx, stopWatch := context.WithCancel(context.Background())
	reg, err := cluster.WatchRegistry(watchCtx, n.nc, n.cfg.Replicas, n.cfg.RegistryTTL, func(id string) {
		if v := presence.Load(); v != nil {
			v.ForgetGateway(watchCtx, id)
		}
	}, n.log)
	if err != nil {
		stopWatch()
		return fmt.Errorf("registry: %w", err)
	}
	n.reg = reg
	n.onStop("registry watch", func(ctx context.Context) error {
		stopWatch()
		return stopWaitGroupFunc(ctx, reg.Wait)
	})
	pctx, stopPresence := context.WithCancel(context.Background())
	view, err := cluster.WatchPresence(pctx, n.nc, n.cfg.Replicas, reg, n.log)
	if err != nil {
		stopPresence()
		return fmt.Errorf("presence: %w", err)
	}
	presence.Store(view)
	n.onStop("presence watch", func(ctx context.Context) error {
		stopPresence()
		return stopWaitGroupFunc(ctx, view.Wait)
	})
	workers := n.cfg.CommitWorkers
	if workers == 0 {
		workers = st.Engine().WriteConcurrency()
	}
	if n.ext, err = n.newExtensions(); err != nil {
		return err
	}
	n.bus = newLogicBus(n.nc, n.log)
	lcfg := logicConfig(n.cfg.Logic, n.cfg.Limits, n.cfg.Heartbeat)
	lcfg.TokenSecret, lcfg.CommitWorkers, lcfg.OnStoreHealth = secret, workers, n.bus.setHealthy
	lcfg.OnForget = n.publishForget
	lcfg.Files, lcfg.Hooks, lcfg.Encoder = n.ext.logicFiles(), n.ext.logicHooks(), envelope.Encoder{}
	lcfg.AppHooks = n.ext.appHooks()
	if lcfg.Auth, err = authSources(n.cfg.Login); err != nil {
		return err
	}
	var out logic.Deliverer = cluster.NewPublisher(n.nc)
	if n.roles.Gateway { // serve: deliveries for this node's gateway go to it directly (direct.go)
		n.direct = &directDeliverer{remote: out}
		out = n.direct
	}
	svc, err := logic.New(lcfg, st, out, view, picker{reg, cluster.Strategy(n.cfg.Strategy)}, n.log)
	if err != nil {
		return err
	}
	// Every logic node forgets what another changed (a deleted user, an
	// app's settings); this node's own changes are forgotten in process
	// before they are published, and their echo is harmless.
	forget, err := cluster.SubscribeForget(n.nc, func(f cluster.Forget) {
		if f.UserID != 0 {
			svc.ForgetUser(f.UserID)
		} else {
			svc.ForgetApps()
		}
	})
	if err != nil {
		return fmt.Errorf("forget subscription: %w", err)
	}
	n.onStop("forget subscription", func(context.Context) error { return forget.Unsubscribe() })
	n.handler = adapter.New(svc)
	n.bus.h = n.handler
	svc.Start()
	n.svc = svc
	n.onStop("logic", func(context.Context) error {
		// Committing what is queued gets its own budget: the clients'
		// drain may have used up Shutdown's ctx. The extensions stop
		// after the last commit's events.
		ctx, cancel := context.WithTimeout(context.Background(), commitBudget)
		defer cancel()
		return errors.Join(svc.Shutdown(ctx), n.ext.shutdown(ctx))
	})
	if err := n.bus.serve(); err != nil {
		return err
	}
	n.onStop("logic bus", n.bus.stop)
	n.api = api.New(mux, svc, n.log)
	n.api.SetLimits(api.Limits{TrustedProxies: n.cfg.TrustedProxies, DownloadMinRate: n.cfg.DownloadMinRate, DownloadGrace: n.cfg.DownloadGrace})
	n.ext.register(n.api)
	mux.Handle("GET /", web.Handler()) // the browser client; API routes are more specific
	return nil
}

// commitBudget bounds committing what is queued at shutdown.
const commitBudget = 10 * time.Second

type picker struct {
	reg *cluster.Registry
	s   cluster.Strategy
}

func (p picker) Pick(userID int64) (*clusterpb.GatewayInfo, error) { return p.reg.Pick(p.s, userID) }
func (p picker) Live() []*clusterpb.GatewayInfo                    { return p.reg.Live() }

func (n *Node) startGateway(ctx context.Context, mux *http.ServeMux) error {
	n.gatewayID = n.cfg.GatewayID
	if n.gatewayID == "" {
		n.gatewayID = "gw-" + randomHex(6)
	}
	if !cluster.ValidGatewayID(n.gatewayID) {
		return fmt.Errorf("--gateway-id %q: want 1-64 letters, digits, '-' or '_'", n.gatewayID)
	}
	// An operator's --advertise-* is used as given: behind a proxy that
	// ends TLS, the listeners here are plain and the addresses say TLS.
	n.advTCP, n.advWS = n.cfg.AdvertiseTCP, n.cfg.AdvertiseWS
	if n.advTCP == "" && n.tcpL != nil {
		n.advTCP = advertised(n.tcpL.Addr(), n.log, "advertise-tcp")
		if n.tls != nil {
			n.advTCP = "tls://" + n.advTCP
		}
	}
	n.advMQTT = n.cfg.AdvertiseMQTT
	if n.advMQTT == "" && n.mqttL != nil {
		n.advMQTT = advertised(n.mqttL.Addr(), n.log, "advertise-mqtt")
		if n.tls != nil {
			n.advMQTT = "tls://" + n.advMQTT
		}
	}
	if n.advWS == "" {
		scheme := "ws://"
		if n.tls != nil {
			scheme = "wss://"
		}
		n.advWS = scheme + advertised(n.httpL.Addr(), n.log, "advertise-ws") + "/v1/ws"
	}
	lc, err := cluster.NewLogicClient(n.nc, n.gatewayID, n.cfg.RequestTimeout)
	if err != nil {
		return err
	}
	n.lc = lc
	n.onStop("logic client", func(context.Context) error { lc.Close(); return nil })
	pw, err := cluster.NewPresenceWriter(ctx, n.nc, n.cfg.Replicas)
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	n.reassert.use(pw)
	n.onStop("presence reassert", n.reassert.stop)
	var backend gateway.Logic = lc
	if n.handler != nil { // serve: requests go to this node's logic directly (direct.go)
		backend = newDirectLogic(n.handler, n.bus, lc, n.cfg.RequestTimeout)
	}
	n.gw = gateway.New(gatewayConfig(n.gatewayID, n.cfg.Gateway), backend, pw, n.log)
	gw := n.gw
	if n.direct != nil {
		n.direct.attach(n.gatewayID, gw)
	}
	n.onStop("gateway", gw.Shutdown)
	sub, err := cluster.SubscribeDeliveries(n.nc, n.gatewayID, n.gw.Deliver)
	if err != nil {
		return err
	}
	n.onStop("deliveries", func(ctx context.Context) error { return drainSubs(ctx, sub) })
	ping, err := cluster.ServePing(n.nc, n.gatewayID)
	if err != nil {
		return err
	}
	n.onStop("ping", func(ctx context.Context) error { return drainSubs(ctx, ping) })
	buried, err := cluster.OnBuried(n.nc, n.gatewayID, n.reassert.trigger)
	if err != nil {
		return err
	}
	n.onStop("buried", func(ctx context.Context) error { return drainSubs(ctx, buried) })
	mux.Handle("GET /v1/ws", n.gw.WebSocketHandler())
	reg, err := cluster.NewRegistrar(ctx, n.nc, n.cfg.Replicas, n.cfg.RegistryTTL, n.info, n.log)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	reg.OnGap = n.reassert.trigger
	n.registrar = reg
	if err := reg.Put(ctx); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	n.goUntilStop("registrar", reg.Run) // deletes the entry when stopped
	if n.reg != nil {
		// A login right after start must find this gateway (serve: the
		// logic role in this process watches the registry).
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = n.reg.WaitAlive(wctx, n.gatewayID)
		cancel()
	}
	return nil
}

func (n *Node) info() *clusterpb.GatewayInfo {
	gi := &clusterpb.GatewayInfo{Id: n.gatewayID, Addrs: map[string]string{"tcp": n.advTCP, "ws": n.advWS}, Draining: n.draining.Load(),
		Tcp: n.advTCP, Ws: n.advWS} // for logic nodes older than Addrs (cluster.proto)
	if n.advMQTT != "" {
		gi.Addrs["mqtt"] = n.advMQTT
	}
	if n.gw != nil {
		gi.Conns = int64(n.gw.Conns())
		gi.FirstConn = n.gw.FirstConnID()
	}
	return gi
}

// advertised is the address clients should dial for a listener. A wildcard
// listener has no single right answer, so we say loopback and warn instead
// of guessing an interface.
func advertised(a net.Addr, log *slog.Logger, flagName string) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ta.IP.IsUnspecified() {
		log.Warn("listening on all interfaces: set --"+flagName+" to the address clients can reach; advertising loopback", "addr", a.String())
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	return ta.String()
}

// publishForget is logic.Config.OnForget: the other logic nodes drop
// their cached copy of what this one changed. A failure is logged: the
// change is committed, and the others' app list expires within seconds
// anyway (a deleted user's name stays cached there until restart).
func (n *Node) publishForget(userID int64) {
	if err := cluster.PublishForget(n.nc, cluster.Forget{UserID: userID}); err != nil {
		n.log.Warn("tell the logic nodes to forget", "user", userID, "err", err)
	}
}
