// Package logic is Magpie's stateless logic role: accounts and login,
// the message pipeline (validate, commit with a seq in one transaction,
// ACK, fan out), receipts, sync and history. Any number of logic nodes may
// serve the same store and bus.
//
// Logic speaks domain types: internal/adapter decodes the client's
// envelopes and calls it (conn.go), and what logic pushes to devices is
// encoded through its Encoder.
//
// A Service is safe for concurrent use once Start has returned.
package logic

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/batch"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Deliverer publishes a delivery to one gateway (cluster.Publisher).
type Deliverer interface {
	Deliver(gatewayID string, d *clusterpb.Delivery) error
}

// Encoder encodes what logic pushes to devices into the bytes a gateway
// writes to a connection as they are (internal/adapter/envelope implements
// it in the client protocol). Logic encodes each push once and shares the
// bytes among every Delivery of it, so the encoder is called once per push,
// never per recipient.
type Encoder interface {
	// Message is a stored message; peer is the other side of a private
	// conversation as the receiving device sees it ("" for a group).
	Message(m store.Message, peer string) []byte
	// Transient is a message that is not stored (seq 0): broadcasts and
	// notifications.
	Transient(m store.Message) []byte
	// Receipt says userID's kind cursor of convID moved to seq.
	Receipt(convID string, userID int64, username string, kind store.CursorKind, seq uint64) []byte
	// Conversation is a conversation's new state or flags.
	Conversation(c store.Conversation) []byte
	// Typing says userID is typing in convID (or stopped).
	Typing(convID string, userID int64, username string, stopped bool) []byte
	// Notice is a transient notice to one user's devices.
	Notice(n store.Notice) []byte
	// Kick tells a device why its connection closes.
	Kick(code wire.Code, reason string) []byte
	// MessageSize and ConversationSize are what a message or a state adds
	// to an encoded answer; Sync fills one frame with them.
	MessageSize(m store.Message, peer string) int
	ConversationSize(c store.Conversation) int
}

// Presence tells where users are connected (cluster.PresenceView).
type Presence interface {
	AppendConns(dst []*clusterpb.ConnRef, userID int64) []*clusterpb.ConnRef
	Conns(userID int64) []*clusterpb.ConnRef
	Add(c *clusterpb.ConnRef)
	Online() map[int64][]*clusterpb.ConnRef
}

// Gateways picks a gateway for a login (cluster.Registry with a strategy).
type Gateways interface {
	Pick(userID int64) (*clusterpb.GatewayInfo, error)
	Live() []*clusterpb.GatewayInfo
}

// DevicePolicy limits the devices of one user.
type DevicePolicy string

const (
	DevicesUnlimited   DevicePolicy = "unlimited"
	DevicesSingle      DevicePolicy = "single"
	DevicesPerPlatform DevicePolicy = "per-platform"
)

