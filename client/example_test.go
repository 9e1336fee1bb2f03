package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/server"
	"github.com/magpie-im/magpie/proto/wire"
)

// Log in and connect, send a message and wait for its ack (alice), and
// receive it (bob). Callbacks run on an SDK goroutine; this OnMessage hands
// each message to the program through a channel.
func Example() {
	srv := startServer() // a real server in this process; a program uses its server's URL
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register(ctx, srv.URL, "alice", "bob")

	inbox := make(chan client.Message, 16)
	bob := client.New(client.Options{
		Server:    srv.URL,
		Username:  "bob",
		Password:  "secret-bob",
		OnMessage: func(m client.Message) { inbox <- m },
	})
	defer bob.Close()
	// Connect logs in, dials the gateway, authenticates and syncs; then
	// the Client stays connected (reconnecting as needed) until Close.
	if err := bob.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	alice := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "secret-alice"})
	defer alice.Close()
	if err := alice.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	// SendText returns after the server's ack: the message is stored.
	ack, err := alice.SendText(ctx, "bob", "hi bob")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("alice: stored as #%d of %s\n", ack.Seq, ack.ConversationID)

	m := <-inbox
	fmt.Printf("bob: #%d from %s: %s\n", m.Seq, m.Sender, m.Text)
	// Output:
	// alice: stored as #1 of p_1_2
	// bob: #1 from alice: hi bob
}

// Create an account, treating "already exists" as success.
func ExampleRegister() {
	srv := startServer() // a real server in this process; a program uses its server's URL
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 { // the second time, the account exists
		u, err := client.Register(ctx, srv.URL, "alice", "secret")
		var e *client.Error
		if errors.As(err, &e) && e.Code == wire.CodeConflict {
			fmt.Println("alice exists already")
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("registered", u.Username, "as user", u.ID)
	}
	// Output:
	// registered alice as user 1
	// alice exists already
}

// Make a send idempotent across process restarts by choosing the client
// message id yourself: a repeat returns the original seq with Duplicate set.
func ExampleClient_Send() {
	srv := startServer() // a real server in this process; a program uses its server's URL
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register(ctx, srv.URL, "alice", "bob")

	c := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "secret-alice"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for range 2 { // as after a crash between the send and saving its ack
		ack, err := c.Send(ctx, client.SendRequest{ToUser: "bob", Text: "invoice #42 paid", ClientMsgID: "invoice-42"})
		var e *client.Error
		switch {
		case errors.As(err, &e):
			log.Fatalf("refused: %s (%v)", e.Code, e.Message)
		case err != nil:
			log.Fatal(err) // the context ended before an ack
		}
		fmt.Println(ack.ConversationID, ack.Seq, ack.Duplicate)
	}
	// Output:
	// p_1_2 1 false
	// p_1_2 1 true
}

// Read the last 20 messages of a conversation and mark them read.
func ExampleClient_History() {
	srv := startServer() // a real server in this process; a program uses its server's URL
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register(ctx, srv.URL, "alice", "bob")
	send(ctx, srv.URL, "bob", "alice", "lunch?", "12:30 at the usual place")

	c := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "secret-alice"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	convs, err := c.Conversations(ctx)
	if err != nil || len(convs) == 0 {
		return
	}
	cv := convs[0]
	msgs, err := c.History(ctx, cv.ID, client.HistoryQuery{BeforeSeq: cv.LastSeq + 1, Limit: 20})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("#%d %s: %s\n", m.Seq, m.Sender, m.Text)
	}
	if len(msgs) > 0 {
		c.MarkRead(ctx, cv.ID, msgs[len(msgs)-1].Seq)
	}
	// Output:
	// #1 bob: lunch?
	// #2 bob: 12:30 at the usual place
}

// Create a group, talk in it, and see who read the message. Group
// messages, membership events and recalls arrive through OnMessage in seq
// order like private ones.
func ExampleClient_CreateGroup() {
	srv := startServer() // a real server in this process; a program uses its server's URL
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register(ctx, srv.URL, "alice", "bob", "carol")

	// Bob shows what happens in his groups and reads the messages.
	read := make(chan struct{})
	var bob *client.Client
	bob = client.New(client.Options{
		Server: srv.URL, Username: "bob", Password: "secret-bob",
		OnMessage: func(m client.Message) {
			switch {
			case m.Kind == client.KindEvent:
				fmt.Printf("* %s %s %v\n", m.Event.Actor, m.Event.Type, m.Event.Usernames)
			case m.Kind == client.KindRecall:
				fmt.Printf("* %s recalled #%d\n", m.Sender, m.RefSeq)
			case m.IsGroup():
				fmt.Printf("%s @ %s: %s\n", m.Sender, m.ConversationID, m.Text)
				if err := bob.MarkRead(ctx, m.ConversationID, m.Seq); err != nil {
					log.Fatal(err)
				}
				close(read)
			}
		},
	})
	defer bob.Close()
	if err := bob.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	c := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "secret-alice"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"bob", "carol"}})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.SetRole(ctx, g.ID, "bob", client.RoleAdmin); err != nil {
		log.Fatal(err)
	}
	ack, err := c.SendGroup(ctx, g.ID, "standup in 5")
	if err != nil {
		log.Fatal(err)
	}
	<-read // bob has seen and read it (this also keeps the output in order)
	reads, err := c.Reads(ctx, g.ID, ack.Seq)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("#%d read by %d of %d: %v\n", ack.Seq, reads.ReadCount, reads.MemberCount, reads.Readers)
	// Output:
	// * alice created [bob carol]
	// * alice role [bob]
	// alice @ g_1: standup in 5
	// #3 read by 1 of 2: [bob]
}

