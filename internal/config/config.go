// Package config is Magpie's one typed configuration. Values are layered:
// defaults → JSON file (--config or MAGPIE_CONFIG) → MAGPIE_* environment →
// command-line flags → Validate. Every flag NAME has the environment
// variable MAGPIE_NAME (upper case, '-' as '_') and the JSON key NAME.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config holds every setting of every role, grouped by the part of the
// node that reads it. The groups are embedded, so a setting is reached as
// cfg.Heartbeat as well as cfg.Gateway.Heartbeat, and a role is handed its
// group whole. Comma-separated settings arrive parsed (lists, address
// prefixes, push keys); Load rejects what does not parse.
type Config struct {
	Common
	Cluster
	Gateway
	Logic
	Files
	Hooks
	Limits
	Login
}

// Common is what every role reads.
type Common struct {
	Data  string
	HTTP  string
	Store string // logic role; default DATA/magpie.db (StoreDSN)

	// TLS on the public listeners (--http and --tcp), issue 9.
	TLSCert  string
	TLSKey   string
	TLSWatch time.Duration

	LogLevel     string
	LogFormat    string
	Metrics      string
	MetricsToken string
	DrainTimeout time.Duration
}

// Cluster is the NATS link between the roles, the embedded NATS server,
// and the registry and presence buckets on it.
type Cluster struct {
	NATS        string // external NATS URLs, comma-separated, as nats.Connect takes them
	NATSCreds   string
	NATSCA      string
	NATSCert    string
	NATSKey     string
	NATSListen  string
	NATSCluster string
	NATSRoutes  []string
	NATSName    string
	NATSServer  string
	Replicas    int
	RegistryTTL time.Duration
}

// Gateway is the gateway role: client connections.
type Gateway struct {
	TCP            string
	AdvertiseTCP   string
	AdvertiseWS    string
	MQTT           string // MQTT listen address (docs/mqtt.md); empty: none
	AdvertiseMQTT  string
	GatewayID      string
	AuthTimeout    time.Duration
	Heartbeat      time.Duration // also told to clients by the logic role
	HeartbeatTO    time.Duration
	SendQueue      int
	ConnRate       float64
	AcceptRate     float64 // new connections per second per gateway; 0: no limit
	AllowedOrigins []string
	RequestTimeout time.Duration
}

// Logic is the logic role: accounts, tokens, routing and messages.
type Logic struct {
	TokenSecret       string
	TokenTTL          time.Duration
	DevicePolicy      string
	DeviceReject      bool
	Strategy          string
	CommitWorkers     int // 0: the store engine's own (sqlstore.Engine.WriteConcurrency)
	MaxBatch          int
	CommitWindow      time.Duration
	MaxConnsPerUser   int
	MaxGroupSize      int
	Admins            []string
	AllowBroadcast    bool
	RequireFriendship bool
	RecallWindow      time.Duration
	OnlineVisibility  string
	ScheduleHorizon   time.Duration
}

// Files is the logic role's uploads.
type Files struct {
	FilesDir        string // default DATA/files
	FilesMaxSize    int64
	FilesTypes      []string
	FilesQuota      int64
	DownloadMinRate int64
	DownloadGrace   time.Duration
}

// Hooks is the logic role's outside callers and callees: webhooks, the
// before-send hook and the push API's keys.
type Hooks struct {
	PushKeys           PushKeys
	AdminKeys          PushKeys
	WebhookURLs        []string
	WebhookSecret      string
	BeforeSendURL      string
	BeforeAddURL       string
	BeforeSendTimeout  time.Duration
	BeforeSendFailOpen bool
}

