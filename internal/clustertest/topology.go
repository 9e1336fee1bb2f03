// Package clustertest brings up a Magpie cluster as separate processes on
// one machine (a 3-node NATS cluster with JetStream from the real
// nats-server binary, gateways, logic nodes, a private PostgreSQL server),
// runs a checked message load over it while injecting faults, and reports
// what the checker found. e2e/cluster_test.go and scripts/cluster-test.sh
// drive it.
//
// A Topology is used from one goroutine (the test's); the load runs its
// own goroutines and is safe to observe concurrently.
package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/magpie-im/magpie/internal/crashpoint"
)

// Config sizes the topology.
type Config struct {
	Magpie string // path of the magpie binary
	// MagpieHooks is the magpie binary built with -tags faulthooks, for
	// the crash-point faults (package crashpoint); empty: none.
	MagpieHooks string
	NATS        string // path of the nats-server binary
	Dir         string // working directory: data, logs
	// Postgres is an admin URL of a server to make the run's database on
	// (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
	// Empty: the run starts its own server (initdb into a temporary
	// directory), the only one the restart fault will restart.
	Postgres string
	PGBin    string // directory of initdb and postgres; empty: the newest /usr/lib/postgresql/*/bin
	// PortBase: every port the run listens on (NATS client and cluster,
	// PostgreSQL, magpie HTTP and TCP, the fault links) comes from
	// PortBase … PortBase+PortRange-1, skipping ports in use. 0: free
	// ephemeral ports.
	PortBase int
	Gateways int // default 3
	Logic    int // default 2
	TTL      time.Duration
	Log      io.Writer // progress lines; nil: discard
	ExtraGW  []string  // extra flags for gateways
	MQTT     bool      // gateways also listen for MQTT (--mqtt; Node.MQTT)
	// Links puts the last gateway's NATS connections and the last logic
	// node's database connections behind Links a fault can cut.
	Links bool
}

// Proc is one child process, in its own process group so a kill reaches
// everything it started.
type Proc struct {
	Name string
	args []string
	log  string
	cred *syscall.Credential // run as this user (nil: as the test)
	env  []string            // added to the test's environment
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *Proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n---- start %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return nil
}