// Upload a file, send it to a user, and download a file someone sent.
func ExampleClient_UploadFile() {
	srv := startServer() // a real server in this process; a program uses its server's URL
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register(ctx, srv.URL, "alice", "bob")
	photo := tempFile("holiday.png", tinyPNG) // the file alice sends
	defer os.RemoveAll(filepath.Dir(photo))
	downloads, err := os.MkdirTemp("", "downloads-") // where bob saves files
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(downloads)

	// Bob saves the files he receives.
	saved := make(chan string, 1)
	var bob *client.Client
	bob = client.New(client.Options{
		Server: srv.URL, Username: "bob", Password: "secret-bob",
		OnMessage: func(m client.Message) {
			if m.Kind != client.KindFile || m.File == nil {
				return
			}
			f, err := os.Create(filepath.Join(downloads, filepath.Base(m.File.Name)))
			if err != nil {
				log.Print(err)
				return
			}
			defer f.Close()
			// Callbacks may call the Client; a long download delays later callbacks.
			ref, err := bob.DownloadFile(ctx, m.File.ID, f)
			if err != nil {
				log.Print(err)
				return
			}
			saved <- fmt.Sprintf("%s from %s (%d bytes, %q)", filepath.Base(f.Name()), m.Sender, ref.Size, m.Text)
		},
	})
	defer bob.Close()
	if err := bob.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	c := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "secret-alice"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	ref, err := c.UploadFile(ctx, photo)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Send(ctx, client.SendRequest{ToUser: "bob", FileID: ref.ID, Text: "the beach"}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %s (%d bytes, %s)\n", ref.Name, ref.Size, ref.ContentType)
	fmt.Println("bob saved", <-saved)
	// Output:
	// sent holiday.png (33 bytes, image/png)
	// bob saved holiday.png from alice (33 bytes, "the beach")
}

// exampleServer is a whole Magpie node (gateway and logic, embedded NATS,
// SQLite in a temporary directory) on loopback ports, so that the examples
// run as tests against the real server. Each example starts its own, so
// user ids and seqs start from 1.
type exampleServer struct {
	URL  string
	node *server.Node
	dir  string
}

func startServer() *exampleServer {
	dir, err := os.MkdirTemp("", "magpie-example-")
	if err != nil {
		log.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data = dir
	cfg.HTTP = "127.0.0.1:0"
	cfg.TCP = "127.0.0.1:0"
	cfg.LogLevel = "error"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := server.Start(ctx, cfg, server.Roles{Gateway: true, Logic: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		os.RemoveAll(dir)
		log.Fatal(err)
	}
	return &exampleServer{URL: "http://" + n.HTTPAddr(), node: n, dir: dir}
}

func (s *exampleServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.node.Shutdown(ctx); err != nil {
		log.Print(err)
	}
	os.RemoveAll(s.dir)
}

// register creates each user with the password "secret-" + name.
func register(ctx context.Context, url string, names ...string) {
	for _, name := range names {
		if _, err := client.Register(ctx, url, name, "secret-"+name); err != nil {
			log.Fatal(err)
		}
	}
}

// send sends texts from one user to another with a short-lived Client.
func send(ctx context.Context, url, from, to string, texts ...string) {
	c := client.New(client.Options{Server: url, Username: from, Password: "secret-" + from})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for _, text := range texts {
		if _, err := c.SendText(ctx, to, text); err != nil {
			log.Fatal(err)
		}
	}
}

// tinyPNG is the start of a PNG file: enough for the server to sniff its type.
var tinyPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")

// tempFile writes data to a file of that name in a new temporary directory
// and returns its path.
func tempFile(name string, data []byte) string {
	dir, err := os.MkdirTemp("", "magpie-example-")
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		log.Fatal(err)
	}
	return path
}
