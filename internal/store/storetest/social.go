package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

func changeReq(from store.User, conv string, kind store.MessageKind, ref uint64, cmid, text string, sentAt time.Time) store.AppendRequest {
	return store.AppendRequest{ConversationID: conv, SenderID: from.ID, Kind: kind, RefSeq: ref, ClientMsgID: cmid,
		Text: text, SentAt: sentAt, RecallWindow: time.Minute}
}

func testRecallEdit(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	p := store.PrivateConversationID(alice.ID, bob.ID)
	file := &store.FileRef{ID: "f1", Name: "cat.png", ContentType: "image/png", Size: 42}
	first := privateReq(alice, bob, "a1", "helo", at(0))
	withFile := privateReq(alice, bob, "a2", "caption", at(1))
	withFile.Kind, withFile.File = store.KindFile, file
	mustAppend(t, s, first, withFile) // seqs 1, 2

	tests := []struct {
		name    string
		req     store.AppendRequest
		want    error
		wantSeq uint64
	}{
		{"edit someone else's", changeReq(bob, p, store.KindEdit, 1, "b-e1", "hacked", at(2)), store.ErrForbidden, 0},
		{"recall someone else's", changeReq(bob, p, store.KindRecall, 1, "b-r1", "", at(2)), store.ErrForbidden, 0},
		{"edit within the window", changeReq(alice, p, store.KindEdit, 1, "a-e1", "hello", at(10)), nil, 3},
		{"edit the same retry", changeReq(alice, p, store.KindEdit, 1, "a-e1", "hello", at(11)), nil, 3},
		{"edit after the window", changeReq(alice, p, store.KindEdit, 1, "a-e2", "late", at(61)), store.ErrRecallLimit, 0},
		{"recall after the window", changeReq(alice, p, store.KindRecall, 1, "a-r1", "", at(61)), store.ErrRecallLimit, 0},
		{"edit an edit", changeReq(alice, p, store.KindEdit, 3, "a-e3", "x", at(12)), store.ErrForbidden, 0},
		{"recall a missing message", changeReq(alice, p, store.KindRecall, 99, "a-r2", "", at(12)), store.ErrNotFound, 0},
		{"recall the file", changeReq(alice, p, store.KindRecall, 2, "a-r3", "", at(13)), nil, 4},
		{"recall it again", changeReq(alice, p, store.KindRecall, 2, "a-r4", "", at(14)), store.ErrNotFound, 0},
		{"recall by an outsider", changeReq(carol, p, store.KindRecall, 1, "c-r1", "", at(14)), store.ErrNotMember, 0},
	}
	for _, tt := range tests {
		res := appendOne(t, s, tt.req)
		if tt.want != nil {
			wantErr(t, tt.name, res.Err, tt.want)
			continue
		}
		if res.Err != nil || res.Message.Seq != tt.wantSeq || res.Message.Kind != tt.req.Kind || res.Message.RefSeq != tt.req.RefSeq {
			t.Errorf("%s: %+v, %v; want seq %d", tt.name, res.Message, res.Err, tt.wantSeq)
		}
	}
	msgs := readAll(t, s, bob.ID, p)
	if len(msgs) != 4 {
		t.Fatalf("history has %d messages, want 4", len(msgs))
	}
	if m := msgs[0]; m.Text != "hello" || !m.EditedAt.Equal(at(10)) || m.Recalled {
		t.Errorf("edited original = %+v, want text hello edited at %v", m, at(10))
	}
	if m := msgs[1]; !m.Recalled || m.Text != "" || m.File != nil {
		t.Errorf("recalled original = %+v, want recalled with text and file cleared", m)
	}
	if m := msgs[2]; m.Kind != store.KindEdit || m.RefSeq != 1 || m.Text != "hello" {
		t.Errorf("edit message = %+v", m)
	}
	if ok, err := s.FileVisible(ctx, bob.ID, "f1"); err != nil || ok {
		t.Errorf("FileVisible after recall = %v, %v; want false", ok, err)
	}

	// In a group, admins may recall anyone's message at any time.
	g := mustGroup(t, s, 0, alice, bob, carol)
	mustAppend(t, s, groupReq(carol, g.ID, "c1", "oops", at(2))) // seq 2
	wantErr(t, "member recalls another's", appendOne(t, s, changeReq(bob, g.ID, store.KindRecall, 2, "b-g1", "", at(3))).Err, store.ErrForbidden)
	wantErr(t, "owner edits another's", appendOne(t, s, changeReq(alice, g.ID, store.KindEdit, 2, "a-g0", "x", at(3))).Err, store.ErrForbidden)
	if res := appendOne(t, s, changeReq(alice, g.ID, store.KindRecall, 2, "a-g1", "", at(3600))); res.Err != nil || res.Message.Seq != 3 {
		t.Errorf("owner recalls late: %+v, %v", res.Message, res.Err)
	}
}