// Login is the logic role's login sources (docs/operations.md, "Login
// sources"), issue 12: --auth in order and each outside source's settings.
type Login struct {
	Auth            []string // local, ldap, http, oidc
	AuthURL         string
	AuthSecret      string
	AuthHTTPTimeout time.Duration

	AuthLDAPURL          string
	AuthLDAPStartTLS     bool
	AuthLDAPCA           string
	AuthLDAPBindDN       string
	AuthLDAPBindPassword string
	AuthLDAPBaseDN       string
	AuthLDAPFilter       string
	AuthLDAPGroupFilter  string
	AuthLDAPUsernameAttr string
	AuthLDAPNameAttr     string
	AuthLDAPEmailAttr    string
	AuthLDAPTimeout      time.Duration

	AuthOIDCIssuer        string
	AuthOIDCAudience      string
	AuthOIDCJWKSURL       string
	AuthOIDCUsernameClaim string
	AuthOIDCNameClaim     string
	AuthOIDCEmailClaim    string
	AuthOIDCTimeout       time.Duration
}

// Limits are the abuse limits (docs/operations.md, "Abuse limits"), issue 9.
type Limits struct {
	TrustedProxies     []netip.Prefix
	LimitExempt        []netip.Prefix
	LoginIPRate        float64
	LoginGlobalRate    float64
	RegisterIPRate     float64
	HashConcurrency    int
	HashWait           time.Duration
	UserSendRate       float64
	PushRate           float64
	MaxSessionsPerUser int
}

// Default returns the zero-setup configuration of `magpie serve`. It is
// the one place defaults live: the flags show them, and a zero field the
// roles fill in themselves (CommitWorkers, FilesDir, Store) says so.
func Default() Config {
	return Config{
		Common: Common{
			Data:         "magpie-data",
			HTTP:         "127.0.0.1:8080",
			TLSWatch:     2 * time.Second,
			LogLevel:     "info",
			LogFormat:    "text",
			DrainTimeout: 30 * time.Second,
		},
		Cluster: Cluster{
			Replicas:    1,
			RegistryTTL: 10 * time.Second,
		},
		Gateway: Gateway{
			TCP:            "127.0.0.1:7070",
			AuthTimeout:    5 * time.Second,
			Heartbeat:      30 * time.Second,
			HeartbeatTO:    90 * time.Second,
			SendQueue:      1024,
			ConnRate:       500,
			RequestTimeout: 10 * time.Second,
		},
		Logic: Logic{
			TokenTTL:         24 * time.Hour,
			DevicePolicy:     "unlimited",
			OnlineVisibility: "contacts",
			ScheduleHorizon:  30 * 24 * time.Hour,
			Strategy:         "round-robin",
			MaxBatch:         512,
			MaxConnsPerUser:  100,
			MaxGroupSize:     5000,
			RecallWindow:     2 * time.Minute,
		},
		Files: Files{
			FilesMaxSize:    10 << 20,
			FilesTypes:      []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "application/zip", "application/octet-stream", "audio/mpeg", "video/mp4"},
			FilesQuota:      1 << 30,
			DownloadMinRate: 16 << 10,
			DownloadGrace:   30 * time.Second,
		},
		Hooks: Hooks{
			BeforeSendTimeout:  500 * time.Millisecond,
			BeforeSendFailOpen: true,
		},
		Login: Login{
			Auth:            []string{"local"},
			AuthHTTPTimeout: 2 * time.Second,

			AuthLDAPFilter:       "(uid={username})",
			AuthLDAPUsernameAttr: "uid",
			AuthLDAPNameAttr:     "cn",
			AuthLDAPEmailAttr:    "mail",
			AuthLDAPTimeout:      5 * time.Second,

			AuthOIDCUsernameClaim: "preferred_username",
			AuthOIDCNameClaim:     "name",
			AuthOIDCEmailClaim:    "email",
			AuthOIDCTimeout:       5 * time.Second,
		},
		Limits: Limits{
			LimitExempt:        []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
			LoginIPRate:        0.2,
			LoginGlobalRate:    20,
			RegisterIPRate:     0.1,
			HashWait:           2 * time.Second,
			UserSendRate:       500,
			PushRate:           100,
			MaxSessionsPerUser: 100,
		},
	}
}

