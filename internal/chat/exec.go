package chat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/magpie-im/magpie/client"
)

// run reads one input line; it reports whether to quit. :help and :q act
// at once; every other command goes to the worker, so commands run in
// input order (a :recall after a message recalls that message).
func (u *ui) run(line string, w *worker) (quit bool) {
	cmd, err := parse(line)
	if err != nil {
		u.errorf("%v", err)
		return false
	}
	switch cmd.kind {
	case cmdNone:
	case cmdHelp:
		u.mu.Lock()
		fmt.Fprintln(u.errw, helpText)
		u.mu.Unlock()
	case cmdQuit:
		return true
	case cmdLogoutAll:
		// Quit after it: the kick of this session that follows is expected.
		w.add(func(ctx context.Context) { u.logoutAll(ctx) })
		return true
	default:
		w.add(func(ctx context.Context) { u.exec(ctx, cmd) })
	}
	return false
}

func (u *ui) cur() target {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.current
}

func (u *ui) setCurrent(t target) {
	u.mu.Lock()
	u.current = t
	u.mu.Unlock()
}

// exec runs a command on the worker goroutine.
func (u *ui) exec(ctx context.Context, cmd command) {
	cur := u.cur()
	switch cmd.kind {
	case cmdSend:
		u.send(ctx, target{user: cmd.to}, client.SendRequest{ToUser: cmd.to, Text: cmd.text})
	case cmdText:
		if cur.empty() {
			u.errorf("no current conversation: use :to NAME, :g GROUP, NAME;;text or @NAME text")
			return
		}
		u.send(ctx, cur, client.SendRequest{ToUser: cur.user, ToGroup: cur.group, Text: cmd.text})
	case cmdTo:
		u.to(ctx, cmd.to)
	case cmdReply:
		u.reply(ctx, cur, cmd.seq, cmd.text)
	case cmdGet:
		u.get(ctx, cmd.to, cmd.text)
	case cmdInfo:
		u.info()
	case cmdEmoji:
		u.emojiList(cmd.text)
	case cmdMembers, cmdRole, cmdOwner, cmdMute, cmdUnmute, cmdMuteAll, cmdUnmuteAll, cmdRename, cmdDissolve:
		u.groupManage(ctx, cur, cmd)
	case cmdAll:
		if _, err := u.c.Send(ctx, client.SendRequest{Broadcast: true, Text: cmd.text}); err != nil {
			u.errorf(":all: %v", err)
			return
		}
		u.printf("✓ broadcast sent")
	case cmdFile:
		u.sendFile(ctx, cur, cmd.text)
	case cmdRecall:
		u.recall(ctx, cur, cmd.seq)
	case cmdReads:
		u.reads(ctx, cur, cmd.seq)
	case cmdEdit:
		u.edit(ctx, cur, cmd.seq, cmd.text)
	case cmdOnline:
		u.online(ctx)
	case cmdPrefixUsers:
		u.onlineByPrefix(ctx, cmd.to)
	case cmdDelay:
		u.delay(ctx, cur, cmd.n, cmd.text)
	case cmdScheduled:
		u.scheduled(ctx)
	case cmdCancel:
		if err := u.c.CancelScheduled(ctx, int64(cmd.seq)); err != nil {
			u.errorf(":cancel %d: %v", cmd.seq, err)
			return
		}
		u.printf("cancelled scheduled message %d", cmd.seq)
	case cmdSessions:
		u.sessions(ctx)
	case cmdEndSession:
		if err := u.c.EndSession(ctx, cmd.to); err != nil {
			u.errorf(":end-session %s: %v", cmd.to, err)
			return
		}
		u.printf("ended session %s", cmd.to)
	case cmdHistory:
		u.history(ctx, cur, cmd.n)
	case cmdSearch:
		u.search(ctx, cmd.text)
	case cmdRead:
		u.markRead(ctx, cur)
	case cmdDelete, cmdClear:
		u.hide(ctx, cur, cmd.kind == cmdClear)
	default:
		u.social(ctx, cur, cmd)
	}
}

func (u *ui) send(ctx context.Context, to target, req client.SendRequest) {
	ack, err := u.c.Send(ctx, req)
	if err != nil {
		u.errorf("send to %s: %v", to.label(), err)
		return
	}
	u.sent(to, ack)
}

func (u *ui) sendFile(ctx context.Context, to target, path string) {
	if to.empty() {
		u.errorf(":file: no current conversation (use :to NAME or :g GROUP)")
		return
	}
	ref, err := u.c.UploadFile(ctx, path)
	if err != nil {
		u.errorf(":file %s: %v", path, err)
		return
	}
	u.printf("uploaded %s %s id=%s", ref.Name, humanSize(ref.Size), ref.ID)
	u.send(ctx, to, client.SendRequest{ToUser: to.user, ToGroup: to.group, FileID: ref.ID})
}

