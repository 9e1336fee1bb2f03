package chat

import (
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

func TestFormatMessage(t *testing.T) {
	at := time.Date(2026, 5, 1, 15, 4, 5, 0, time.Local)
	msg := func(m client.Message) client.Message {
		m.SentAt = at
		if m.Sender == "" && !m.Own {
			m.Sender = "alice"
		}
		return m
	}
	file := &client.FileRef{ID: "f_1", Name: "name.png", ContentType: "image/png", Size: 12 * 1024}
	tests := []struct {
		name  string
		m     client.Message
		group string
		want  string
	}{
		{"private", msg(client.Message{ConversationID: "p_1_2", Seq: 3, Peer: "alice", Text: "hi"}), "",
			"#3 [15:04:05] alice: hi"},
		{"private own", msg(client.Message{ConversationID: "p_1_2", Seq: 3, Sender: "me", Peer: "bob", Own: true, Text: "hi"}), "",
			"#3 [15:04:05] me → bob: hi"},
		{"group", msg(client.Message{ConversationID: "g_3", Seq: 4, Text: "hello team"}), "team",
			"#4 [15:04:05] alice @ team: hello team"},
		{"group own", msg(client.Message{ConversationID: "g_3", Seq: 4, Sender: "bob", Own: true, Text: "x"}), "team",
			"#4 [15:04:05] me @ team: x"},
		{"file", msg(client.Message{ConversationID: "p_1_2", Seq: 5, Kind: client.KindFile, File: file}), "",
			"#5 [15:04:05] alice: [file name.png 12 KB id=f_1]"},
		{"file with caption in a group", msg(client.Message{ConversationID: "g_3", Seq: 5, Kind: client.KindFile, File: file, Text: "look"}), "team",
			"#5 [15:04:05] alice @ team: [file name.png 12 KB id=f_1] look"},
		{"broadcast", msg(client.Message{Transient: true, Text: "all hands"}), "",
			"[15:04:05] (broadcast) alice: all hands"},
		{"notification", msg(client.Message{Transient: true, Kind: client.KindNotification, Text: "build green"}), "",
			"[15:04:05] (notification) alice: build green"},
		{"recall", msg(client.Message{ConversationID: "g_3", Seq: 6, Kind: client.KindRecall, RefSeq: 12}), "team",
			"#6 [15:04:05] * alice recalled #12"},
		{"edit", msg(client.Message{ConversationID: "p_1_2", Seq: 7, Kind: client.KindEdit, RefSeq: 2, Text: "fixed"}), "",
			"#7 [15:04:05] * alice edited #2: fixed"},
		{"event", msg(client.Message{ConversationID: "g_3", Seq: 8, Kind: client.KindEvent,
			Event: &client.GroupEvent{Type: "joined", Actor: "bob"}}), "team",
			"#8 [15:04:05] * bob joined team"},
		{"recalled in history", msg(client.Message{ConversationID: "p_1_2", Seq: 2, Recalled: true}), "",
			"#2 [15:04:05] alice: (recalled)"},
		{"removed by an admin", msg(client.Message{ConversationID: "p_1_2", Seq: 9, Kind: client.KindRecall, RefSeq: 2,
			Event: &client.GroupEvent{Type: "removed_by_admin"}}), "",
			"#9 [15:04:05] * an admin removed #2"},
		{"removed by an admin in history", msg(client.Message{ConversationID: "p_1_2", Seq: 2, Recalled: true,
			Event: &client.GroupEvent{Type: "removed_by_admin"}}), "",
			"#2 [15:04:05] alice: (removed by admin)"},
		{"edited in history", msg(client.Message{ConversationID: "p_1_2", Seq: 2, Text: "fixed", EditedAt: at}), "",
			"#2 [15:04:05] alice: fixed (edited)"},
		{"reply", msg(client.Message{ConversationID: "p_1_2", Seq: 10, Text: "yes", RefSeq: 7}), "",
			"#10 [15:04:05] alice: (reply to #7) yes"},
		{"file reply", msg(client.Message{ConversationID: "g_3", Seq: 11, Kind: client.KindFile, File: file, RefSeq: 4}), "team",
			"#11 [15:04:05] alice @ team: (reply to #4) [file name.png 12 KB id=f_1]"},
	}
	for _, tt := range tests {
		if got := formatMessage(tt.m, tt.group); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestEventText(t *testing.T) {
	ev := func(typ, actor, detail string, users ...string) *client.GroupEvent {
		return &client.GroupEvent{Type: typ, Actor: actor, Usernames: users, Detail: detail}
	}
	tests := []struct {
		ev   *client.GroupEvent
		want string
	}{
		{ev("created", "alice", "", "bob", "carol"), "alice created team with bob, carol"},
		{ev("created", "alice", ""), "alice created team"},
		{ev("created", "alice", "team", "bob"), "alice created team with bob"},
		{ev("joined", "bob", ""), "bob joined team"},
		{ev("joined", "bob", "", "bob"), "bob joined team"},
		{ev("left", "bob", ""), "bob left team"},
		{ev("added", "alice", "", "dave"), "alice added dave to team"},
		{ev("removed", "alice", "", "dave"), "alice removed dave from team"},
		{ev("role", "alice", "admin", "bob"), "alice made bob admin in team"},
		{ev("owner", "alice", "owner", "bob"), "alice made bob the owner of team"},
		{ev("muted", "alice", "0", "bob"), "alice muted bob in team until off"},
		{ev("muted", "alice", "", "bob"), "alice muted bob in team"},
		{ev("muted", "alice", ""), "alice muted everyone in team"},
		{ev("unmuted", "alice", "", "bob"), "alice unmuted bob in team"},
		{ev("updated", "alice", "name=crew"), "alice updated team (name=crew)"},
		{ev("updated", "alice", `{"name":"crew","join_policy":"open","muted_until":0}`),
			"alice updated team (join_policy=open, muted_until=off, name=crew)"},
		{ev("unmuted", "alice", "", "bob"), "alice unmuted bob in team"},
		{ev("dissolved", "alice", ""), "alice dissolved team"},
		{ev("archived", "alice", ""), "alice archived in team"},
	}
	for _, tt := range tests {
		if got := eventText(tt.ev, "team"); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.ev.Type, got, tt.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KB"}, {1536, "1.5 KB"}, {12 * 1024, "12 KB"},
		{5 << 20, "5.0 MB"}, {300 << 20, "300 MB"}, {3 << 30, "3.0 GB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.n); got != tt.want {
			t.Errorf("humanSize(%d): got %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestGroupReadCounts(t *testing.T) {
	var out syncBuffer
	u := newUI(&out, &out)
	u.c = client.New(client.Options{})
	u.names["g_3"] = "team"
	team := target{group: "g_3", name: "team"}
	u.sent(team, client.Ack{ConversationID: "g_3", Seq: 4})
	u.sent(team, client.Ack{ConversationID: "g_3", Seq: 6})
	read := func(user string, id int64, seq uint64) {
		u.receipt(client.Receipt{ConversationID: "g_3", Kind: client.Read, Seq: seq, UserID: id, Username: user})
	}
	read("bob", 2, 4)
	read("bob", 2, 4) // repeated: nothing new
	u.receipt(client.Receipt{ConversationID: "g_3", Kind: client.Delivered, Seq: 6, UserID: 3, Username: "carol"})
	read("carol", 3, 6)
	read("bob", 2, 7)
	want := strings.Join([]string{
		"✓ sent #4 @ team",
		"✓ sent #6 @ team",
		"✓✓ read by 1 #4 @ team",
		"✓✓ read by 2 #4 @ team",
		"✓✓ read by 1 #6 @ team",
		"✓✓ read by 2 #6 @ team",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