// Running reports whether the process is up.
func (p *Proc) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) {
	if p.Running() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// Wait waits for the process to exit, up to d; false if it did not.
func (p *Proc) Wait(d time.Duration) bool {
	if p.cmd == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Kill sends SIGKILL to the group and waits for the exit.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	p.Wait(10 * time.Second)
}

// Node is a magpie process.
type Node struct {
	*Proc
	HTTP    string // host:port
	TCP     string // gateways only
	MQTT    string // gateways with Config.MQTT only
	ID      string // gateways only
	Metrics string // host:port of /metrics and /debug/pprof
}

// Topology is the running cluster.
type Topology struct {
	cfg      Config
	DB       string // the run's database URL
	dbName   string
	NATSURLs []string
	NATS     []*Proc
	Gateways []*Node
	Logic    []*Node
	secret   string
	probes   int // probe logins made, to rotate users under the login rate limit
	ports    ports
	pg       *Proc  // the private PostgreSQL, if the run started one
	pgDir    string // its temporary directory
	// statements: the private server runs with pg_stat_statements (when
	// its installation has the extension), so the storm can count the
	// statements the run's database executes; see dbSampler.
	statements bool

	// With Config.Links: the path from the last gateway to every NATS
	// server, and from the last logic node to PostgreSQL.
	GatewayNATS []*Link
	LogicDB     *Link
}

// PartitionGatewayNATS cuts the last gateway off from every NATS server.
func (t *Topology) PartitionGatewayNATS() {
	for _, l := range t.GatewayNATS {
		l.Partition()
	}
}

// HealGatewayNATS ends PartitionGatewayNATS.
func (t *Topology) HealGatewayNATS() {
	for _, l := range t.GatewayNATS {
		l.Heal()
	}
}

func (c *Config) defaults() {
	if c.Gateways == 0 {
		c.Gateways = 3
	}
	if c.Logic == 0 {
		c.Logic = 2
	}
	if c.TTL == 0 {
		c.TTL = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

func (t *Topology) logf(format string, a ...any) {
	fmt.Fprintf(t.cfg.Log, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

func freeAddrs(n int) ([]string, error) {
	// Hold them all open at once so no two are the same.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// Start brings everything up and returns once a login routes to a gateway.
// On error, what was started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Topology, err error) {
	cfg.defaults()
	t := &Topology{cfg: cfg, secret: "cluster-test-secret-" + randHex(8), ports: ports{base: cfg.PortBase}}
	defer func() {
		if err != nil {
			t.Close() // t, not the nil result: what was started must stop
		}
	}()
	if cfg.Postgres == "" {
		addr, err := t.ports.addr()
		if err != nil {
			return nil, err
		}
		if err := t.startPostgres(ctx, addr); err != nil {
			return nil, err
		}
	}
	if err := t.createDB(ctx); err != nil {
		return nil, err
	}
	mqtt := 0
	if cfg.MQTT {
		mqtt = cfg.Gateways
	}
	addrs, err := t.ports.addrs(6 + 3*cfg.Gateways + 2*cfg.Logic + mqtt)
	if err != nil {
		return nil, err
	}
	next := func() string { a := addrs[0]; addrs = addrs[1:]; return a }
	var clusterAddrs, routes []string
	for i := range 3 {
		t.NATSURLs = append(t.NATSURLs, "nats://"+next())
		c := next()
		clusterAddrs = append(clusterAddrs, c)
		routes = append(routes, "nats://"+c)
		_ = i
	}
	for i := range 3 {
		host, port, _ := net.SplitHostPort(strings.TrimPrefix(t.NATSURLs[i], "nats://"))
		p := &Proc{Name: fmt.Sprintf("nats-%d", i), log: filepath.Join(cfg.Dir, fmt.Sprintf("nats-%d.log", i)), args: []string{
			cfg.NATS, "-a", host, "-p", port, "--server_name", fmt.Sprintf("nats-%d", i),
			"--cluster_name", "magpie-test", "--cluster", "nats://" + clusterAddrs[i], "--routes", strings.Join(routes, ","),
			"-js", "-sd", filepath.Join(cfg.Dir, fmt.Sprintf("nats-%d", i)),
			// Clients use only the URLs they are given, so a Link in
			// front of a server cannot be bypassed.
			"--no_advertise",
		}}
		if err := p.start(); err != nil {
			return nil, err
		}
		t.NATS = append(t.NATS, p)
	}
	t.logf("nats: %s", strings.Join(t.NATSURLs, ","))
	if cfg.Links {
		if err := t.startLinks(); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Logic {
		n := &Node{HTTP: next(), Metrics: next()}
		n.Proc = &Proc{Name: fmt.Sprintf("logic-%d", i), log: filepath.Join(cfg.Dir, n.nameLog("logic", i)), args: append([]string{
			cfg.Magpie, "logic", "--http", n.HTTP, "--metrics", n.Metrics, "--data", filepath.Join(cfg.Dir, fmt.Sprintf("logic-%d", i)),
		}, t.common(t.NATSURLs)...)}
		db := t.DB
		if t.LogicDB != nil && i == cfg.Logic-1 {
			db = t.linkedDB()
		}
		n.args = append(n.args, "--store", db, "--token-secret", t.secret)
		if err := n.start(); err != nil {
			return nil, err
		}
		t.Logic = append(t.Logic, n)
	}
	for i := range cfg.Gateways {
		n := &Node{HTTP: next(), TCP: next(), ID: fmt.Sprintf("gw-%d", i), Metrics: next()}
		n.Proc = &Proc{Name: n.ID, log: filepath.Join(cfg.Dir, n.nameLog("gateway", i)), args: append([]string{
			cfg.Magpie, "gateway", "--http", n.HTTP, "--tcp", n.TCP, "--gateway-id", n.ID, "--metrics", n.Metrics,
			"--data", filepath.Join(cfg.Dir, n.ID), "--drain-timeout", "10s",
		}, t.common(t.gatewayNATS(i))...)}
		if cfg.MQTT {
			n.MQTT = next()
			n.args = append(n.args, "--mqtt", n.MQTT)
		}
		n.args = append(n.args, cfg.ExtraGW...)
		if err := n.start(); err != nil {
			return nil, err
		}
		t.Gateways = append(t.Gateways, n)
	}
	for _, n := range append(append([]*Node{}, t.Logic...), t.Gateways...) {
		if err := waitHealthy(ctx, n, 60*time.Second); err != nil {
			return nil, err
		}
	}
	if err := t.WaitGateways(ctx, cfg.Gateways, 60*time.Second); err != nil {
		return nil, err
	}
	t.logf("up: %d gateways, %d logic nodes, database %s", cfg.Gateways, cfg.Logic, t.dbName)
	return t, nil
}

func (n *Node) nameLog(role string, i int) string { return fmt.Sprintf("%s-%d.log", role, i) }

// startLinks puts Links in front of every NATS server for the last
// gateway, and in front of PostgreSQL for the last logic node.
func (t *Topology) startLinks() error {
	for _, u := range t.NATSURLs {
		a, err := t.ports.addr()
		if err != nil {
			return err
		}
		l, err := NewLink(a, strings.TrimPrefix(u, "nats://"))
		if err != nil {
			return err
		}
		t.GatewayNATS = append(t.GatewayNATS, l)
	}
	u, err := url.Parse(t.DB)
	if err != nil {
		return err
	}
	a, err := t.ports.addr()
	if err != nil {
		return err
	}
	t.LogicDB, err = NewLink(a, u.Host)
	return err
}

// gatewayNATS is the NATS URLs gateway i connects to.
func (t *Topology) gatewayNATS(i int) []string {
	if len(t.GatewayNATS) == 0 || i != t.cfg.Gateways-1 {
		return t.NATSURLs
	}
	var urls []string
	for _, l := range t.GatewayNATS {
		urls = append(urls, "nats://"+l.Addr())
	}
	return urls
}

// linkedDB is the database URL through LogicDB.
func (t *Topology) linkedDB() string {
	u, _ := url.Parse(t.DB) // parsed once already by startLinks
	u.Host = t.LogicDB.Addr()
	return u.String()
}

// common flags of every magpie process.
func (t *Topology) common(natsURLs []string) []string {
	return []string{"--nats", strings.Join(natsURLs, ","), "--replicas", "3",
		"--registry-ttl", t.cfg.TTL.String(), "--log-format", "json", "--log-level", "info"}
}

func waitHealthy(ctx context.Context, n *Node, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if !n.Running() {
			return fmt.Errorf("%s exited during start; see %s", n.Name, n.log)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTP+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not healthy within %v; see %s", n.Name, d, n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitGateways waits until every running logic node routes logins to at
// least want distinct gateways (the API lists no gateways, so it logs in
// want times: round-robin visits every live gateway in that many).
func (t *Topology) WaitGateways(ctx context.Context, want int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, l := range t.Logic {
			if !l.Running() {
				continue
			}
			n, err := t.liveGateways(ctx, "http://"+l.HTTP, want)
			if err != nil || n < want {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("fewer than %d gateways routable within %v", want, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Postgres ---------------------------------------------------------------

func (t *Topology) createDB(ctx context.Context) error {
	t.dbName = "magpie_cluster_" + randHex(6)
	conn, err := pgx.Connect(ctx, t.cfg.Postgres)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+t.dbName); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(t.cfg.Postgres)
	if err != nil {
		return err
	}
	u.Path = "/" + t.dbName
	t.DB = u.String()
	return nil
}

func (t *Topology) dropDB() {
	if t.dbName == "" || t.pg != nil { // a private server goes as a whole
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		conn, err := pgx.Connect(ctx, t.cfg.Postgres)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+t.dbName+" WITH (FORCE)")
			conn.Close(ctx)
			if err == nil {
				return
			}
		}
		time.Sleep(500 * time.Millisecond) // PostgreSQL may still be restarting
	}
	t.logf("could not drop database %s", t.dbName)
}

// Faults -----------------------------------------------------------------

// Restart starts a stopped node again and waits until it is healthy.
func (t *Topology) Restart(ctx context.Context, n *Node) error {
	if n.Running() {
		return fmt.Errorf("%s is running", n.Name)
	}
	if err := n.start(); err != nil {
		return err
	}
	return waitHealthy(ctx, n, 60*time.Second)
}

// RestartNATS starts a killed NATS server again.
func (t *Topology) RestartNATS(i int) error {
	if t.NATS[i].Running() {
		return fmt.Errorf("nats-%d is running", i)
	}
	if err := t.NATS[i].start(); err != nil {
		return err
	}
	host := strings.TrimPrefix(t.NATSURLs[i], "nats://")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-%d not listening within 30s", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogicURLs are the HTTP base URLs of the logic nodes.
func (t *Topology) LogicURLs() []string {
	var out []string
	for _, l := range t.Logic {
		out = append(out, "http://"+l.HTTP)
	}
	return out
}

// Close kills every process and drops the database. Safe to call twice.
func (t *Topology) Close() {
	var wg sync.WaitGroup
	for _, p := range t.procs() {
		wg.Add(1)
		go func() { defer wg.Done(); p.Kill() }()
	}
	wg.Wait()
	for _, l := range t.GatewayNATS {
		l.Close()
	}
	if t.LogicDB != nil {
		t.LogicDB.Close()
	}
	t.dropDB()
	t.dbName = ""
	t.stopPostgres()
}

func (t *Topology) procs() []*Proc {
	var ps []*Proc
	for _, n := range t.Gateways {
		ps = append(ps, n.Proc)
	}
	for _, n := range t.Logic {
		ps = append(ps, n.Proc)
	}
	return append(ps, t.NATS...)
}

// Logs returns the tail of every process log, for a failure message.
func (t *Topology) Logs(tail int) string {
	var b strings.Builder
	ps := t.procs()
	if t.pg != nil {
		ps = append(ps, t.pg)
	}
	for _, p := range ps {
		data, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > tail {
			lines = lines[len(lines)-tail:]
		}
		fmt.Fprintf(&b, "==== %s (%s)\n%s\n", p.Name, p.log, strings.Join(lines, "\n"))
	}
	return b.String()
}

const probeUsers = 8

// liveGateways counts the distinct gateways of n logins at base.
func (t *Topology) liveGateways(ctx context.Context, base string, n int) (int, error) {
	seen := map[string]bool{}
	for range n {
		user := fmt.Sprintf("probe%d", t.probes%probeUsers)
		t.probes++
		var resp struct {
			Gateway struct {
				ID string `json:"id"`
			} `json:"gateway"`
		}
		err := postJSON(ctx, base+"/v1/login", map[string]string{"username": user, "password": "probe-password", "device": "probe"}, &resp)
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusUnauthorized {
			// Not registered yet (first call, or a fresh database).
			_ = postJSON(ctx, base+"/v1/users", map[string]string{"username": user, "password": "probe-password"}, nil)
			err = postJSON(ctx, base+"/v1/login", map[string]string{"username": user, "password": "probe-password", "device": "probe"}, &resp)
		}
		if err != nil {
			return len(seen), err
		}
		seen[resp.Gateway.ID] = true
	}
	return len(seen), nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func postJSON(ctx context.Context, u string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return &httpError{status: resp.StatusCode, body: string(data)}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CrashAt restarts logic node n with the faulthooks binary armed to kill
// itself the after-th time it reaches crash point point (package
// crashpoint), waits for that crash (up to d), and starts it again as
// before. False if it did not crash in time (it is then killed).
func (t *Topology) CrashAt(ctx context.Context, n *Node, point string, after int, d time.Duration) (bool, error) {
	if t.cfg.MagpieHooks == "" {
		return false, errors.New("crash points need Config.MagpieHooks, a magpie built with -tags faulthooks")
	}
	n.Kill()
	bin := n.args[0]
	n.args[0], n.env = t.cfg.MagpieHooks, []string{fmt.Sprintf("%s=%s:%d", crashpoint.Env, point, after)}
	err := n.start()
	n.args[0], n.env = bin, nil
	if err != nil {
		return false, err
	}
	if err := waitHealthy(ctx, n, 60*time.Second); err != nil && n.Running() {
		return false, err
	}
	crashed := n.Wait(d)
	if !crashed {
		n.Kill()
	}
	return crashed, t.Restart(ctx, n)
}