// convID finds the conversation id of a target; ok is false for a private
// chat that does not exist yet.
func (u *ui) convID(ctx context.Context, t target) (id string, ok bool, err error) {
	if t.group != "" {
		return t.group, true, nil
	}
	u.mu.Lock()
	id = u.convOf[t.user]
	u.mu.Unlock()
	if id != "" {
		return id, true, nil
	}
	cv, ok, err := u.conversation(ctx, t)
	return cv.ID, ok, err
}

// conversation finds my conversation with a target.
func (u *ui) conversation(ctx context.Context, t target) (client.Conversation, bool, error) {
	convs, err := u.c.Conversations(ctx)
	if err != nil {
		return client.Conversation{}, false, err
	}
	for _, cv := range convs {
		if (t.group != "" && cv.ID == t.group) || (t.user != "" && cv.Peer == t.user && !client.IsGroupID(cv.ID)) {
			return cv, true, nil
		}
	}
	return client.Conversation{}, false, nil
}

// mySeq resolves the seq a :recall or :reads refers to: the one given, or
// my last message of the conversation.
func (u *ui) mySeq(ctx context.Context, word string, t target, seq uint64) (string, uint64, bool) {
	if t.empty() {
		u.errorf("%s: no current conversation (use :to NAME or :g GROUP)", word)
		return "", 0, false
	}
	id, ok, err := u.convID(ctx, t)
	if err != nil {
		u.errorf("%s: %v", word, err)
		return "", 0, false
	}
	if seq == 0 && ok {
		seq = u.lastMine(id)
	}
	if !ok || seq == 0 {
		u.errorf("%s: no message of mine in this conversation (give a seq)", word)
		return "", 0, false
	}
	return id, seq, true
}