// bind declares every flag on fs, writing into c. The comma-separated
// flags are strings on fs (their help and their printed value stay plain
// text); the returned parsed fills c's typed fields from them, once fs
// holds its final values.
func (c *Config) bind(fs *flag.FlagSet) (parsed func() error) {
	var lists listFlags
	fs.StringVar(&c.Data, "data", c.Data, "data directory (SQLite database, embedded NATS, token secret)")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "HTTP listen address: API, WebSocket /v1/ws, web client")
	fs.StringVar(&c.TCP, "tcp", c.TCP, "TCP gateway listen address (empty: no TCP listener)")
	fs.StringVar(&c.Store, "store", c.Store, "database: a SQLite file path or a postgres:// URL (default DATA/magpie.db)")
	fs.StringVar(&c.AdvertiseTCP, "advertise-tcp", c.AdvertiseTCP, "TCP address clients are told to dial, used as given (default: the --tcp address; tls://<--tcp> with --tls-cert)")
	fs.StringVar(&c.MQTT, "mqtt", c.MQTT, "MQTT 3.1.1 and 5.0 listen address for devices, TLS with --tls-cert (empty: no MQTT listener; see docs/mqtt.md)")
	fs.StringVar(&c.AdvertiseMQTT, "advertise-mqtt", c.AdvertiseMQTT, "MQTT address clients are told to dial, used as given (default: the --mqtt address; tls://<--mqtt> with --tls-cert)")
	fs.StringVar(&c.AdvertiseWS, "advertise-ws", c.AdvertiseWS, "WebSocket URL clients are told to dial, used as given (default: ws://<--http>/v1/ws; wss:// with --tls-cert)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) for HTTPS, WSS and TLS on --tcp; reloaded on SIGHUP and when the file changes (empty: no TLS)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.DurationVar(&c.TLSWatch, "tls-watch", c.TLSWatch, "how often the --tls-cert and --tls-key files are checked for a change (0: only on SIGHUP)")
	fs.StringVar(&c.GatewayID, "gateway-id", c.GatewayID, "gateway id in the registry (default: random per start)")
	fs.StringVar(&c.NATS, "nats", c.NATS, "external NATS URLs, comma-separated (empty: embed a NATS server)")
	fs.StringVar(&c.NATSCreds, "nats-creds", c.NATSCreds, "NATS credentials file")
	fs.StringVar(&c.NATSCA, "nats-ca", c.NATSCA, "NATS TLS CA file")
	fs.StringVar(&c.NATSCert, "nats-cert", c.NATSCert, "NATS TLS client certificate")
	fs.StringVar(&c.NATSKey, "nats-key", c.NATSKey, "NATS TLS client key")
	fs.StringVar(&c.NATSListen, "nats-listen", c.NATSListen, "embedded NATS: client listen address (empty: in-process only)")
	fs.StringVar(&c.NATSCluster, "nats-cluster", c.NATSCluster, "embedded NATS: cluster route listen address")
	lists.strings(fs, &c.NATSRoutes, "nats-routes", "embedded NATS: routes to the other servers, comma-separated nats-route://host:port")
	fs.StringVar(&c.NATSName, "nats-cluster-name", c.NATSName, "embedded NATS: cluster name")
	fs.StringVar(&c.NATSServer, "nats-server-name", c.NATSServer, "embedded NATS: server name, unique in the cluster (default: random)")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "replicas of the registry and presence buckets (3 on a 3-node NATS cluster)")
	fs.StringVar(&c.TokenSecret, "token-secret", c.TokenSecret, "secret for signing access tokens, shared by all logic nodes (default in serve: generated into DATA)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "access token lifetime")
	fs.StringVar(&c.DevicePolicy, "device-policy", c.DevicePolicy, "devices per user: unlimited, single, per-platform")
	fs.BoolVar(&c.DeviceReject, "device-reject", c.DeviceReject, "over the device policy, reject the new login instead of kicking the old device")
	fs.StringVar(&c.Strategy, "route-strategy", c.Strategy, "gateway choice at login: round-robin, random, hash, least-conns")
	fs.DurationVar(&c.RegistryTTL, "registry-ttl", c.RegistryTTL, "a gateway silent this long is dead")
	fs.DurationVar(&c.AuthTimeout, "auth-timeout", c.AuthTimeout, "a connection must authenticate within this")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "clients ping at this interval")
	fs.DurationVar(&c.HeartbeatTO, "heartbeat-timeout", c.HeartbeatTO, "a connection silent this long is closed")
	fs.IntVar(&c.SendQueue, "send-queue", c.SendQueue, "frames queued per connection before it is dropped as a slow consumer")
	fs.Float64Var(&c.ConnRate, "conn-rate", c.ConnRate, "requests per second allowed per connection")
	fs.Float64Var(&c.AcceptRate, "accept-rate", c.AcceptRate, "new connections per second one gateway takes, all listeners together; the rest wait (TCP, MQTT) or get 503 after --auth-timeout (WebSocket); 0: no limit")
	lists.strings(fs, &c.AllowedOrigins, "allowed-origins", "WebSocket Origin allowlist, comma-separated; empty: same host only; * allows any")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "on SIGTERM, wait this long for clients to leave")
	fs.IntVar(&c.CommitWorkers, "commit-workers", c.CommitWorkers, "concurrent commit loops (default 1 for SQLite, 4 for PostgreSQL)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "messages per group commit")
	fs.DurationVar(&c.CommitWindow, "commit-window", c.CommitWindow, "a group commit of fewer than 16 messages, behind one of several, waits up to this long for more: fewer commits (and fsyncs) at moderate rates, each ACK up to this much later (0: never waits)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.IntVar(&c.MaxConnsPerUser, "max-conns-per-user", c.MaxConnsPerUser, "live connections one user may hold across all gateways (0: no limit)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "gateway: how long a client request waits for a logic node before the client is told to retry")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "listen address for /metrics and /debug/pprof (empty: off; keep it off the public network)")
	fs.StringVar(&c.MetricsToken, "metrics-token", c.MetricsToken, "if set, the metrics listener requires Authorization: Bearer TOKEN (at least 16 characters)")
	fs.IntVar(&c.MaxGroupSize, "max-group-size", c.MaxGroupSize, "largest number of members in a group")
	lists.strings(fs, &c.Admins, "admins", "usernames of server admins (may broadcast), comma-separated")
	fs.BoolVar(&c.AllowBroadcast, "allow-broadcast", c.AllowBroadcast, "let every user broadcast to everyone online, not only admins")
	fs.BoolVar(&c.RequireFriendship, "require-friendship", c.RequireFriendship, "private messages only between friends")
	fs.DurationVar(&c.ScheduleHorizon, "schedule-horizon", c.ScheduleHorizon, "how far ahead a message may be scheduled (send_at; 0: scheduling off)")
	fs.StringVar(&c.OnlineVisibility, "online-visibility", c.OnlineVisibility, "whose presence users see: contacts (friends, group co-members, private chat peers) or all")
	fs.DurationVar(&c.RecallWindow, "recall-window", c.RecallWindow, "how long after sending a sender may recall or edit a message")
	fs.StringVar(&c.FilesDir, "files-dir", c.FilesDir, "where uploaded files are kept (default DATA/files)")
	fs.Int64Var(&c.FilesMaxSize, "files-max-size", c.FilesMaxSize, "largest upload in bytes")
	lists.strings(fs, &c.FilesTypes, "files-types", "allowed upload content types, comma-separated")
	lists.pushKeys(fs, &c.PushKeys, "push-keys", "server push API keys, comma-separated KEYID:SECRET pairs (empty: push API off)")
	lists.pushKeys(fs, &c.AdminKeys, "admin-keys", "admin API keys (imports, moderation, apps), comma-separated KEYID:SECRET pairs, signed like the push API (empty: admin API off)")
	lists.strings(fs, &c.WebhookURLs, "webhook-urls", "URLs that receive signed event webhooks, comma-separated")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", c.WebhookSecret, "HMAC secret that signs webhook requests")
	fs.StringVar(&c.BeforeSendURL, "before-send-url", c.BeforeSendURL, "URL asked to allow or veto each message before it is stored")
	fs.StringVar(&c.BeforeAddURL, "before-add-url", c.BeforeAddURL, "URL asked to allow or veto each friend add and group member add before it is stored (--before-send-timeout, --before-send-fail-open apply)")
	fs.DurationVar(&c.BeforeSendTimeout, "before-send-timeout", c.BeforeSendTimeout, "how long to wait for the before-send hook")
	lists.prefixes(fs, &c.TrustedProxies, "trusted-proxies", "IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client, comma-separated (empty: the peer is the client)")
	lists.prefixes(fs, &c.LimitExempt, "limit-exempt", "client IPs or CIDRs the per-address login and registration limits skip, comma-separated")
	fs.Float64Var(&c.LoginIPRate, "login-ip-rate", c.LoginIPRate, "failed logins per second per client address, burst 20 (0: no limit)")
	fs.Float64Var(&c.LoginGlobalRate, "login-global-rate", c.LoginGlobalRate, "failed logins per second on one logic node, burst 10 s worth (0: no limit)")
	fs.Float64Var(&c.RegisterIPRate, "register-ip-rate", c.RegisterIPRate, "registrations per second per client address, burst 10 (0: no limit)")
	fs.IntVar(&c.HashConcurrency, "hash-concurrency", c.HashConcurrency, "password hashes (Argon2id, 19 MiB each) run at once per logic node (0: GOMAXPROCS, at least 2)")
	fs.DurationVar(&c.HashWait, "hash-wait", c.HashWait, "how long a login or registration waits for a hashing slot before 503")
	fs.Float64Var(&c.UserSendRate, "user-send-rate", c.UserSendRate, "sends, edits and recalls per second per user over HTTP and the long connection together, per logic node, burst 2 s worth (0: no limit)")
	fs.Float64Var(&c.PushRate, "push-rate", c.PushRate, "push API requests per second per push key, per logic node, burst 2 s worth (0: no limit)")
	fs.Int64Var(&c.FilesQuota, "files-quota", c.FilesQuota, "bytes of uploads each user may keep stored (0: no limit)")
	fs.Int64Var(&c.DownloadMinRate, "download-min-rate", c.DownloadMinRate, "a download slower than this many bytes per second (after --download-grace) is cut (0: never)")
	fs.DurationVar(&c.DownloadGrace, "download-grace", c.DownloadGrace, "time every download gets on top of its size at --download-min-rate")
	fs.IntVar(&c.MaxSessionsPerUser, "max-sessions-per-user", c.MaxSessionsPerUser, "active sessions (logged-in devices) per user; a login beyond it ends the oldest (0: no limit)")
	fs.BoolVar(&c.BeforeSendFailOpen, "before-send-fail-open", c.BeforeSendFailOpen, "if the before-send hook fails or times out, allow the message (false: refuse it)")
	lists.strings(fs, &c.Auth, "auth", "login sources tried in order, comma-separated: local (accounts registered here), ldap, http (--auth-url), oidc")
	fs.StringVar(&c.AuthURL, "auth-url", c.AuthURL, "--auth http: the endpoint asked to allow or deny each login, signed like the webhooks")
	fs.StringVar(&c.AuthSecret, "auth-secret", c.AuthSecret, "--auth http: HMAC secret that signs the requests to --auth-url (at least 16 characters)")
	fs.DurationVar(&c.AuthHTTPTimeout, "auth-http-timeout", c.AuthHTTPTimeout, "--auth http: how long to wait for --auth-url; a timeout refuses the login")
	fs.StringVar(&c.AuthLDAPURL, "auth-ldap-url", c.AuthLDAPURL, "--auth ldap: the directory, ldap://host:port or ldaps://host:port")
	fs.BoolVar(&c.AuthLDAPStartTLS, "auth-ldap-starttls", c.AuthLDAPStartTLS, "--auth ldap: upgrade an ldap:// connection with StartTLS before binding")
	fs.StringVar(&c.AuthLDAPCA, "auth-ldap-ca", c.AuthLDAPCA, "--auth ldap: PEM file of the CAs the directory's certificate must chain to (empty: the system's)")
	fs.StringVar(&c.AuthLDAPBindDN, "auth-ldap-bind-dn", c.AuthLDAPBindDN, "--auth ldap: the service account that searches users (empty: anonymous search)")
	fs.StringVar(&c.AuthLDAPBindPassword, "auth-ldap-bind-password", c.AuthLDAPBindPassword, "--auth ldap: the service account's password")
	fs.StringVar(&c.AuthLDAPBaseDN, "auth-ldap-base-dn", c.AuthLDAPBaseDN, "--auth ldap: where users and groups are searched")
	fs.StringVar(&c.AuthLDAPFilter, "auth-ldap-filter", c.AuthLDAPFilter, "--auth ldap: finds the user's one entry; {username} is the typed name, escaped")
	fs.StringVar(&c.AuthLDAPGroupFilter, "auth-ldap-group-filter", c.AuthLDAPGroupFilter, "--auth ldap: if set, must match an entry for the user to log in; {dn} is the user's DN, e.g. (&(cn=chat)(member={dn}))")
	fs.StringVar(&c.AuthLDAPUsernameAttr, "auth-ldap-username-attr", c.AuthLDAPUsernameAttr, "--auth ldap: the attribute that is the Magpie username")
	fs.StringVar(&c.AuthLDAPNameAttr, "auth-ldap-name-attr", c.AuthLDAPNameAttr, "--auth ldap: the attribute that is the display name")
	fs.StringVar(&c.AuthLDAPEmailAttr, "auth-ldap-email-attr", c.AuthLDAPEmailAttr, "--auth ldap: the attribute that is the email")
	fs.DurationVar(&c.AuthLDAPTimeout, "auth-ldap-timeout", c.AuthLDAPTimeout, "--auth ldap: dial and per-request timeout; a timeout refuses the login")
	fs.StringVar(&c.AuthOIDCIssuer, "auth-oidc-issuer", c.AuthOIDCIssuer, "--auth oidc: the issuer URL tokens of POST /v1/login/token must carry (iss)")
	fs.StringVar(&c.AuthOIDCAudience, "auth-oidc-audience", c.AuthOIDCAudience, "--auth oidc: the audience (client id) tokens must be issued for (aud)")
	fs.StringVar(&c.AuthOIDCJWKSURL, "auth-oidc-jwks-url", c.AuthOIDCJWKSURL, "--auth oidc: the issuer's signing keys (empty: discovered from the issuer's /.well-known/openid-configuration)")
	fs.StringVar(&c.AuthOIDCUsernameClaim, "auth-oidc-username-claim", c.AuthOIDCUsernameClaim, "--auth oidc: the claim that is the Magpie username")
	fs.StringVar(&c.AuthOIDCNameClaim, "auth-oidc-name-claim", c.AuthOIDCNameClaim, "--auth oidc: the claim that is the display name")
	fs.StringVar(&c.AuthOIDCEmailClaim, "auth-oidc-email-claim", c.AuthOIDCEmailClaim, "--auth oidc: the claim that is the email")
	fs.DurationVar(&c.AuthOIDCTimeout, "auth-oidc-timeout", c.AuthOIDCTimeout, "--auth oidc: discovery and key fetch timeout; a timeout refuses the login")
	return lists.parse
}

