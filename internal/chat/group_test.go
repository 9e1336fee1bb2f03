package chat

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/testserver"
)

// runScript runs the chat as user with the script on stdin and returns
// stdout and stderr. wantErr is the error Run must return ("" for none).
func runScript(t *testing.T, srv *testserver.Server, user, wantErr string, lines ...string) (string, string) {
	t.Helper()
	return runScriptFrom(t, srv, user, wantErr, strings.NewReader(script(user, lines...)))
}

// script is stdin for user: the password line, then lines.
func script(user string, lines ...string) string {
	return strings.Join(append([]string{"pw-" + user}, lines...), "\n") + "\n"
}

// runScriptFrom is runScript with stdin given.
func runScriptFrom(t *testing.T, srv *testserver.Server, user, wantErr string, stdin io.Reader) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errw syncBuffer
	err := Run(ctx, []string{"--server", srv.URL, "--user", user, "--device", "cli-" + user},
		stdin, &out, &errw)
	if got := fmt.Sprint(err); (err != nil || wantErr != "") && got != wantErr {
		t.Fatalf("Run as %s: got error %v, want %q\nstderr:\n%s", user, err, wantErr, errw.String())
	}
	return out.String(), errw.String()
}

func wantLines(t *testing.T, who, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		re := regexp.MustCompile(`(?m)^` + w + `$`)
		if !re.MatchString(got) {
			t.Errorf("%s: no line matching %q in:\n%s", who, w, got)
		}
	}
}

// clock is a message line's time; ts is a stored message's seq and time.
const (
	clock = `\[\d\d:\d\d:\d\d\] `
	ts    = `#\d+ ` + clock
)

func TestGroupChatPipeMode(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, []testserver.Options{func(c *config.Config) { c.Admins = []string{"alice"} }}, "alice", "bob", "carol", "dave")
	// bob listens with the SDK and reads everything, so alice sees receipts.
	var bob *client.Client
	readTwo := make(chan struct{}) // closed once bob's read of #2 is stored
	bob = client.New(client.Options{Server: srv.URL, Username: "bob", Password: "pw-bob",
		OnMessage: func(m client.Message) {
			if m.IsGroup() && m.Sender == "alice" && m.Kind == client.KindText {
				if err := bob.MarkRead(context.Background(), m.ConversationID, m.Seq); err == nil && m.Seq == 2 {
					close(readTwo)
				}
			}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	path := filepath.Join(t.TempDir(), "name.png")
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 12*1024-16)...) // the server checks the type
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}

	// alice's script waits for bob's read before asking who read #2.
	stdin, feed := io.Pipe()
	go func() {
		feed.Write([]byte(script("alice",
			":create team bob carol", // #1 created
			"hello team",             // #2
			":file "+path,            // #3
			"oops",                   // #4
			":recall",                // #5 recalls #4
			":invite dave",           // #6
			":kick dave",             // #7
			":groups",
			":g TEAM",
		)))
		select {
		case <-readTwo:
		case <-time.After(15 * time.Second): // the :reads line below then fails
		}
		feed.Write([]byte(strings.Join([]string{
			":reads 2",
			":leave",
			":all hi everyone",
			":add bob",
			":block dave",
			":friends",
			":history 3",
			":recall 99",
		}, "\n") + "\n"))
		feed.Close()
	}()
	out, errs := runScriptFrom(t, srv, "alice", "chat: 2 of the commands failed", stdin) // :leave and :recall 99
	wantLines(t, "alice", out,
		`created team \(g_1\) with bob, carol`,
		`to team \(g_1\)`,
		`✓ sent #2 @ team`,
		`uploaded name.png 12 KB id=f_\w+`,
		`✓ sent #3 @ team`,
		`✓ sent #4 @ team`,
		`✓ recalled #4 @ team`,
		`invited dave to team`,
		`removed dave from team`,
		`group: team \(g_1\), 3 members, owner alice`,
		`read by 1 of 2 #2 @ team: bob`, // the members other than the sender
		`✓ broadcast sent`,
		`friend request sent to bob`,
		`blocked dave`,
		`friend request to: bob`,
		`blocked: dave`,
		`history with team:`,
		ts+`\* alice added dave to team`,
		ts+`\* alice removed dave from team`,
		ts+`\* alice created team with bob, carol`,
		`✓✓ read by 1 #2 @ team`,
	)
	wantLines(t, "alice's errors", errs,
		`error: :leave: .+ \(conflict\)`, // the server's words may change; the code may not
		`error: :recall #99: .+ \(not_found\)`,
	)

	// carol's fresh client syncs the group (all but the "created" event:
	// the server puts every founding member's cursors on it).
	out, _ = runScript(t, srv, "carol", "", ":g g_1", ":read")
	wantLines(t, "carol", out,
		`#2 `+clock+`alice @ team: hello team`,
		`#3 `+clock+`alice @ team: \[file name.png 12 KB id=f_\w+\]`,
		`#4 `+clock+`alice @ team: \(recalled\)`,
		`#5 `+clock+`\* alice recalled #4`,
		`#6 `+clock+`\* alice added dave to team`,
		`#7 `+clock+`\* alice removed dave from team`,
		`to team \(g_1\)`,
		`marked read #7 \(team\)`,
	)
	if strings.Contains(out, "oops") {
		t.Errorf("carol sees the recalled text:\n%s", out)
	}
}

// TestGroupAdminPipe: roles, mutes, rename, transfer and dissolve from the
// terminal, each checked against the server.
func TestGroupAdminPipe(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob", "carol")
	out, errs := runScript(t, srv, "alice", "chat: 2 of the commands failed",
		":create team bob carol", ":role bob admin", ":mute carol 5", ":members", ":unmute carol",
		":mute-all 10", ":unmute-all", ":rename crew", ":role carol owner", ":owner bob", ":members", ":dissolve")
	wantLines(t, "alice", out,
		`bob is an admin of team`,
		`muted carol in team until \d{4}-\d\d-\d\d \d\d:\d\d`,
		`members of team \(g_1\): 3`,
		`member: alice \(owner\)`,
		`member: bob \(admin\)`,
		`member: carol, muted until \d{4}-\d\d-\d\d \d\d:\d\d`,
		`unmuted carol in team`,
		`muted everyone but the owner and admins in team until .*`,
		`unmuted everyone in team`,
		`renamed team to crew`,
		`bob is the owner of crew`,
		`member: alice \(admin\)`,
		`member: bob \(owner\)`,
	)
	wantLines(t, "alice's errors", errs, `error: usage: :role NAME admin\|member .*`, `error: :dissolve: .* \(forbidden\)`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bob := client.New(client.Options{Server: srv.URL, Username: "bob", Password: "pw-bob", Device: "check"})
	defer bob.Close()
	g, err := bob.Group(ctx, "g_1")
	if err != nil || g.Name != "crew" || g.Owner != "bob" || !g.MutedUntil.IsZero() {
		t.Fatalf("the group: %+v, %v", g, err)
	}
	out, _ = runScript(t, srv, "bob", "", ":g crew", ":dissolve", ":info")
	wantLines(t, "bob", out, `dissolved crew`, `info: current conversation none .*`)
	if g, err := bob.Group(ctx, "g_1"); err == nil && !g.Dissolved {
		t.Errorf("the group is not dissolved: %+v", g)
	}
	out, errs = runScript(t, srv, "carol", "chat: 1 of the commands failed", ":to alice", ":members")
	wantLines(t, "carol's errors", errs, `error: :members: the current conversation is not a group \(use :g GROUP\)`)
	_ = out
}