func (u *ui) recall(ctx context.Context, t target, seq uint64) {
	id, seq, ok := u.mySeq(ctx, ":recall", t, seq)
	if !ok {
		return
	}
	if _, err := u.c.Recall(ctx, id, seq); err != nil {
		u.errorf(":recall #%d: %v", seq, err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.forgetLocked(id, seq)
	fmt.Fprintf(u.out, "✓ recalled #%d %s\n", seq, t)
}

func (u *ui) edit(ctx context.Context, t target, seq uint64, text string) {
	id, seq, ok := u.mySeq(ctx, ":edit", t, seq)
	if !ok {
		return
	}
	if _, err := u.c.Edit(ctx, id, seq, text); err != nil {
		u.errorf(":edit #%d: %v", seq, err)
		return
	}
	u.printf("✓ edited #%d %s", seq, t)
}

func (u *ui) reads(ctx context.Context, t target, seq uint64) {
	id, seq, ok := u.mySeq(ctx, ":reads", t, seq)
	if !ok {
		return
	}
	r, err := u.c.Reads(ctx, id, seq)
	if err != nil {
		u.errorf(":reads #%d: %v", seq, err)
		return
	}
	readers := "none"
	if len(r.Readers) > 0 {
		readers = strings.Join(r.Readers, ", ")
	}
	u.printf("read by %d of %d #%d %s: %s", r.ReadCount, r.MemberCount, seq, t, readers)
}

func (u *ui) online(ctx context.Context) {
	users, err := u.c.Online(ctx)
	if err != nil {
		u.errorf("online users: %v", err)
		return
	}
	slices.SortFunc(users, func(a, b client.OnlineUser) int { return strings.Compare(a.Username, b.Username) })
	if len(users) == 0 {
		u.printf("online: (none)")
	}
	for _, ou := range users {
		u.printf("online: %s (%s)", ou.Username, strings.Join(ou.Devices, ", "))
	}
}

// delay is :delay SECONDS text: the server keeps the message and sends it
// then, also if this client has quit.
func (u *ui) delay(ctx context.Context, t target, secs int, text string) {
	if t.empty() {
		u.errorf(":delay: no current conversation (use :to NAME or :g GROUP)")
		return
	}
	at := time.Now().Add(time.Duration(secs) * time.Second)
	ack, err := u.c.Send(ctx, client.SendRequest{ToUser: t.user, ToGroup: t.group, Text: text, SendAt: at})
	if err != nil {
		u.errorf(":delay to %s: %v", t.label(), err)
		return
	}
	u.printf("scheduled %d for %s to %s (:cancel %d)", ack.ScheduledID, ack.SendAt.Format("15:04:05"), t.label(), ack.ScheduledID)
}

func (u *ui) scheduled(ctx context.Context) {
	list, err := u.c.ScheduledMessages(ctx)
	if err != nil {
		u.errorf(":scheduled: %v", err)
		return
	}
	if len(list) == 0 {
		u.printf("scheduled: (none)")
	}
	for _, m := range list {
		to := m.ToUser
		if m.ToGroup != "" {
			to = m.ToGroup
		}
		refused := ""
		if m.Status == client.ScheduledRefused {
			refused = fmt.Sprintf(" (refused: %s (%s); :cancel %d drops it)", m.Reason, m.Code, m.ID)
		}
		u.printf("scheduled %d: %s to %s: %s%s", m.ID, m.SendAt.Format("2006-01-02 15:04:05"), to, m.Text, refused)
	}
}

// puLimit is how many names :pu shows: a longer prefix narrows it.
const puLimit = 50

// onlineByPrefix is :pu PREFIX (online{prefix, limit} on the long connection).
func (u *ui) onlineByPrefix(ctx context.Context, prefix string) {
	page, err := u.c.OnlinePaged(ctx, client.OnlineQuery{Prefix: prefix, Limit: puLimit}) // over the long connection
	if err != nil {
		u.errorf(":pu %s: %v", prefix, err)
		return
	}
	if len(page.Users) == 0 {
		u.printf("online %s…: (none)", prefix)
	}
	for _, ou := range page.Users {
		u.printf("online: %s (%s)", ou.Username, strings.Join(ou.Devices, ", "))
	}
	if page.NextCursor != "" {
		u.printf("(more than %d: type more of the name)", puLimit)
	}
}

func (u *ui) history(ctx context.Context, t target, n int) {
	if t.empty() {
		u.errorf(":history: no current conversation (use :to NAME or :g GROUP)")
		return
	}
	cv, ok, err := u.conversation(ctx, t)
	if err != nil {
		u.errorf(":history: %v", err)
		return
	}
	if !ok || cv.LastSeq == 0 {
		u.printf("history with %s: (none)", t.label())
		return
	}
	msgs, err := u.c.History(ctx, cv.ID, client.HistoryQuery{BeforeSeq: cv.LastSeq + 1, Limit: n})
	if err != nil {
		u.errorf(":history: %v", err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, "history with %s:\n", t.label())
	for _, m := range msgs {
		if m.Peer == "" && !m.IsGroup() {
			m.Peer = cv.Peer // history pages do not name the peer
		}
		fmt.Fprintln(u.out, formatMessage(m, t.label()))
	}
}

func (u *ui) markRead(ctx context.Context, t target) {
	if t.empty() {
		u.errorf(":read: no current conversation (use :to NAME or :g GROUP)")
		return
	}
	id, ok, err := u.convID(ctx, t)
	if err != nil {
		u.errorf(":read: %v", err)
		return
	}
	if !ok {
		u.printf("marked read #0 (%s)", t.label())
		return
	}
	seq := u.c.Cursors()[id]
	if seq > 0 {
		if err := u.c.MarkRead(ctx, id, seq); err != nil {
			u.errorf(":read: %v", err)
			return
		}
	}
	u.printf("marked read #%d (%s)", seq, t.label())
}

// hide is :delete and :clear on the current conversation.
func (u *ui) hide(ctx context.Context, t target, clear bool) {
	word := map[bool]string{false: ":delete", true: ":clear"}[clear]
	if t.empty() {
		u.errorf("%s: no current conversation (use :to NAME or :g GROUP)", word)
		return
	}
	id, ok, err := u.convID(ctx, t)
	if err != nil {
		u.errorf("%s: %v", word, err)
		return
	}
	if !ok {
		u.errorf("%s: no conversation with %s yet", word, t.label())
		return
	}
	seq, err := u.c.HideConversation(ctx, id, clear)
	if err != nil {
		u.errorf("%s: %v", word, err)
		return
	}
	if clear {
		u.printf("cleared %s up to #%d (hidden until a new message)", t.label(), seq)
		return
	}
	u.printf("hid %s until a new message", t.label())
}

func (u *ui) sessions(ctx context.Context) {
	list, err := u.c.Sessions(ctx)
	if err != nil {
		u.errorf(":sessions: %v", err)
		return
	}
	for _, s := range list {
		line := fmt.Sprintf("session: %s %s", s.ID, s.Device)
		if s.Platform != "" {
			line += " (" + s.Platform + ")"
		}
		switch {
		case s.Current:
			line += ", this one"
		case s.Online:
			line += ", online"
		default:
			line += ", last seen " + s.LastSeen.Local().Format("2006-01-02 15:04")
		}
		u.printf("%s", line)
	}
}

func (u *ui) logoutAll(ctx context.Context) {
	if err := u.c.LogoutAll(ctx); err != nil {
		u.errorf(":logout-all: %v", err)
		return
	}
	u.printf("logged out everywhere")
}
