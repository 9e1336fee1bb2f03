package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/magpie-im/magpie/client"
)

// ui prints events and keeps what the commands need to know. Its methods
// are called from the input loop, the worker goroutine and the SDK's
// callback goroutine; mu serialises output and guards the fields. mu is
// never held while calling the SDK.
type ui struct {
	c        *client.Client
	fatal    chan struct{} // closed when the client stopped for good
	fatalErr error

	mu      sync.Mutex
	out     io.Writer
	errw    io.Writer
	current target              // :to NAME or :g GROUP
	convOf  map[string]string   // peer -> private conversation id
	names   map[string]string   // group id -> name
	mine    map[string][]uint64 // conversation id -> my recent messages' seqs, oldest first
	private map[string]*track   // conversation id -> my sent messages awaiting receipts
	groups  map[string]*groupTrack

	server, transport string    // for :info
	connectedAt       time.Time // the first time the client was ready
	reconnects        int       // readies after the first

	failed        int               // commands that failed ("error: " lines)
	starting      bool              // until the first sync was shown
	readAtStart   map[string]uint64 // conversation id -> my read cursor then
	hiddenAtStart int
}

// maxMine bounds the seqs remembered per conversation for :recall, :reads
// and group read counts.
const maxMine = 50

// track follows my sent messages of one private conversation until the
// peer read them.
type track struct {
	peer           string
	pending        []uint64 // my seqs the peer has not read, ascending
	shown          int      // pending[:shown] were printed delivered
	delivered, red uint64   // the peer's cursors as far as we know
}

// groupTrack counts who read my recent messages of one group.
type groupTrack struct {
	readers map[uint64]map[string]bool // my seq -> members who read it
	read    map[string]uint64          // member -> read cursor
}

func newUI(out, errw io.Writer) *ui {
	return &ui{out: out, errw: errw, fatal: make(chan struct{}),
		convOf: map[string]string{}, names: map[string]string{}, mine: map[string][]uint64{},
		private: map[string]*track{}, groups: map[string]*groupTrack{},
		starting: true, readAtStart: map[string]uint64{}}
}

// started ends the start-up phase and says how much read history it hid.
func (u *ui) started() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.starting && u.hiddenAtStart > 0 {
		fmt.Fprintf(u.errw, "* %d earlier messages already read (:history N shows them)\n", u.hiddenAtStart)
	}
	u.starting = false
}

func (u *ui) printf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, format+"\n", args...)
}

// errorf reports a failed command: one line, "error: " and the command,
// then what went wrong. An error among args is rendered by errText, so
// the line carries one prefix, not the SDK's too.
func (u *ui) errorf(format string, args ...any) {
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = errText(err)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failed++
	fmt.Fprintf(u.errw, "error: "+format+"\n", args...)
}

// errText renders an error without the SDK's "magpie: " prefix: a
// server's error is its message and then its code, "no such user: dave
// (not_found)"; the code is what a script may match on.
func errText(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		if e.Message == "" {
			return e.Code.String()
		}
		return fmt.Sprintf("%s (%s)", e.Message, e.Code)
	}
	return strings.TrimPrefix(err.Error(), "magpie: ")
}

func (u *ui) failures() int { u.mu.Lock(); defer u.mu.Unlock(); return u.failed }