// Load parses args for the named command. stderr receives --help output.
func Load(name string, args []string, stderr io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var file string
	fs.StringVar(&file, "config", os.Getenv("MAGPIE_CONFIG"), "JSON config file (keys are flag names)")
	_ = c.bind(fs) // only for --help and to learn which flags were set
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: magpie %s [flags]\n\nEvery flag --name can also be set as MAGPIE_NAME in the environment or \"name\" in the --config JSON file.\nPrecedence: flag > environment > file > default.\n\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	// Re-apply in precedence order onto the defaults.
	c2 := Default()
	fs2 := flag.NewFlagSet(name, flag.ContinueOnError)
	fs2.SetOutput(io.Discard)
	parsed := c2.bind(fs2)
	if file != "" {
		if err := applyFile(fs2, file); err != nil {
			return c2, err
		}
	}
	var envErr error
	fs2.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	if envErr != nil {
		return c2, envErr
	}
	for k, v := range set {
		if k == "config" {
			continue
		}
		_ = fs2.Set(k, v) // already parsed once
	}
	if err := parsed(); err != nil {
		return c2, err
	}
	return c2, c2.Validate()
}

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return "MAGPIE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func applyFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil {
			return fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		if err := fs.Set(k, fmt.Sprint(m[k])); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	for _, a := range []struct{ name, v string }{{"http", c.HTTP}, {"tcp", c.TCP}, {"mqtt", c.MQTT}, {"nats-listen", c.NATSListen}, {"nats-cluster", c.NATSCluster}, {"metrics", c.Metrics}} {
		if a.v != "" {
			_, _, err := net.SplitHostPort(a.v)
			check(err == nil, "--%s %q: want host:port", a.name, a.v)
		}
	}
	switch c.DevicePolicy {
	case "unlimited", "single", "per-platform":
	default:
		check(false, "--device-policy %q: want unlimited, single or per-platform", c.DevicePolicy)
	}
	check(c.ScheduleHorizon >= 0, "--schedule-horizon must not be negative")
	switch c.OnlineVisibility {
	case "contacts", "all":
	default:
		check(false, "--online-visibility %q: want contacts or all", c.OnlineVisibility)
	}
	switch c.Strategy {
	case "round-robin", "random", "hash", "least-conns":
	default:
		check(false, "--route-strategy %q: want round-robin, random, hash or least-conns", c.Strategy)
	}
	check(c.TokenTTL >= time.Minute, "--token-ttl must be at least 1m")
	check(c.RegistryTTL >= time.Second, "--registry-ttl must be at least 1s")
	check(c.AuthTimeout > 0, "--auth-timeout must be positive")
	check(c.Heartbeat > 0 && c.HeartbeatTO > c.Heartbeat, "--heartbeat-timeout must be longer than --heartbeat")
	check(c.SendQueue >= 16, "--send-queue must be at least 16")
	check(c.AcceptRate >= 0, "--accept-rate must not be negative")
	check(c.ConnRate > 0, "--conn-rate must be positive")
	check(c.MaxBatch >= 1 && c.MaxBatch <= 10000, "--max-batch must be 1-10000")
	check(c.CommitWindow >= 0 && c.CommitWindow <= 100*time.Millisecond, "--commit-window must be 0-100ms")
	check(c.CommitWorkers >= 0 && c.CommitWorkers <= 64, "--commit-workers must be 0-64")
	check(c.Replicas >= 1 && c.Replicas <= 5, "--replicas must be 1-5")
	check(c.TokenSecret == "" || len(c.TokenSecret) >= 16, "--token-secret must be at least 16 characters")
	check(c.MetricsToken == "" || len(c.MetricsToken) >= 16, "--metrics-token must be at least 16 characters")
	check((c.NATSCert == "") == (c.NATSKey == ""), "--nats-cert and --nats-key go together")
	check((c.TLSCert == "") == (c.TLSKey == ""), "--tls-cert and --tls-key go together")
	check(c.TLSWatch == 0 || c.TLSWatch >= 100*time.Millisecond, "--tls-watch must be 0 (off) or at least 100ms")
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		check(false, "--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	check(c.LogFormat == "text" || c.LogFormat == "json", "--log-format must be text or json")
	check(c.RequestTimeout >= 100*time.Millisecond, "--request-timeout must be at least 100ms")
	check(c.MaxConnsPerUser >= 0, "--max-conns-per-user must not be negative")
	check(c.MaxGroupSize >= 2 && c.MaxGroupSize <= 100000, "--max-group-size must be 2-100000")
	check(c.RecallWindow >= 0, "--recall-window must not be negative")
	check(c.FilesMaxSize >= 1024, "--files-max-size must be at least 1024")
	check(c.BeforeSendTimeout > 0, "--before-send-timeout must be positive")
	check(c.LoginIPRate >= 0 && c.LoginGlobalRate >= 0 && c.RegisterIPRate >= 0, "--login-ip-rate, --login-global-rate and --register-ip-rate must not be negative")
	check(c.HashConcurrency >= 0 && c.HashConcurrency <= 256, "--hash-concurrency must be 0-256")
	check(c.HashWait >= 10*time.Millisecond, "--hash-wait must be at least 10ms")
	check(c.UserSendRate >= 0 && c.PushRate >= 0, "--user-send-rate and --push-rate must not be negative")
	check(c.FilesQuota >= 0, "--files-quota must not be negative")
	check(c.DownloadMinRate >= 0 && c.DownloadGrace >= 0, "--download-min-rate and --download-grace must not be negative")
	check(c.MaxSessionsPerUser >= 0, "--max-sessions-per-user must not be negative")
	c.validateLogin(check)
	for id, secret := range c.AdminKeys {
		check(id != "" && !strings.ContainsAny(id, ":,") && len(secret) >= 16, "--admin-keys: each entry must be KEYID:SECRET with a secret of at least 16 characters")
	}
	for id, secret := range c.PushKeys {
		check(id != "" && !strings.ContainsAny(id, ":,") && len(secret) >= 16, "--push-keys: each entry must be KEYID:SECRET with a secret of at least 16 characters")
	}
	return errors.Join(errs...)
}