// Config tunes the logic role. Zero values take the defaults.
type Config struct {
	TokenSecret     []byte
	TokenTTL        time.Duration // default 24h
	DevicePolicy    DevicePolicy  // default unlimited
	RejectNewDevice bool          // when over the policy: refuse the new login instead of kicking the old
	MaxBatch        int           // messages per commit, default 512
	CommitWindow    time.Duration // how long a small commit may wait for more (batch.Config.Window), default 0
	CommitWorkers   int           // concurrent commit loops, default 1
	SendQueue       int           // pending sends before ErrOverloaded, default 65536
	HeartbeatSecs   uint32        // told to clients in AuthOK, default 30
	LoginRate       float64       // login attempts per second per username, default 1 (burst 10)
	Hooks           Hooks         // webhooks; nil: none
	AppHooks        AppHooks      // the other apps' event webhooks (hooks.go); nil: none
	MaxConnsPerUser int           // live connections per user; 0: no limit
	// Abuse limits (abuse.go); a zero rate or count is no limit.
	LoginIPRate        float64        // failed logins per second per client address (burst 20)
	LoginGlobalRate    float64        // failed logins per second on this node (burst 10 s of it)
	RegisterIPRate     float64        // registrations per second per client address (burst 10)
	LimitExempt        []netip.Prefix // client addresses the per-address limits skip
	UserSendRate       float64        // sends per second per user, HTTP and long connection together (burst 2 s of it)
	PushRate           float64        // push requests per second per push key (burst 2 s of it)
	MaxSessionsPerUser int            // active sessions per user; a login beyond it ends the oldest
	HashConcurrency    int            // Argon2id hashes at once, default GOMAXPROCS (at least 2)
	HashWait           time.Duration  // a login waits this long for a hashing slot, then 503; default 2s
	Files              Files          // uploads; nil: file messages refused
	Encoder            Encoder        // required: how pushes are encoded
	Auth               []AuthSource   // --auth in order (login.go); empty: local accounts only
	MaxReads           int            // read requests (sync, history, online, receipts) at once, default 1024

	// Groups, friends, broadcast, recall (see config for meanings).
	MaxGroupSize      int
	Admins            []string
	AllowBroadcast    bool
	RequireFriendship bool
	RecallWindow      time.Duration
	OnlineVisibility  OnlineVisibility // whose presence users see; default contacts
	ScheduleHorizon   time.Duration    // how far ahead a message may be scheduled; 0: DefaultScheduleHorizon, <0: off

	// OnStoreHealth, if set, is called (from the health watcher's
	// goroutine; do not block) when the database stops or starts
	// answering; see health.go.
	OnStoreHealth  func(ok bool)
	HealthInterval time.Duration // between pings, default 1s
	HealthTimeout  time.Duration // per ping, default 2s
	SeenEvery      time.Duration // a session's last-seen time is written at most this often, default 1m

	// OnForget, if set, is called after a change committed to the store
	// that other logic nodes cache: a user deleted or disabled (its id),
	// an app's settings, keys or a new app (0: the app list). This node
	// has forgotten already; the callee tells the others, which call
	// ForgetUser or ForgetApps (cluster.PublishForget). It may block
	// briefly: the admin call answers after it.
	OnForget func(userID int64)
}

