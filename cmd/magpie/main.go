// Command magpie is the Magpie instant-messaging server, its terminal
// client and its load generator, in one binary.
//
//	magpie serve     everything in one process (embedded NATS + SQLite)
//	magpie gateway   the connection role, for a cluster
//	magpie logic     the API and message pipeline role, for a cluster
//	magpie chat      the terminal client
//	magpie bench     the load generator
//	magpie config    print the effective configuration and check it
//	magpie check     run the delivery checker over a recorded history
//	magpie app       create, list and show the keys of apps (tenants)
//	magpie import    import users, friendships and groups through the admin API
//	magpie version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/magpie-im/magpie/internal/chat"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/server"
)

const usage = `Magpie: an instant-messaging server in one binary.

Usage: magpie <command> [flags]

Commands:
  serve     run a complete server: gateway + logic + embedded NATS + SQLite
  gateway   run the gateway role (client connections) for a cluster
  logic     run the logic role (HTTP API, message pipeline) for a cluster
  chat      the terminal client
  bench     the load generator
  config    print the effective configuration of a role and check it
  check     run the delivery checker over a recorded history file
  app       manage the apps (tenants) of a deployment: create, list, keys
  import    import users, friendships and groups (a migration) through the admin API
  version   print the version

Run 'magpie <command> --help' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "magpie:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runNode(ctx, cmd, rest, server.Roles{Gateway: true, Logic: true}, stdout, stderr)
	case "gateway":
		return runNode(ctx, cmd, rest, server.Roles{Gateway: true}, stdout, stderr)
	case "logic":
		return runNode(ctx, cmd, rest, server.Roles{Logic: true}, stdout, stderr)
	case "chat":
		return chat.Run(ctx, rest, stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "config":
		return runConfig(rest, stdout, stderr)
	case "check":
		return runCheck(rest, stdin, stdout, stderr)
	case "app":
		return runApp(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "magpie", version())
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runNode starts a node and runs it until ctx ends (SIGINT/SIGTERM), then
// drains clients and shuts down within --drain-timeout.
func runNode(ctx context.Context, name string, args []string, roles server.Roles, stdout, stderr io.Writer) error {
	cfg, err := config.Load(name, args, stderr)
	if err != nil {
		return err
	}
	if !roles.Logic && cfg.Store != "" {
		return errors.New("--store is for the logic role")
	}
	if name == "logic" && cfg.TokenSecret == "" {
		return errors.New("magpie logic needs --token-secret (MAGPIE_TOKEN_SECRET), the same on every logic node")
	}
	log := newLogger(cfg, stderr)
	n, err := server.Start(ctx, cfg, roles, log)
	if err != nil {
		return err
	}
	web, ws, tcp := "http", "ws", n.TCPAddr()
	if n.TLS() {
		web, ws = "https", "wss"
		if tcp != "" {
			tcp = "tls://" + tcp
		}
	}
	if roles.Logic {
		fmt.Fprintf(stdout, "Magpie is running. HTTP API and web client: %s://%s/  TCP gateway: %s\n", web, n.HTTPAddr(), tcp)
		fmt.Fprintf(stdout, "Chat from a terminal: go run ./cmd/magpie chat --server %s://%s --user alice --register\n", web, n.HTTPAddr())
	} else {
		fmt.Fprintf(stdout, "Magpie gateway running. WebSocket: %s://%s/v1/ws  TCP: %s\n", ws, n.HTTPAddr(), tcp)
	}
	if mqtt := n.MQTTAddr(); mqtt != "" {
		if n.TLS() {
			mqtt = "tls://" + mqtt
		}
		fmt.Fprintf(stdout, "MQTT for devices: %s (docs/mqtt.md)\n", mqtt)
	}
	waitForStop(ctx, n, log)
	log.Info("shutting down", "drain_timeout", cfg.DrainTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout+5*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}

// waitForStop returns when ctx ends. With TLS, SIGHUP reloads the
// certificate meanwhile (without TLS it keeps its default action, ending
// the process, as before).
func waitForStop(ctx context.Context, n *server.Node, log *slog.Logger) {
	if !n.TLS() {
		<-ctx.Done()
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading the TLS certificate")
			_ = n.ReloadTLS() // a failure is logged and keeps the old certificate
		}
	}
}

func runConfig(args []string, stdout, stderr io.Writer) error {
	role := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "gateway" || args[0] == "logic") {
		role, args = args[0], args[1:]
	}
	cfg, err := config.Load(role, args, stderr)
	if err != nil {
		return err
	}
	return cfg.Print(stdout)
}