// validateLogin checks --auth and the settings of the sources it names.
func (c *Config) validateLogin(check func(ok bool, format string, a ...any)) {
	check(len(c.Auth) > 0, "--auth: name at least one login source (local, ldap, http, oidc)")
	seen := map[string]bool{}
	for _, a := range c.Auth {
		switch a {
		case "local", "ldap", "http", "oidc":
		default:
			check(false, "--auth: unknown source %q (want local, ldap, http or oidc)", a)
		}
		check(!seen[a], "--auth: %q is listed twice", a)
		seen[a] = true
	}
	check(!seen["http"] || c.AuthURL != "", "--auth http needs --auth-url")
	check(!seen["http"] || len(c.AuthSecret) >= 16, "--auth http needs --auth-secret of at least 16 characters")
	check(seen["http"] || c.AuthURL == "", "--auth-url is set but --auth does not list http")
	check(c.AuthHTTPTimeout > 0, "--auth-http-timeout must be positive")
	check(!seen["ldap"] || (c.AuthLDAPURL != "" && c.AuthLDAPBaseDN != ""), "--auth ldap needs --auth-ldap-url and --auth-ldap-base-dn")
	check(seen["ldap"] || c.AuthLDAPURL == "", "--auth-ldap-url is set but --auth does not list ldap")
	check(c.AuthLDAPTimeout > 0, "--auth-ldap-timeout must be positive")
	check(!seen["oidc"] || (c.AuthOIDCIssuer != "" && c.AuthOIDCAudience != ""), "--auth oidc needs --auth-oidc-issuer and --auth-oidc-audience")
	check(seen["oidc"] || c.AuthOIDCIssuer == "", "--auth-oidc-issuer is set but --auth does not list oidc")
	check(c.AuthOIDCTimeout > 0, "--auth-oidc-timeout must be positive")
}

// TLS reports whether the public listeners speak TLS.
func (c *Config) TLS() bool { return c.TLSCert != "" }

// Prefixes parses a comma-separated list of IPs and CIDRs (an IP is its
// own /32 or /128).
func Prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range splitList(s) {
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("%q: want an IP or a CIDR", v)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q: want an IP or a CIDR", v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// StoreDSN is the database to open.
func (c *Config) StoreDSN() string {
	if c.Store != "" {
		return c.Store
	}
	return filepath.Join(c.Data, "magpie.db")
}

// Print writes the effective configuration as JSON, with the token secret
// masked.
func (c Config) Print(w io.Writer) error {
	fs := flag.NewFlagSet("print", flag.ContinueOnError)
	_ = c.bind(fs)
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	for _, k := range []string{"token-secret", "push-keys", "webhook-secret", "metrics-token", "auth-secret", "auth-ldap-bind-password", "admin-keys"} {
		if m[k] != "" {
			m[k] = "(set)"
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}