func (c *Config) setDefaults() {
	if c.TokenTTL <= 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.DevicePolicy == "" {
		c.DevicePolicy = DevicesUnlimited
	}
	if c.ScheduleHorizon == 0 {
		c.ScheduleHorizon = DefaultScheduleHorizon
	}
	if c.OnlineVisibility == "" {
		c.OnlineVisibility = OnlineContacts
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.CommitWorkers <= 0 {
		c.CommitWorkers = 1
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 65536
	}
	if c.HeartbeatSecs == 0 {
		c.HeartbeatSecs = 30
	}
	if c.LoginRate <= 0 {
		c.LoginRate = 1
	}
	if c.HashConcurrency <= 0 {
		c.HashConcurrency = max(2, runtime.GOMAXPROCS(0))
	}
	if c.HashWait <= 0 {
		c.HashWait = 2 * time.Second
	}
	if c.MaxReads <= 0 {
		c.MaxReads = 1024
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 2 * time.Second
	}
	if c.SeenEvery <= 0 {
		c.SeenEvery = seenEvery
	}
}

// Service is one logic node.
type Service struct {
	cfg      Config
	store    store.Store
	out      Deliverer
	enc      Encoder
	presence Presence
	gateways Gateways
	log      *slog.Logger
	tokens   tokenSigner
	now      func() time.Time

	sends          []*batch.Loop[*pendingSend, store.AppendResult] // one per commit worker, chosen by conversation
	cursors        *batch.Loop[*pendingCursor, store.CursorResult]
	receiptMembers memberTTL       // see membersOf
	lanes          []chan laneItem // ordered per connection, see lanes.go
	stats          counters
	names          sync.Map // username → store.User, see userByName
	namesLen       atomic.Int64
	namesGen       atomic.Uint64 // bumped by forgetUser: a lookup begun before it caches nothing
	ids            sync.Map      // user id → userRef
	apps           appCache      // apps.go
	members        groupMembers  // group fan-out's member lists (groupmsg.go)
	hashSem        chan struct{} // bounds concurrent Argon2 work (memory-heavy)
	logins         *limiter      // per username, every attempt
	loginIPs       *limiter      // per client address, failed attempts; nil: off
	loginsAll      *limiter      // the whole node, failed attempts; nil: off
	registers      *limiter      // per client address; nil: off
	userSends      *limiter      // per user id; nil: off
	pushes         *limiter      // per push key; nil: off
	typings        *limiter      // per user id (typing.go)
	health         storeHealth
	seenT          seenTracker     // sessions.go
	devices        devicePositions // devices.go

	stopOnce sync.Once
	stopMu   sync.RWMutex // held for reading while queueing work; see accepting
	stopped  bool
	stop     chan struct{}
	wg       sync.WaitGroup // commit loops, helpers and read requests
	reads    chan struct{}  // one token per running read request; see Read
	// life ends when Shutdown returns (or gives up): read requests still
	// running then stop waiting on the store.
	life    context.Context
	endLife context.CancelFunc
}

// New builds a Service; call Start before use.
func New(cfg Config, st store.Store, out Deliverer, presence Presence, gateways Gateways, log *slog.Logger) (*Service, error) {
	cfg.setDefaults()
	if cfg.Encoder == nil {
		return nil, fmt.Errorf("logic: no encoder")
	}
	if len(cfg.TokenSecret) < 16 {
		return nil, fmt.Errorf("logic: token secret must be at least 16 bytes")
	}
	if cfg.OnlineVisibility != OnlineContacts && cfg.OnlineVisibility != OnlineAll {
		return nil, fmt.Errorf("logic: unknown online visibility %q", cfg.OnlineVisibility)
	}
	switch cfg.DevicePolicy {
	case DevicesUnlimited, DevicesSingle, DevicesPerPlatform:
	default:
		return nil, fmt.Errorf("logic: unknown device policy %q", cfg.DevicePolicy)
	}
	for _, a := range cfg.Auth {
		if a.Name == "" || (a.Name != auth.Local && a.Password == nil && a.Token == nil) {
			return nil, fmt.Errorf("logic: login source %q checks neither passwords nor tokens", a.Name)
		}
	}
	svc := &Service{
		cfg:       cfg,
		store:     st,
		out:       out,
		enc:       cfg.Encoder,
		reads:     make(chan struct{}, cfg.MaxReads),
		presence:  presence,
		gateways:  gateways,
		log:       log,
		tokens:    tokenSigner{key: cfg.TokenSecret},
		now:       time.Now,
		lanes:     makeLanes(laneCount, laneDepth),
		hashSem:   make(chan struct{}, cfg.HashConcurrency),
		logins:    newLimiter(cfg.LoginRate, 10),
		loginIPs:  newOptionalLimiter(cfg.LoginIPRate, loginIPBurst),
		loginsAll: newOptionalLimiter(cfg.LoginGlobalRate, int(cfg.LoginGlobalRate*globalBurstSecs)),
		registers: newOptionalLimiter(cfg.RegisterIPRate, registerBurst),
		userSends: newOptionalLimiter(cfg.UserSendRate, int(2*cfg.UserSendRate)),
		pushes:    newOptionalLimiter(cfg.PushRate, int(2*cfg.PushRate)),
		typings:   newLimiter(TypingRate, TypingBurst),
		stop:      make(chan struct{}),
	}
	svc.life, svc.endLife = context.WithCancel(context.Background())
	svc.seenT.queue = make(chan seenWrite, 1024)
	svc.cursors = svc.newCursorLoop()
	for range cfg.CommitWorkers {
		svc.sends = append(svc.sends, svc.newCommitLoop())
	}
	return svc, nil
}

// Start runs the commit loops.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.cursors.Run(s.stop)
	}()
	for i := range s.sends {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sends[i].Run(s.stop)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchStore()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.seenLoop()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.scheduleLoop()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.devicesLoop()
	}()
	for _, l := range s.lanes {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runLane(l)
		}()
	}
}

// accepting runs queue under the stop gate: it returns false once Shutdown
// began, and no queue operation can start after that point, so the loops'
// final drain misses nothing.
func (s *Service) accepting(queue func()) bool {
	s.stopMu.RLock()
	defer s.stopMu.RUnlock()
	if s.stopped {
		return false
	}
	queue()
	return true
}

// Shutdown stops accepting sends, commits what is queued, and waits for the
// commit loops (bounded by ctx). Safe to call twice.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.stopMu.Lock()
		s.stopped = true
		close(s.stop)
		s.stopMu.Unlock()
	})
	defer s.endLife()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