// groupName returns a group's name, asking the server the first time.
// It may block on HTTP: call it without mu.
func (u *ui) groupName(id string) string {
	u.mu.Lock()
	name, ok := u.names[id]
	u.mu.Unlock()
	if ok {
		return name
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name = id // also remembered on failure: a group I left stays unknown
	if g, err := u.c.Group(ctx, id); err == nil && g.Name != "" {
		name = g.Name
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.names[id]; ok {
		return n
	}
	u.names[id] = name
	return name
}

func (u *ui) setName(id, name string) {
	u.mu.Lock()
	u.names[id] = name
	u.mu.Unlock()
}

// message is Options.OnMessage.
func (u *ui) message(m client.Message) {
	var group string
	if m.IsGroup() {
		group = u.groupName(m.ConversationID)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if m.Peer != "" && !m.Transient {
		u.convOf[m.Peer] = m.ConversationID
	}
	// At start, history already read (on any device) is counted, not
	// printed: a terminal is no place to replay a long conversation.
	if u.starting && !m.Transient && m.Seq <= u.readAtStart[m.ConversationID] {
		u.hiddenAtStart++
		if m.Own && !m.Transient && (m.Kind == client.KindText || m.Kind == client.KindFile) {
			u.rememberLocked(m.ConversationID, m.Seq)
		}
		return
	}
	switch {
	case m.Kind == client.KindRecall:
		u.forgetLocked(m.ConversationID, m.RefSeq)
	case m.Own && !m.Transient && (m.Kind == client.KindText || m.Kind == client.KindFile):
		u.rememberLocked(m.ConversationID, m.Seq)
	}
	fmt.Fprintln(u.out, formatMessage(m, group))
	if m.Kind == client.KindEvent && m.Event != nil && m.Event.Type == "updated" {
		delete(u.names, m.ConversationID) // a rename: ask again next time
	}
}

// conversationState is Options.OnConversation: it keeps group names current
// and, during the first sync, notes what was read already.
func (u *ui) conversationState(cs client.ConversationState) {
	u.mu.Lock()
	if u.starting {
		u.readAtStart[cs.ID] = max(u.readAtStart[cs.ID], cs.ReadSeq)
	}
	u.mu.Unlock()
	if cs.Kind == "group" && cs.Name != "" {
		u.setName(cs.ID, cs.Name)
	}
}

// notice is Options.OnNotice: a live line for what the user should act
// on. Being added to or removed from a group is not printed: that group's
// event message says it already.
func (u *ui) notice(n client.Notice) {
	if line := noticeLine(n); line != "" {
		u.printf("%s", line)
	}
}

// noticeLine is the line of a notice, with the command that answers it;
// "" for one the terminal does not show.
func noticeLine(n client.Notice) string {
	switch n.Type {
	case client.NoticeFriendRequested:
		return fmt.Sprintf("* %s wants to be your friend: :accept %s", n.Actor, n.Actor)
	case client.NoticeFriendAccepted:
		return fmt.Sprintf("* %s is your friend now", n.Actor)
	case client.NoticeJoinRequested:
		return fmt.Sprintf("* %s asks to join %s (%s): :to %s, then :approve %s", n.Actor, n.GroupName, n.GroupID, n.GroupID, n.Actor)
	case client.NoticeScheduledRefused:
		to := n.ToUser
		if n.ToGroup != "" {
			to = n.ToGroup
		}
		return fmt.Sprintf("* scheduled message %d to %s was not sent: %s (%s)", n.ScheduledID, to, n.Reason, n.Code)
	}
	return ""
}

func (u *ui) rememberLocked(conv string, seq uint64) {
	s := u.mine[conv]
	if i, found := slices.BinarySearch(s, seq); !found {
		s = slices.Insert(s, i, seq)
	}
	if len(s) > maxMine {
		s = s[len(s)-maxMine:]
	}
	u.mine[conv] = s
}

func (u *ui) forgetLocked(conv string, seq uint64) {
	u.mine[conv] = slices.DeleteFunc(u.mine[conv], func(s uint64) bool { return s == seq })
}

// lastMine is the seq of my newest remembered message of a conversation.
func (u *ui) lastMine(conv string) uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.mine[conv]; len(s) > 0 {
		return s[len(s)-1]
	}
	return 0
}

func (u *ui) state(s client.State, err error) {
	name, device := u.c.Username(), u.c.Device()
	u.mu.Lock()
	defer u.mu.Unlock()
	switch s {
	case client.StateReady:
		if u.connectedAt.IsZero() {
			u.connectedAt = time.Now()
		} else {
			u.reconnects++
		}
		fmt.Fprintf(u.errw, "* connected as %s (device %s)\n", name, device)
	case client.StateReconnecting:
		fmt.Fprintf(u.errw, "* reconnecting: %v\n", err)
	case client.StateClosed:
		if err != nil && u.fatalErr == nil {
			fmt.Fprintf(u.errw, "* disconnected: %v\n", err)
			u.fatalErr = err
			close(u.fatal)
		}
	}
}

// sent records an ack and prints it, with any receipts that overtook it.
func (u *ui) sent(to target, ack client.Ack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, "✓ sent #%d %s\n", ack.Seq, to)
	u.rememberLocked(ack.ConversationID, ack.Seq)
	if to.group != "" {
		return
	}
	u.convOf[to.user] = ack.ConversationID
	t := u.trackLocked(ack.ConversationID, to.user)
	// Acks come in seq order (one command runs at a time), so appending
	// keeps pending sorted.
	if ack.Seq > t.red && (len(t.pending) == 0 || ack.Seq > t.pending[len(t.pending)-1]) {
		t.pending = append(t.pending, ack.Seq)
	}
	u.flushLocked(t)
}

func (u *ui) trackLocked(conv, peer string) *track {
	t := u.private[conv]
	if t == nil {
		t = &track{peer: peer}
		u.private[conv] = t
	}
	return t
}

// receipt prints state changes of my sent messages when someone's cursor
// passes them: delivered and read for private chats, "read by N" for my
// recent group messages. My own devices' receipts are not news.
func (u *ui) receipt(r client.Receipt) {
	if r.UserID == u.c.UserID() {
		return
	}
	if client.IsGroupID(r.ConversationID) {
		if r.Kind == client.Read {
			u.groupRead(r, u.groupName(r.ConversationID))
		}
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.trackLocked(r.ConversationID, r.Username)
	switch r.Kind {
	case client.Delivered:
		t.delivered = max(t.delivered, r.Seq)
	case client.Read:
		t.red = max(t.red, r.Seq)
		t.delivered = max(t.delivered, r.Seq) // read implies delivered
	}
	u.flushLocked(t)
}

func (u *ui) groupRead(r client.Receipt, name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	g := u.groups[r.ConversationID]
	if g == nil {
		g = &groupTrack{readers: map[uint64]map[string]bool{}, read: map[string]uint64{}}
		u.groups[r.ConversationID] = g
	}
	if r.Seq <= g.read[r.Username] {
		return
	}
	g.read[r.Username] = r.Seq
	for _, seq := range u.mine[r.ConversationID] {
		if seq > r.Seq {
			break
		}
		rs := g.readers[seq]
		if rs == nil {
			rs = map[string]bool{}
			g.readers[seq] = rs
		}
		if !rs[r.Username] {
			rs[r.Username] = true
			fmt.Fprintf(u.out, "✓✓ read by %d #%d @ %s\n", len(rs), seq, name)
		}
	}
	for seq := range maps.Keys(g.readers) {
		if _, ok := slices.BinarySearch(u.mine[r.ConversationID], seq); !ok {
			delete(g.readers, seq) // forgotten or recalled
		}
	}
}

// flushLocked prints, in seq order, what the peer's cursors passed since
// the last call. It looks only at the seqs it prints (red <= delivered), so
// thousands of piped sends to a peer who does not read stay cheap.
func (u *ui) flushLocked(t *track) {
	n := 0
	for ; n < len(t.pending) && t.pending[n] <= t.red; n++ {
		if n >= t.shown {
			fmt.Fprintf(u.out, "✓✓ delivered #%d → %s\n", t.pending[n], t.peer)
		}
		fmt.Fprintf(u.out, "✓✓ read #%d → %s\n", t.pending[n], t.peer)
	}
	t.pending, t.shown = t.pending[n:], max(t.shown-n, 0)
	for ; t.shown < len(t.pending) && t.pending[t.shown] <= t.delivered; t.shown++ {
		fmt.Fprintf(u.out, "✓✓ delivered #%d → %s\n", t.pending[t.shown], t.peer)
	}
}
