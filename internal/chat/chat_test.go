package chat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/testserver"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line    string
		want    command
		wantErr bool
	}{
		{"", command{kind: cmdNone}, false},
		{"   ", command{kind: cmdNone}, false},
		{"bob;;hello there", command{kind: cmdSend, to: "bob", text: "hello there"}, false},
		{"bob;;a;;b", command{kind: cmdSend, to: "bob", text: "a;;b"}, false},
		{"bob;;", command{}, true},
		{"hi there;;friend", command{kind: cmdText, text: "hi there;;friend"}, false},
		{"@bob hello", command{kind: cmdSend, to: "bob", text: "hello"}, false},
		{"@bob   spaced  text ", command{kind: cmdSend, to: "bob", text: "spaced  text"}, false},
		{"@bob", command{}, true},
		{"@b!b hi", command{}, true},
		{":to bob", command{kind: cmdTo, to: "bob"}, false},
		{":to", command{}, true},
		{":to bob carol", command{}, true},
		{":olu", command{kind: cmdOnline}, false},
		{":history", command{kind: cmdHistory, n: 20}, false},
		{":history 5", command{kind: cmdHistory, n: 5}, false},
		{":history 0", command{}, true},
		{":history x", command{}, true},
		{":read", command{kind: cmdRead}, false},
		{":help", command{kind: cmdHelp}, false},
		{":q", command{kind: cmdQuit}, false},
		{":quit", command{kind: cmdQuit}, false},
		{":q!", command{kind: cmdQuit}, false},
		{":q! now", command{}, true},
		{":q budget", command{kind: cmdSearch, text: "budget"}, false},
		{":q  开会  budget ", command{kind: cmdSearch, text: "开会  budget"}, false},
		{":nope", command{}, true},
		{"just text", command{kind: cmdText, text: "just text"}, false},
		{"hello\r\n", command{kind: cmdText, text: "hello"}, false},

		// Groups.
		{":groups", command{kind: cmdGroups}, false},
		{":groups all", command{}, true},
		{":g team", command{kind: cmdGroup, to: "team"}, false},
		{":g g_12", command{kind: cmdGroup, to: "g_12"}, false},
		{":g", command{}, true},
		{":g two words", command{}, true},
		{":create team bob carol", command{kind: cmdCreate, to: "team", users: []string{"bob", "carol"}}, false},
		{":create solo", command{kind: cmdCreate, to: "solo", users: []string{}}, false},
		{":create", command{}, true},
		{":create team b!b", command{}, true},
		{":invite bob", command{kind: cmdInvite, users: []string{"bob"}}, false},
		{":invite bob carol dave", command{kind: cmdInvite, users: []string{"bob", "carol", "dave"}}, false},
		{":invite", command{}, true},
		{":invite x", command{}, true},
		{":kick bob", command{kind: cmdKick, to: "bob"}, false},
		{":kick", command{}, true},
		{":kick bob carol", command{}, true},
		{":leave", command{kind: cmdLeave}, false},
		{":leave now", command{}, true},
		{":reads", command{kind: cmdReads}, false},
		{":reads 12", command{kind: cmdReads, seq: 12}, false},
		{":reads #12", command{kind: cmdReads, seq: 12}, false},
		{":reads 0", command{}, true},
		{":reads 1 2", command{}, true},

		// Friends.
		{":friends", command{kind: cmdFriends}, false},
		{":friends bob", command{}, true},
		{":add bob", command{kind: cmdAdd, to: "bob"}, false},
		{":add", command{}, true},
		{":add b!b", command{}, true},
		{":accept bob", command{kind: cmdAccept, to: "bob"}, false},
		{":accept", command{}, true},
		{":decline bob", command{kind: cmdDecline, to: "bob"}, false},
		{":block bob", command{kind: cmdBlock, to: "bob"}, false},
		{":block bob carol", command{}, true},
		{":unblock bob", command{kind: cmdUnblock, to: "bob"}, false},
		{":remark bob Bobby  B.", command{kind: cmdRemark, to: "bob", text: "Bobby  B."}, false},
		{":remark bob", command{kind: cmdRemark, to: "bob"}, false},
		{":remark", command{}, true},
		{":remark b!b x", command{}, true},
		{":fgroup bob work", command{kind: cmdFriendGroup, to: "bob", text: "work"}, false},
		{":fgroup", command{}, true},
		{":fgroups", command{kind: cmdFriendGroups}, false},
		{":fgroups x", command{}, true},
		{":policy anyone", command{kind: cmdPolicy, text: "anyone"}, false},
		{":policy maybe", command{}, true},
		{":policy", command{}, true},
		{":join g_4", command{kind: cmdJoin, to: "g_4"}, false},
		{":join", command{}, true},
		{":requests", command{kind: cmdRequests}, false},
		{":approve bob", command{kind: cmdApprove, to: "bob"}, false},
		{":reject bob", command{kind: cmdReject, to: "bob"}, false},
		{":approve", command{}, true},
		{":notice  meet at 9 ", command{kind: cmdNotice, text: "meet at 9"}, false},
		{":notice", command{}, true},

		// Messages.
		{":recall", command{kind: cmdRecall}, false},
		{":recall 7", command{kind: cmdRecall, seq: 7}, false},
		{":recall seven", command{}, true},
		{":recall -1", command{}, true},
		{":edit better words", command{kind: cmdEdit, text: "better words"}, false},
		{":edit #3  fixed  it", command{kind: cmdEdit, seq: 3, text: "fixed  it"}, false},
		{":edit 42 apples", command{kind: cmdEdit, text: "42 apples"}, false},
		{":edit #3", command{}, true},
		{":edit #x y", command{}, true},
		{":edit", command{}, true},
		{":file /tmp/a.png", command{kind: cmdFile, text: "/tmp/a.png"}, false},
		{":file  /tmp/my holiday.png ", command{kind: cmdFile, text: "/tmp/my holiday.png"}, false},
		{":file", command{}, true},
		{":all hello everyone", command{kind: cmdAll, text: "hello everyone"}, false},
		{":all   spaced  out ", command{kind: cmdAll, text: "spaced  out"}, false},
		{":all", command{}, true},
		{":sessions", command{kind: cmdSessions}, false},
		{":end-session abc123", command{kind: cmdEndSession, to: "abc123"}, false},
		{":end-session", command{}, true},
		{":logout-all", command{kind: cmdLogoutAll}, false},
		{":delete", command{kind: cmdDelete}, false},
		{":clear", command{kind: cmdClear}, false},
		{":clear all", command{}, true},
		{":pu bo", command{kind: cmdPrefixUsers, to: "bo"}, false},
		{":delay 5 see  you", command{kind: cmdDelay, n: 5, text: "see  you"}, false},
		{":delay 0 x", command{}, true},
		{":delay x hello", command{}, true},
		{":delay 5", command{}, true},
		{":scheduled", command{kind: cmdScheduled}, false},
		{":cancel 7", command{kind: cmdCancel, seq: 7}, false},
		{":cancel", command{}, true},
		{":cancel -1", command{}, true},
		{":pu", command{}, true},
		{":pu b o", command{}, true},
		{":pu b!", command{}, true},

		// Tools, replies and group administration.
		{":info", command{kind: cmdInfo}, false},
		{":info x", command{}, true},
		{":emoji", command{kind: cmdEmoji}, false},
		{":emoji heart", command{kind: cmdEmoji, text: "heart"}, false},
		{":emoji a b", command{}, true},
		{"@bob nice :thumbsup: at 10:30:00 :nope:", command{kind: cmdSend, to: "bob", text: "nice 👍 at 10:30:00 :nope:"}, false},
		{"ok :smile:", command{kind: cmdText, text: "ok 😄"}, false},
		{":smile:", command{}, true}, // a line starting with ':' is a command
		{":file /tmp/:smile:.png", command{kind: cmdFile, text: "/tmp/:smile:.png"}, false},
		{":get f_1", command{kind: cmdGet, to: "f_1"}, false},
		{":get f_1 /tmp/my file.png", command{kind: cmdGet, to: "f_1", text: "/tmp/my file.png"}, false},
		{":get", command{}, true},
		{":reply 3 yes  :ok:", command{kind: cmdReply, seq: 3, text: "yes  👌"}, false},
		{":reply #3 yes", command{kind: cmdReply, seq: 3, text: "yes"}, false},
		{":reply 3", command{}, true},
		{":reply x yes", command{}, true},
		{":members", command{kind: cmdMembers}, false},
		{":role bob admin", command{kind: cmdRole, to: "bob", text: "admin"}, false},
		{":role bob member", command{kind: cmdRole, to: "bob", text: "member"}, false},
		{":role bob owner", command{}, true},
		{":role bob", command{}, true},
		{":owner bob", command{kind: cmdOwner, to: "bob"}, false},
		{":owner", command{}, true},
		{":mute bob", command{kind: cmdMute, to: "bob", n: 60}, false},
		{":mute bob 5", command{kind: cmdMute, to: "bob", n: 5}, false},
		{":mute bob 0", command{}, true},
		{":mute bob soon", command{}, true},
		{":mute", command{}, true},
		{":unmute bob", command{kind: cmdUnmute, to: "bob"}, false},
		{":mute-all", command{kind: cmdMuteAll, n: 60}, false},
		{":mute-all 10", command{kind: cmdMuteAll, n: 10}, false},
		{":mute-all x", command{}, true},
		{":unmute-all", command{kind: cmdUnmuteAll}, false},
		{":rename  the crew ", command{kind: cmdRename, text: "the crew"}, false},
		{":rename", command{}, true},
		{":dissolve", command{kind: cmdDissolve}, false},
		{":dissolve now", command{}, true},
	}
	for _, tt := range tests {
		got, err := parse(tt.line)
		if (err != nil) != tt.wantErr {
			t.Errorf("parse(%q): got error %v, want error %v", tt.line, err, tt.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parse(%q): got %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	for _, word := range []string{":groups", ":g ", ":create", ":invite", ":kick", ":leave", ":friends", ":add",
		":accept", ":block", ":recall", ":file", ":all", ":reads", ":edit", ":to", ":olu", ":history", ":read ", ":q WORDS", ":q, :q!", ":delete", ":clear", ":pu PREFIX", ":delay SECONDS", ":scheduled", ":cancel ID", ":remark NAME", ":fgroup NAME", ":fgroups", ":policy WHO", ":join GROUP-ID", ":requests", ":approve NAME", ":notice text",
		":info", ":emoji", ":get FILE_ID", ":reply SEQ", ":members", ":role NAME", ":owner NAME", ":mute NAME", ":unmute NAME",
		":rename NAME", ":dissolve"} {
		if !strings.Contains(helpText, "\n  "+word) {
			t.Errorf("help lacks %q", word)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the callback and test goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestPipeMode(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "bob")

	// bob listens with the SDK.
	var mu sync.Mutex
	var got []string
	bob := client.New(client.Options{Server: srv.URL, Username: "bob", Password: "pw-bob",
		OnMessage: func(m client.Message) { mu.Lock(); got = append(got, m.Sender+":"+m.Text); mu.Unlock() }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	in := strings.Join([]string{
		"pw-alice", // the password, as stdin is not a terminal
		"bob;;one",
		"@bob two",
		"no current conversation yet",
		":to bob",
		"three",
		":bogus",
	}, "\n") + "\n"
	var out, errw syncBuffer
	err := Run(ctx, []string{"--server", srv.URL, "--user", "alice", "--register", "--device", "cli"},
		strings.NewReader(in), &out, &errw)
	if err == nil || err.Error() != "chat: 2 of the commands failed" { // piped, so the two errors make it fail
		t.Fatalf("Run: got %v, want 2 of the commands failed\nstderr:\n%s", err, errw.String())
	}
	for _, want := range []string{"✓ sent #1 → bob", "✓ sent #2 → bob", "✓ sent #3 → bob", "to bob"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range []string{"error: no current conversation", "error: unknown command :bogus", "* connected as alice (device cli)"} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errw.String())
		}
	}
	testserver.WaitFor(t, "bob's messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	if strings.Join(got, ",") != "alice:one,alice:two,alice:three" {
		t.Errorf("bob got %v", got)
	}
	mu.Unlock()

	// A fresh run as bob syncs alice's messages from the start.
	var bout, berr syncBuffer
	t.Setenv("MAGPIE_PASSWORD", "pw-bob")
	if err := Run(ctx, []string{"--server", srv.URL, "--user", "bob", "--transport", "ws"},
		strings.NewReader(":to alice\n:history 2\n:read\n"), &bout, &berr); err != nil {
		t.Fatalf("Run as bob: %v\n%s", err, berr.String())
	}
	line := regexp.MustCompile(`(?m)^#3 \[\d\d:\d\d:\d\d\] alice: three$`)
	if n := len(line.FindAllString(bout.String(), -1)); n != 2 { // once synced, once in history
		t.Errorf("got %d lines of alice's third message, want 2:\n%s", n, bout.String())
	}
	if !strings.Contains(bout.String(), "history with alice:") || !strings.Contains(bout.String(), "marked read #3 (alice)") {
		t.Errorf("bob's output:\n%s", bout.String())
	}
}

func TestReceiptsPrintOnce(t *testing.T) {
	var out syncBuffer
	u := newUI(&out, &out)
	u.c = client.New(client.Options{})
	bob := target{user: "bob"}
	u.sent(bob, client.Ack{ConversationID: "c", Seq: 1})
	u.sent(bob, client.Ack{ConversationID: "c", Seq: 2})
	u.receipt(client.Receipt{ConversationID: "c", Kind: client.Delivered, Seq: 1, UserID: 2, Username: "bob"})
	u.receipt(client.Receipt{ConversationID: "c", Kind: client.Delivered, Seq: 1, UserID: 2, Username: "bob"})
	u.receipt(client.Receipt{ConversationID: "c", Kind: client.Read, Seq: 2, UserID: 2, Username: "bob"})
	u.receipt(client.Receipt{ConversationID: "c", Kind: client.Read, Seq: 2, UserID: 2, Username: "bob"})
	u.sent(bob, client.Ack{ConversationID: "c", Seq: 3})
	want := "✓ sent #1 → bob\n✓ sent #2 → bob\n✓✓ delivered #1 → bob\n✓✓ read #1 → bob\n" +
		"✓✓ delivered #2 → bob\n✓✓ read #2 → bob\n✓ sent #3 → bob\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestPipeBackPressure pipes far more lines than the command queue holds:
// reading must wait for the worker, so every line is sent, in order.
func TestPipeBackPressure(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "pw-alice")
	srv := testserver.Start(t, nil, "alice", "carol")
	defer func(q int) { maxQueued = q }(maxQueued)
	maxQueued = 256
	const n = 600 // more than twice what the queue holds
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "carol;;%d\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errw syncBuffer
	err := Run(ctx, []string{"--server", srv.URL, "--user", "alice"}, strings.NewReader(in.String()), &out, &errw)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.Contains(errw.String(), "error:") {
		t.Errorf("stderr has errors:\n%.2000s", errw.String())
	}
	if got := strings.Count(out.String(), "✓ sent #"); got != n {
		t.Errorf("got %d acks, want %d", got, n)
	}
	for i, text := range storedTexts(t, srv, "carol") {
		if text != strconv.Itoa(i) {
			t.Fatalf("message %d is %q, want %q", i, text, strconv.Itoa(i))
		}
	}
}

// storedTexts returns the texts of user's first conversation, as stored.
func storedTexts(t *testing.T, srv *testserver.Server, user string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client.New(client.Options{Server: srv.URL, Username: user, Password: "pw-" + user, Device: "reader"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	convs, err := c.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("%s's conversations: %+v, %v", user, convs, err)
	}
	var out []string
	for {
		page, err := c.History(ctx, convs[0].ID, client.HistoryQuery{AfterSeq: uint64(len(out)), Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, m := range page {
			out = append(out, m.Text)
		}
	}
}

// TestEditPipe edits my last message and one by seq; the peer's history
// shows the new texts.
func TestEditPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	out, errs := runScript(t, srv, "alice", "chat: 1 of the commands failed",
		":to bob",
		"helo",              // #1
		"wrold",             // #2
		":edit world",       // #3 edits #2
		":edit #1 hello",    // #4 edits #1
		":edit #9 not mine", // fails
	)
	wantLines(t, "alice", out, `✓ edited #2 → bob`, `✓ edited #1 → bob`)
	wantLines(t, "alice's errors", errs, `error: :edit #9: .*`)
	out, _ = runScript(t, srv, "bob", "", ":to alice", ":history 10")
	wantLines(t, "bob", out, ts+`alice: hello \(edited\)`, ts+`alice: world \(edited\)`)
}

func TestSearchPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	runScript(t, srv, "alice", "", ":to bob", "the budget is due", "明天开会讨论预算", "lunch?")
	out, _ := runScript(t, srv, "bob", "", ":q budget", ":q 开会", ":q nothing-like-this")
	wantLines(t, "bob", out, `search "budget":`, `#1 `+clock+`alice: the «budget» is due`,
		`#2 `+clock+`alice: 明天«开会»讨论预算`, `search "nothing-like-this": no messages`)
	out, _ = runScript(t, srv, "alice", "", ":q lunch")
	wantLines(t, "alice", out, `#3 `+clock+`me → bob: «lunch»\?`)
}

func TestCAFileIsChecked(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{filepath.Join(dir, "missing.pem"), notPEM} {
		var out, errw syncBuffer
		err := Run(context.Background(), []string{"--server", "https://127.0.0.1:1", "--user", "alice", "--ca", ca},
			strings.NewReader("pw\n"), &out, &errw)
		if err == nil || !strings.Contains(err.Error(), "--ca") {
			t.Errorf("--ca %s: got %v, want an error about --ca", ca, err)
		}
	}
}

func TestDeleteAndClearPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob", "carol")
	runScript(t, srv, "alice", "", ":to bob", "one", "two")
	out, errs := runScript(t, srv, "alice", "chat: 1 of the commands failed", ":to bob", ":delete", ":history", ":clear", ":to carol", ":clear")
	wantLines(t, "alice", out, `hid bob until a new message`, `history with bob: \(none\)`,
		`cleared bob up to #2 \(hidden until a new message\)`)
	wantLines(t, "alice", errs, `error: :clear: no conversation with carol yet`)
	runScript(t, srv, "bob", "", ":to alice", "three")
	out, _ = runScript(t, srv, "alice", "", ":to bob", ":history")
	wantLines(t, "alice", out, `history with bob:`, ts+`bob: three`)
	if strings.Contains(out, "one") || strings.Contains(out, "two") {
		t.Errorf("alice still sees the cleared messages:\n%s", out)
	}
	out, _ = runScript(t, srv, "bob", "", ":to alice", ":history")
	wantLines(t, "bob", out, ts+`alice: one`, ts+`alice: two`, ts+`me → alice: three`)
}

func TestOnlineByPrefixPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob", "bobby", "boris")
	// bob (a contact of alice's: they chat) and bobby (a stranger) are online.
	for _, name := range []string{"bob", "bobby"} {
		c := client.New(client.Options{Server: srv.URL, Username: name, Password: "pw-" + name, Device: "sdk"})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		t.Cleanup(func() { c.Close() })
	}
	runScript(t, srv, "alice", "", "@bob hi")
	out, _ := runScript(t, srv, "alice", "", ":pu BO", ":pu zz")
	wantLines(t, "alice", out, `online: bob \(sdk\)`, `online zz…: \(none\)`)
	if strings.Contains(out, "bobby") || strings.Contains(out, "boris") {
		t.Errorf("alice sees users who are no contacts of hers, or offline:\n%s", out)
	}
}

func TestDelayPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	out, _ := runScript(t, srv, "alice", "", ":to bob", ":delay 1 see you soon", ":delay 3600 much later", ":scheduled", ":cancel 2", ":scheduled")
	wantLines(t, "alice", out, `scheduled 1 for \d\d:\d\d:\d\d to bob \(:cancel 1\)`, `scheduled 2: .* to bob: much later`,
		`cancelled scheduled message 2`, `scheduled 1: .* to bob: see you soon`)
	// alice has quit; the server sends it when it is due.
	bob := client.New(client.Options{Server: srv.URL, Username: "bob", Password: "pw-bob"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ms, err := bob.History(context.Background(), "p_1_2", client.HistoryQuery{})
		if err == nil && len(ms) == 1 && ms[0].Text == "see you soon" && ms[0].Sender == "alice" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's history: %+v, %v; want the delayed message", ms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFriendsPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob", "carol")
	runScript(t, srv, "bob", "", ":policy anyone")
	runScript(t, srv, "carol", "", ":policy nobody")
	out, errs := runScript(t, srv, "alice", "chat: 2 of the commands failed", ":add bob", ":add carol", ":remark bob Bobby B.", ":fgroup bob work", ":friends", ":fgroups", ":remark carol C")
	wantLines(t, "alice", out, `friends with bob`, `bob is "Bobby B." to me`,
		`bob is in friend group work`, `friend: bob "Bobby B." \[work\]`, `friend group work: bob`)
	wantLines(t, "alice", errs, `error: :add carol: this user does not accept friend requests \(forbidden\)`, `error: :remark carol: carol is not your friend \(not_found\)`)
	out, _ = runScript(t, srv, "carol", "", ":friends")
	wantLines(t, "carol", out, `friends: \(none\)`, `friend requests: nobody may add me`)
}

func TestGroupJoinRequestPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob", "carol")
	owner := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "pw-alice"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := owner.CreateGroup(ctx, client.NewGroup{Name: "club", JoinPolicy: client.JoinApproval})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := runScript(t, srv, "bob", "", ":join "+g.ID)
	wantLines(t, "bob", out, `asked to join `+g.ID+`; an owner or admin will answer`)
	out, errs := runScript(t, srv, "alice", "chat: 1 of the commands failed", ":g club", ":requests", ":approve bob", ":requests", ":reject carol", ":notice meet at 9")
	wantLines(t, "alice", out, `join request: bob`, `bob may join club`, ts+`\* alice approved bob in club`, `join requests: \(none\)`, `notice of club: meet at 9`)
	wantLines(t, "alice", errs, `error: :reject: no such join request \(not_found\)`)
	if got, err := owner.Group(ctx, g.ID); err != nil || got.MemberCount != 2 || got.Notice != "meet at 9" {
		t.Errorf("the group = %+v, %v; want bob in and the notice set", got, err)
	}
}

// TestToRepliesAndSeqs: :to refuses a name nobody has at once and takes
// the server's spelling; every message shows its seq, and :reply answers
// one by it.
func TestToRepliesAndSeqs(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	out, errs := runScript(t, srv, "alice", "chat: 2 of the commands failed",
		":to nobody", "this goes nowhere", ":to BOB", "lunch?", ":reply 1 yes :thumbsup:", ":history")
	wantLines(t, "alice's errors", errs, `error: :to nobody: no such user: nobody \(not_found\)`,
		`error: no current conversation: .*`)
	wantLines(t, "alice", out, `to bob`, `✓ sent #1 → bob`, `✓ sent #2 → bob`,
		`#1 `+clock+`me → bob: lunch\?`, `#2 `+clock+`me → bob: \(reply to #1\) yes 👍`)
	out, _ = runScript(t, srv, "bob", "", ":to alice", ":reply 2 :tada:")
	wantLines(t, "bob", out, `#1 `+clock+`alice: lunch\?`, `#2 `+clock+`alice: \(reply to #1\) yes 👍`, `✓ sent #3 → alice`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := client.New(client.Options{Server: srv.URL, Username: "alice", Password: "pw-alice", Device: "check"})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ms, err := c.History(ctx, "p_1_2", client.HistoryQuery{})
	if err != nil || len(ms) != 3 || ms[1].RefSeq != 1 || ms[2].RefSeq != 2 || ms[2].Text != "🎉" {
		t.Fatalf("the stored messages: %+v, %v; want #2 answering #1 and #3 answering #2", ms, err)
	}
}

// TestGetPipe downloads a file message's file by its id.
func TestGetPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	dir := t.TempDir()
	src := filepath.Join(dir, "plan.txt")
	if err := os.WriteFile(src, []byte("step one\nstep two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := runScript(t, srv, "alice", "", ":to bob", ":file "+src)
	id := regexp.MustCompile(`id=(f_\w+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no file id in:\n%s", out)
	}
	into := filepath.Join(dir, "bob")
	if err := os.Mkdir(into, 0o700); err != nil {
		t.Fatal(err)
	}
	named := filepath.Join(dir, "copy.txt")
	out, errs := runScript(t, srv, "bob", "chat: 3 of the commands failed",
		":get "+id[1]+" "+into, ":get "+id[1]+" "+into, ":get "+id[1]+" "+named, ":get f_nope "+into, ":get "+id[1]+" "+filepath.Join(dir, "no", "such", "dir"))
	wantLines(t, "bob", out, `saved plan.txt 18 B to `+regexp.QuoteMeta(filepath.Join(into, "plan.txt")),
		`saved plan.txt 18 B to `+regexp.QuoteMeta(named))
	wantLines(t, "bob's errors", errs, `error: :get `+id[1]+`: `+regexp.QuoteMeta(filepath.Join(into, "plan.txt"))+` exists \(give another PATH\)`,
		`error: :get f_nope: .* \(not_found\)`, `error: :get `+id[1]+`: .*no such file or directory`)
	for _, p := range []string{filepath.Join(into, "plan.txt"), named} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "step one\nstep two\n" {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(into, ".magpie-get-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestInfoAndEmoji(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	out, _ := runScript(t, srv, "alice", "", ":info", ":to bob", ":info", ":emoji heart", ":emoji zzz")
	wantLines(t, "alice", out,
		`info: user alice \(id 1\), device cli-alice`,
		`info: server `+regexp.QuoteMeta(srv.URL)+`, transport tcp, gateway \S+ at \S+:\d+`,
		`info: connection ready since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, 0 reconnects`,
		`info: current conversation none \(use :to NAME or :g GROUP\)`,
		`info: current conversation → bob`,
		`emoji: 😍 :heart_eyes:  ❤️ :heart:  💔 :broken_heart:`,
		`emoji zzz: \(none\)`)
}
