package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/proto/wire"
)

// Connect, receive messages in order, and send one. This example needs a
// running server, so it is compiled but not run.
func Example() {
	ctx := context.Background()
	c := client.New(client.Options{
		Server:   "http://127.0.0.1:8080",
		Username: "alice",
		Password: "secret",
		OnMessage: func(m client.Message) {
			fmt.Printf("[%s] %s: %s\n", m.SentAt.Format("15:04:05"), m.Sender, m.Text)
		},
		OnState: func(s client.State, err error) {
			log.Printf("connection %s (%v)", s, err)
		},
	})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	ack, err := c.SendText(ctx, "bob", "hi bob")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as #", ack.Seq)
}

// Create an account, treating "already exists" as success.
func ExampleRegister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := client.Register(ctx, "http://127.0.0.1:8080", "alice", "secret")
	var e *client.Error
	if errors.As(err, &e) && e.Code == wire.CodeConflict {
		err = nil
	}
	if err != nil {
		log.Fatal(err)
	}
}

// Make a send idempotent across process restarts by choosing the client
// message id yourself: a repeat returns the original seq with Duplicate set.
func ExampleClient_Send() {
	ctx := context.Background()
	c := client.New(client.Options{Server: "http://127.0.0.1:8080", Username: "alice", Password: "secret"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
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

// Read the last 20 messages of a conversation and mark them read.
func ExampleClient_History() {
	ctx := context.Background()
	c := client.New(client.Options{Server: "http://127.0.0.1:8080", Username: "alice", Password: "secret"})
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
}

// Create a group, talk in it, and see who read the message. Group
// messages, membership events and recalls arrive through OnMessage in seq
// order like private ones. Compiled, not run: it needs a server.
func ExampleClient_CreateGroup() {
	ctx := context.Background()
	c := client.New(client.Options{
		Server: "http://127.0.0.1:8080", Username: "alice", Password: "secret",
		OnMessage: func(m client.Message) {
			switch {
			case m.Kind == client.KindEvent:
				fmt.Printf("* %s %s %v\n", m.Event.Actor, m.Event.Type, m.Event.Usernames)
			case m.Kind == client.KindRecall:
				fmt.Printf("* %s recalled #%d\n", m.Sender, m.RefSeq)
			case m.IsGroup():
				fmt.Printf("%s @ %s: %s\n", m.Sender, m.ConversationID, m.Text)
			}
		},
	})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"bob", "carol"}})
	if err != nil {
		log.Fatal(err)
	}
	ack, err := c.SendGroup(ctx, g.ID, "standup in 5")
	if err != nil {
		log.Fatal(err)
	}
	if err := c.SetRole(ctx, g.ID, "bob", client.RoleAdmin); err != nil {
		log.Fatal(err)
	}
	reads, err := c.Reads(ctx, g.ID, ack.Seq)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("#%d read by %d of %d: %v\n", ack.Seq, reads.ReadCount, reads.MemberCount, reads.Readers)
}

// Upload a file, send it to a user, and download a file someone sent.
// Compiled, not run: it needs a server.
func ExampleClient_UploadFile() {
	ctx := context.Background()
	var c *client.Client
	c = client.New(client.Options{
		Server: "http://127.0.0.1:8080", Username: "alice", Password: "secret",
		OnMessage: func(m client.Message) {
			if m.Kind != client.KindFile || m.File == nil {
				return
			}
			f, err := os.Create(filepath.Join(os.TempDir(), filepath.Base(m.File.Name)))
			if err != nil {
				return
			}
			defer f.Close()
			// Callbacks may call the Client; a long download delays later callbacks.
			if _, err := c.DownloadFile(ctx, m.File.ID, f); err != nil {
				log.Print(err)
			}
		},
	})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	ref, err := c.UploadFile(ctx, "holiday.png")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Send(ctx, client.SendRequest{ToUser: "bob", FileID: ref.ID, Text: "the beach"}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %s (%d bytes, %s)\n", ref.Name, ref.Size, ref.ContentType)
}
