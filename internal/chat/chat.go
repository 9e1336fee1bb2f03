// Package chat is Magpie's terminal client: `magpie chat --user NAME`.
//
// It reads one command per line from stdin, interactively or from a pipe,
// and prints one event per line. Commands run one at a time in input order
// (a :recall after a message recalls that message). The formats below are
// stable; scripts and end-to-end tests rely on them.
//
// At start the client syncs every conversation but prints only messages
// not yet read (on any device of the user); read history is counted in one
// stderr line, "* N earlier messages already read (:history N shows them)".
//
// Input: see :help (helpText), which lists every command. Text sent
// (NAME;;text, @NAME text, plain lines, :all, :delay, :edit, :reply) has
// its :shortcodes: turned into emoji (:emoji lists them).
//
// Output on stdout (HH:MM:SS is the message's send time, local clock; TEAM
// is a group's name). A stored message starts with its seq, "#12 ", the
// number :recall, :edit, :reads and :reply take; broadcasts and
// notifications have none:
//
//	#12 [HH:MM:SS] alice: text          a private message from alice
//	#13 [HH:MM:SS] alice: (reply to #12) text   a reply (:reply)
//	#N [HH:MM:SS] me → bob: text           a message I sent to bob from another device (or an earlier session)
//	#N [HH:MM:SS] alice @ TEAM: text       a group message
//	#N [HH:MM:SS] me @ TEAM: text          a group message I sent from another device
//	#N [HH:MM:SS] alice: [file a.png 12 KB id=f_1] caption    a file message (private or group form)
//	[HH:MM:SS] (broadcast) alice: text  a broadcast (not stored)
//	[HH:MM:SS] (notification) alice: text   a server push ("(notification) text" without a sender)
//	#N [HH:MM:SS] * alice recalled #12     a recall of message 12 of that conversation
//	#N [HH:MM:SS] * alice edited #12: text an edit
//	#N [HH:MM:SS] * bob joined TEAM        a group event; also "alice created TEAM with bob, carol",
//	                                    "alice added bob to TEAM", "bob left TEAM", "alice removed bob from TEAM",
//	                                    "alice made bob admin in TEAM", "alice made bob the owner of TEAM",
//	                                    "alice muted bob in TEAM until 2026-05-01 17:00", "alice unmuted bob in TEAM",
//	                                    "alice muted everyone in TEAM", "alice updated TEAM (join_policy=open, name=crew)",
//	                                    "alice dissolved TEAM"; other events "alice TYPE users in TEAM (detail)"
//	✓ sent #12 → bob                    the server stored my message as seq 12 of my conversation with bob
//	✓ sent #12 @ TEAM                   … of the group
//	✓✓ delivered #12 → bob              bob's device received it (printed once)
//	✓✓ read #12 → bob                   bob read it (printed once, after delivered)
//	✓✓ read by 2 #12 @ TEAM             a second member read my group message (for my last 50 messages)
//	✓ recalled #12 → bob                answering :recall (or "@ TEAM")
//	✓ broadcast sent                    answering :all
//	uploaded a.png 12 KB id=f_1         answering :file, before its "✓ sent" line
//	read by 2 of 3 #12 @ TEAM: bob, carol   answering :reads ("none" when nobody has)
//	online: alice (laptop, phone)       one line per user, answering :olu
//	history with bob: (none)            or the messages in the message format, answering :history
//	marked read #12 (bob)               answering :read
//	to bob                              answering :to bob
//	to TEAM (g_3)                       answering :g, and after :create
//	created TEAM (g_3) with bob, carol  answering :create
//	group: TEAM (g_3), 3 members, owner alice   one line per group, answering :groups ("groups: (none)")
//	invited bob, carol to TEAM          answering :invite
//	removed bob from TEAM               answering :kick
//	left TEAM                           answering :leave (there is no current conversation afterwards)
//	friend: bob                         answering :friends, one line per user; also "friend request from: carol",
//	                                    "friend request to: dave", "blocked: eve"; "friends: (none)" if all are empty
//	friend request sent to bob          answering :add (or "friends with bob" if bob had asked already)
//	friends with bob                    answering :accept
//	declined bob, blocked bob, unblocked bob
//	session: ID DEVICE (PLATFORM), this one   one line per session, answering :sessions; ", online" for
//	                                    another connected one, else ", last seen 2026-05-01 17:00"
//	ended session ID                    answering :end-session
//	logged out everywhere               answering :logout-all (then the client exits)
//	search "WORDS":                     answering :q WORDS, then the hits as messages, the words «marked»
//	saved a.png 12 KB to ./a.png        answering :get
//	info: user alice (id 1), device d   answering :info, with "info: server …", "info: connection …",
//	                                    "info: current conversation …"
//	emoji: 😄 :smile:  😁 :grin:  …      answering :emoji
//	members of TEAM (g_3): 3            answering :members, then "member: alice (owner)", "member: bob (admin)",
//	                                    "member: carol, muted until 2026-05-01 17:00"
//	bob is an admin of TEAM             answering :role (or "a member"); "bob is the owner of TEAM" for :owner
//	muted bob in TEAM until 2026-05-01 17:00   answering :mute; "unmuted bob in TEAM", "muted everyone but
//	                                    the owner and admins in TEAM until …", "unmuted everyone in TEAM"
//	renamed TEAM to crew, dissolved TEAM   answering :rename and :dissolve
//	* alice wants to be your friend: :accept alice   a live notice (as it happens, while connected);
//	                                    also "* alice is your friend now", "* dave asks to join TEAM (g_3):
//	                                    :to g_3, then :approve dave" (owner and admins), "* scheduled
//	                                    message 4 to bob was not sent: REASON (CODE)"
//
// Sizes are in B, KB, MB (powers of 1024, one decimal below 10).
// A message shown by :history that was recalled reads "(recalled)", or
// "(removed by admin)" when a moderator removed it (its live recall reads
// "* an admin removed #12"); an edited one ends in " (edited)".
//
// On stderr: "* " lines for connection state ("* connected as alice
// (device d)", "* reconnecting: ...", "* disconnected: ..."), "error: "
// lines for failed commands (the client keeps going), and the help text.
// An error line is "error: COMMAND: what went wrong"; a server's refusal
// ends in its code, "error: :invite dave: no such user: dave (not_found)".
//
// No command is dropped: while many wait their turn, the client stops
// reading stdin, so a fast pipe is slowed to the pace of the server's acks.
// When stdin ends (or on :q) it waits up to 30s for its commands to finish
// and its sends to be acknowledged, then exits 0; non-zero if some still
// were not or, when stdin is not a terminal, if any command failed (each
// failure was reported on stderr). A failed login and a kick that forbids
// reconnecting (replaced, logged out) exit non-zero.
//
// --server https://… works with a certificate from the system roots, or
// from a private CA given with --ca FILE (MAGPIE_CA); the gateways it is
// sent to (wss://, tls://) are checked the same way.
//
// The password comes from MAGPIE_PASSWORD, else a prompt without echo when
// stdin is a terminal, else the first line of stdin.
package chat

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/tlsconf"
	"github.com/magpie-im/magpie/proto/wire"
)