// testRecallEditInBatch changes messages stored earlier in the same batch,
// and answers a retry with its original as changed before it in the batch.
func testRecallEditInBatch(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	p := store.PrivateConversationID(alice.ID, bob.ID)
	mustAppend(t, s, privateReq(alice, bob, "a0", "first", at(0))) // seq 1
	res, err := s.AppendMessages(t.Context(), []store.AppendRequest{
		privateReq(alice, bob, "a1", "helo", at(1)),                    // seq 2
		changeReq(alice, p, store.KindEdit, 2, "a-e1", "hello", at(2)), // seq 3
		changeReq(alice, p, store.KindEdit, 3, "a-e2", "x", at(3)),     // an edit of an edit
		changeReq(alice, p, store.KindEdit, 1, "a-e3", "1st", at(4)),   // seq 4
		privateReq(alice, bob, "a0", "retry", at(5)),                   // the original, edited
		changeReq(alice, p, store.KindRecall, 2, "a-r1", "", at(6)),    // seq 5
		changeReq(alice, p, store.KindRecall, 2, "a-r2", "", at(7)),    // gone
		privateReq(bob, alice, "b1", "what?", at(8)),                   // seq 6
	})
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	wantErr(t, "edit an edit", res[2].Err, store.ErrForbidden)
	wantErr(t, "recall it again", res[6].Err, store.ErrNotFound)
	for i, seq := range map[int]uint64{0: 2, 1: 3, 3: 4, 5: 5, 7: 6} {
		if r := res[i]; r.Err != nil || r.Duplicate || r.Message.Seq != seq {
			t.Errorf("result %d = %+v, %v (dup %v); want seq %d", i, r.Message, r.Err, r.Duplicate, seq)
		}
	}
	if r := res[4]; !r.Duplicate || r.Message.Seq != 1 || r.Message.Text != "1st" {
		t.Errorf("retry = %+v (dup %v), want seq 1 with its edited text", r.Message, r.Duplicate)
	}
	msgs := readAll(t, s, bob.ID, p)
	if len(msgs) != 6 {
		t.Fatalf("history has %d messages, want 6", len(msgs))
	}
	if m := msgs[0]; m.Text != "1st" || !m.EditedAt.Equal(at(4)) {
		t.Errorf("message 1 = %+v, want edited to 1st", m)
	}
	if m := msgs[1]; !m.Recalled || m.Text != "" || !m.EditedAt.Equal(at(2)) {
		t.Errorf("message 2 = %+v, want edited, then recalled", m)
	}
	if m := msgs[2]; m.Kind != store.KindEdit || m.RefSeq != 2 || m.Text != "" {
		t.Errorf("edit of the recalled message 2 = %+v, want its text blanked", m)
	}
	if m := msgs[3]; m.Kind != store.KindEdit || m.RefSeq != 1 || m.Text != "1st" {
		t.Errorf("edit of message 1 = %+v, want it untouched", m)
	}
}

// A recall takes back every edit too: "oops" edited to "fixed" and then
// recalled must not leave "fixed" in history, in a sync from scratch, in
// the conversation list or in the answer to a retried edit.
func testRecallBlanksEdits(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	p := store.PrivateConversationID(alice.ID, bob.ID)
	mustAppend(t, s, privateReq(alice, bob, "a1", "oops", at(0)))                     // seq 1
	mustAppend(t, s, privateReq(alice, bob, "a2", "keep", at(1)))                     // seq 2
	mustAppend(t, s, changeReq(alice, p, store.KindEdit, 1, "a-e1", "fixed", at(2)))  // seq 3
	mustAppend(t, s, changeReq(alice, p, store.KindEdit, 2, "a-e2", "kept", at(3)))   // seq 4
	mustAppend(t, s, changeReq(alice, p, store.KindEdit, 1, "a-e3", "fixed!", at(4))) // seq 5
	if c, err := s.Conversation(ctx, bob.ID, p); err != nil || c.LastMessage == nil || c.LastMessage.Text != "fixed!" {
		t.Fatalf("before the recall: last message %+v, %v", c.LastMessage, err)
	}
	mustAppend(t, s, changeReq(alice, p, store.KindRecall, 1, "a-r1", "", at(5))) // seq 6

	for _, reader := range []store.User{alice, bob} {
		msgs := readAll(t, s, reader.ID, p)
		if len(msgs) != 6 {
			t.Fatalf("history has %d messages, want 6", len(msgs))
		}
		for _, m := range msgs {
			if m.Seq == 1 || m.RefSeq == 1 {
				if m.Text != "" {
					t.Errorf("%s reads message %d (kind %d, ref %d) with text %q after the recall of 1, want it blank", reader.Username, m.Seq, m.Kind, m.RefSeq, m.Text)
				}
			}
		}
		if m := msgs[3]; m.Text != "kept" {
			t.Errorf("edit of the kept message = %+v, want it untouched", m)
		}
		if m := msgs[1]; m.Text != "kept" || m.Recalled {
			t.Errorf("kept message = %+v, want its edited text", m)
		}
	}
	// A page in the middle, as a sync from a cursor reads it.
	page, err := s.Messages(ctx, bob.ID, store.MessageQuery{ConversationID: p, AfterSeq: 2, Limit: 2})
	if err != nil || len(page) != 2 || page[0].Text != "" || page[1].Text != "kept" {
		t.Errorf("page after seq 2 = %+v, %v; want the edit blanked and the other kept", page, err)
	}
	res := appendOne(t, s, changeReq(alice, p, store.KindEdit, 1, "a-e1", "fixed", at(6)))
	if !res.Duplicate || res.Message.Seq != 3 || res.Message.Text != "" {
		t.Errorf("retried edit = %+v (dup %v), want the original seq 3 with its text blanked", res.Message, res.Duplicate)
	}
}