// drainTimeout bounds the wait for unacknowledged sends at exit.
var drainTimeout = 30 * time.Second

// Run is the chat command. args exclude the command name.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("MAGPIE_SERVER", "http://127.0.0.1:8080"), "server HTTP base URL (env MAGPIE_SERVER)")
	user := fs.String("user", "", "user name (required)")
	device := fs.String("device", "", "device id (default: random)")
	transport := fs.String("transport", "tcp", "long connection transport: tcp or ws")
	register := fs.Bool("register", false, "create the account first if it does not exist")
	caFile := fs.String("ca", os.Getenv("MAGPIE_CA"), "PEM file of a CA to trust for an https:// server and its TLS gateways, besides the system roots (env MAGPIE_CA)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("chat: unexpected arguments %q", fs.Args())
	}
	if *user == "" {
		return errors.New("chat: --user is required")
	}
	if *transport != "tcp" && *transport != "ws" {
		return fmt.Errorf("chat: --transport must be tcp or ws, not %q", *transport)
	}
	var tlsConf *tls.Config
	if *caFile != "" {
		var err error
		if tlsConf, err = tlsconf.ClientConfig(*caFile); err != nil {
			return fmt.Errorf("chat: --ca: %w", err)
		}
	}
	in := bufio.NewReader(stdin)
	piped := !isTerminal(stdin)
	password, err := readPassword(in, stdin, stderr)
	if err != nil {
		return err
	}
	u := newUI(stdout, stderr)
	u.server, u.transport = *server, *transport
	c := client.New(client.Options{
		Server: *server, Username: *user, Password: password, Device: *device, Transport: *transport, TLS: tlsConf,
		OnMessage: u.message, OnReceipt: u.receipt, OnState: u.state, OnConversation: u.conversationState, OnNotice: u.notice,
	})
	u.c = c
	defer c.Close()
	if *register {
		_, err := c.Register(ctx)
		var e *client.Error
		if err != nil && !(errors.As(err, &e) && e.Code == wire.CodeConflict) {
			return fmt.Errorf("chat: register %s: %w", *user, err)
		}
	}
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("chat: login as %s: %w", *user, err)
	}

	lines := make(chan string)
	go func() { // ends with stdin; an interactive stdin may outlive Run
		defer close(lines)
		for {
			line, err := in.ReadString('\n')
			if line != "" {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	// What the connect's sync brought is shown before any command's output.
	flush(ctx, c)
	u.started()
	w := newWorker(ctx, u)
	for {
		select {
		case line, ok := <-lines:
			if !ok || u.run(line, w) {
				err := w.drain()
				flush(ctx, c)
				// A script must learn that it did not do all it asked.
				if n := u.failures(); err == nil && piped && n > 0 {
					err = fmt.Errorf("chat: %d of the commands failed", n)
				}
				return err
			}
		case <-u.fatal:
			w.stop()
			return fmt.Errorf("chat: %w", u.fatalErr)
		case <-ctx.Done():
			w.stop()
			return nil
		}
	}
}

// flush waits, bounded, until every message received so far was printed.
func flush(ctx context.Context, c *client.Client) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.Flush(ctx)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func readPassword(in *bufio.Reader, stdin io.Reader, stderr io.Writer) (string, error) {
	if p := os.Getenv("MAGPIE_PASSWORD"); p != "" {
		return p, nil
	}
	if isTerminal(stdin) {
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(stdin.(*os.File).Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("chat: reading password: %w", err)
		}
		return string(b), nil
	}
	line, err := in.ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("chat: no password: set MAGPIE_PASSWORD or give it as the first line of stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// worker runs commands one at a time, in input order, so a pipe of
// messages to one peer is stored in the order it was written and a command
// sees the effects of the lines before it. Commands run off the input loop
// so that it still sees a fatal disconnect or ctx's end while one waits for
// its ack, and a user can type ahead.
type worker struct {
	ctx    context.Context
	cancel context.CancelFunc
	u      *ui
	queue  chan func(context.Context)
	done   chan struct{}
}

// maxQueued bounds the commands read ahead of the one running (a var so
// that a test can pipe past it without thousands of real sends).
var maxQueued = 4096

func newWorker(ctx context.Context, u *ui) *worker {
	ctx, cancel := context.WithCancel(ctx)
	w := &worker{ctx: ctx, cancel: cancel, u: u, queue: make(chan func(context.Context), maxQueued), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *worker) loop() {
	defer close(w.done)
	for f := range w.queue {
		f(w.ctx)
	}
}

// add queues a command, waiting while the queue is full: the input loop
// then stops taking lines, which holds back a pipe instead of dropping
// commands. It gives up only when the client is stopping anyway, which the
// input loop sees next.
func (w *worker) add(f func(context.Context)) {
	select {
	case w.queue <- f:
	case <-w.ctx.Done():
	case <-w.u.fatal:
	}
}

// drain waits, bounded, for queued commands (sends, mostly) to finish.
func (w *worker) drain() error {
	close(w.queue)
	select {
	case <-w.done:
		w.cancel()
		return nil
	case <-time.After(drainTimeout):
		w.cancel()
		<-w.done
		return fmt.Errorf("chat: gave up waiting %v for messages to be acknowledged", drainTimeout)
	}
}

func (w *worker) stop() {
	w.cancel()
	close(w.queue)
	<-w.done
}