func testFileVisible(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	r := privateReq(alice, bob, "a1", "", at(1))
	r.Kind, r.File = store.KindFile, &store.FileRef{ID: "doc", Name: "a.pdf", ContentType: "application/pdf", Size: 7}
	got := mustAppend(t, s, r)[0].Message
	if got.File == nil || *got.File != *r.File {
		t.Errorf("appended file = %+v, want %+v", got.File, r.File)
	}
	for _, tt := range []struct {
		user store.User
		file string
		want bool
	}{{alice, "doc", true}, {bob, "doc", true}, {carol, "doc", false}, {bob, "other", false}} {
		if ok, err := s.FileVisible(ctx, tt.user.ID, tt.file); err != nil || ok != tt.want {
			t.Errorf("FileVisible(%s, %s) = %v, %v; want %v", tt.user.Username, tt.file, ok, err, tt.want)
		}
	}
	if m := readAll(t, s, bob.ID, got.ConversationID)[0]; m.Kind != store.KindFile || m.File == nil || m.File.Name != "a.pdf" {
		t.Errorf("history = %+v, want the file message", m)
	}
}

func testFriends(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	st, err := s.RequestFriend(ctx, alice.ID, bob.ID, at(1))
	if err != nil || st != store.FriendRequested {
		t.Fatalf("request: %v, %v", st, err)
	}
	c, _ := s.Contacts(ctx, bob.ID)
	if len(c.Incoming) != 1 || c.Incoming[0].Username != "alice" || len(c.Friends) != 0 {
		t.Fatalf("bob's contacts = %+v, want alice's request", c)
	}
	if st, err := s.RequestFriend(ctx, bob.ID, alice.ID, at(2)); err != nil || st != store.FriendsNow {
		t.Fatalf("crossed request: %v, %v; want friends", st, err)
	}
	for _, u := range []store.User{alice, bob} {
		c, _ := s.Contacts(ctx, u.ID)
		if len(c.Friends) != 1 || len(c.Incoming)+len(c.Outgoing) != 0 || !c.Friends[0].Since.Equal(at(2)) {
			t.Errorf("%s's contacts = %+v, want one friend since %v", u.Username, c, at(2))
		}
	}
	if err := s.RemoveFriend(ctx, bob.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "remove twice", s.RemoveFriend(ctx, bob.ID, alice.ID), store.ErrNotFound)
	wantErr(t, "accept without a request", s.AcceptFriend(ctx, carol.ID, alice.ID, at(3)), store.ErrNotFound)
	if _, err := s.RequestFriend(ctx, carol.ID, alice.ID, at(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeclineFriend(ctx, alice.ID, carol.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "decline twice", s.DeclineFriend(ctx, alice.ID, carol.ID), store.ErrNotFound)
	_, err = s.RequestFriend(ctx, alice.ID, alice.ID, at(3))
	wantErr(t, "befriend yourself", err, store.ErrForbidden)
	_, err = s.RequestFriend(ctx, alice.ID, carol.ID+1000, at(3))
	wantErr(t, "befriend nobody", err, store.ErrNotFound)
	if _, err := s.RequestFriend(ctx, carol.ID, alice.ID, at(4)); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptFriend(ctx, alice.ID, carol.ID, at(5)); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if c, _ := s.Contacts(ctx, carol.ID); len(c.Friends) != 1 || c.Friends[0].Username != "alice" {
		t.Errorf("carol's friends = %+v", c.Friends)
	}
}

func testBlocks(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	for range 2 { // idempotent
		if err := s.Block(ctx, bob.ID, alice.ID, at(1)); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "first message to a blocker", appendOne(t, s, privateReq(alice, bob, "a1", "hi", at(2))).Err, store.ErrBlocked)
	if cs, _ := s.Conversations(ctx, bob.ID); len(cs) != 0 {
		t.Errorf("a refused first message left %d conversations behind", len(cs))
	}
	mustAppend(t, s, privateReq(bob, alice, "b1", "I can still write", at(3)))
	wantErr(t, "reply to a blocker", appendOne(t, s, privateReq(alice, bob, "a2", "hi", at(4))).Err, store.ErrBlocked)
	_, err := s.RequestFriend(ctx, alice.ID, bob.ID, at(4))
	wantErr(t, "friend request to a blocker", err, store.ErrBlocked)
	if c, _ := s.Contacts(ctx, bob.ID); len(c.Blocked) != 1 || c.Blocked[0].Username != "alice" {
		t.Errorf("bob's blocked = %+v", c.Blocked)
	}
	if err := s.Unblock(ctx, bob.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, privateReq(alice, bob, "a3", "hi again", at(5)))
	wantErr(t, "block yourself", s.Block(ctx, bob.ID, bob.ID, at(5)), store.ErrForbidden)

	// Friendship required.
	req := privateReq(carol, alice, "c1", "hi", at(6))
	req.RequireFriend = true
	wantErr(t, "stranger with friendship required", appendOne(t, s, req).Err, store.ErrNotFriends)
	if _, err := s.RequestFriend(ctx, carol.ID, alice.ID, at(6)); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptFriend(ctx, alice.ID, carol.ID, at(7)); err != nil {
		t.Fatal(err)
	}
	req.ClientMsgID = "c2"
	if res := appendOne(t, s, req); res.Err != nil {
		t.Errorf("friends with friendship required: %v", res.Err)
	}
}

func testConversationFlags(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := mustAppend(t, s, privateReq(alice, bob, "a1", "hi", at(1)))[0].Message.ConversationID
	yes, no := true, false
	c, err := s.SetConversationFlags(ctx, alice.ID, conv, &yes, nil)
	if err != nil || !c.Pinned || c.Muted {
		t.Fatalf("pin: %+v, %v", c, err)
	}
	c, err = s.SetConversationFlags(ctx, alice.ID, conv, &no, &yes)
	if err != nil || c.Pinned || !c.Muted {
		t.Fatalf("unpin and mute: %+v, %v", c, err)
	}
	cs, _ := s.Conversations(ctx, alice.ID)
	bc, _ := s.Conversation(ctx, bob.ID, conv)
	if len(cs) != 1 || !cs[0].Muted || bc.Muted || bc.Pinned {
		t.Errorf("alice's list = %+v, bob's = %+v; want only alice's muted", cs, bc)
	}
	_, err = s.SetConversationFlags(ctx, carol.ID, conv, &yes, nil)
	wantErr(t, "flags on someone else's conversation", err, store.ErrNotMember)
	if got := seqs(readAll(t, s, alice.ID, conv)); !slices.Equal(got, []uint64{1}) {
		t.Errorf("flags changed the stream: %v", got)
	}
}

func testMessageByClientID(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	p := store.PrivateConversationID(alice.ID, bob.ID)
	mustAppend(t, s, privateReq(alice, bob, "a1", "hi", at(0)), privateReq(bob, alice, "b1", "yo", at(1)))
	mustAppend(t, s, changeReq(alice, p, store.KindEdit, 1, "a-e1", "hello", at(2)))
	tests := []struct {
		sender  store.User
		cmid    string
		wantSeq uint64
		kind    store.MessageKind
	}{
		{alice, "a1", 1, store.KindText},
		{bob, "b1", 2, store.KindText},
		{alice, "a-e1", 3, store.KindEdit},
		{bob, "a1", 0, 0}, // ids are per sender
		{alice, "nope", 0, 0},
	}
	for _, tt := range tests {
		m, err := s.MessageByClientID(ctx, tt.sender.ID, tt.cmid)
		if tt.wantSeq == 0 {
			wantErr(t, tt.sender.Username+"/"+tt.cmid, err, store.ErrNotFound)
			continue
		}
		if err != nil || m.Seq != tt.wantSeq || m.ConversationID != p || m.Kind != tt.kind || m.ClientMsgID != tt.cmid || m.SentAt.IsZero() {
			t.Errorf("MessageByClientID(%s, %s) = %+v, %v; want seq %d of %s", tt.sender.Username, tt.cmid, m, err, tt.wantSeq, p)
		}
	}
}
