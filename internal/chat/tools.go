package chat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/magpie-im/magpie/client"
)

// emojis are the :shortcodes: a sent text turns into emoji (:emoji lists
// them), in the order :emoji shows them.
var emojis = []struct{ code, emoji string }{
	{"smile", "😄"}, {"grin", "😁"}, {"joy", "😂"}, {"wink", "😉"}, {"blush", "😊"},
	{"heart_eyes", "😍"}, {"thinking", "🤔"}, {"neutral", "😐"}, {"sweat", "😅"}, {"cry", "😢"},
	{"sob", "😭"}, {"angry", "😠"}, {"scream", "😱"}, {"sleepy", "😪"}, {"cool", "😎"},
	{"thumbsup", "👍"}, {"thumbsdown", "👎"}, {"ok", "👌"}, {"clap", "👏"}, {"wave", "👋"},
	{"pray", "🙏"}, {"muscle", "💪"}, {"eyes", "👀"}, {"heart", "❤️"}, {"broken_heart", "💔"},
	{"fire", "🔥"}, {"star", "⭐"}, {"sparkles", "✨"}, {"tada", "🎉"}, {"rocket", "🚀"},
	{"coffee", "☕"}, {"beer", "🍺"}, {"cake", "🍰"}, {"pizza", "🍕"}, {"sun", "☀️"},
	{"check", "✅"}, {"x", "❌"}, {"warning", "⚠️"}, {"question", "❓"}, {"100", "💯"},
}

var emojiByCode = func() map[string]string {
	m := make(map[string]string, len(emojis))
	for _, e := range emojis {
		m[e.code] = e.emoji
	}
	return m
}()

var shortcode = regexp.MustCompile(`:([a-z0-9_]+):`)

// emojify replaces the known :shortcodes: of a text; anything else
// (":unknown:", "10:30:00") stays as typed.
func emojify(text string) string {
	if !strings.Contains(text, ":") {
		return text
	}
	return shortcode.ReplaceAllStringFunc(text, func(s string) string {
		if e, ok := emojiByCode[s[1:len(s)-1]]; ok {
			return e
		}
		return s
	})
}

// emojiList is :emoji [WORD].
func (u *ui) emojiList(word string) {
	n := 0
	var line []string
	for _, e := range emojis {
		if word != "" && !strings.Contains(e.code, strings.Trim(word, ":")) {
			continue
		}
		line = append(line, e.emoji+" :"+e.code+":")
		n++
		if len(line) == 5 {
			u.printf("emoji: %s", strings.Join(line, "  "))
			line = nil
		}
	}
	if len(line) > 0 {
		u.printf("emoji: %s", strings.Join(line, "  "))
	}
	if n == 0 {
		u.printf("emoji %s: (none)", word)
	}
}

// info is :info: who and where this client is.
func (u *ui) info() {
	u.mu.Lock()
	cur, since, reconnects := u.current, u.connectedAt, u.reconnects
	u.mu.Unlock()
	c := u.c
	u.printf("info: user %s (id %d), device %s", c.Username(), c.UserID(), c.Device())
	gw := "none"
	if id := c.Gateway(); id != "" {
		gw = id + " at " + c.GatewayAddr()
	}
	u.printf("info: server %s, transport %s, gateway %s", u.server, u.transport, gw)
	state := c.State().String()
	if !since.IsZero() {
		state += fmt.Sprintf(" since %s, %d reconnects", since.Local().Format("2006-01-02 15:04:05"), reconnects)
	}
	u.printf("info: connection %s", state)
	talk := "none (use :to NAME or :g GROUP)"
	if !cur.empty() {
		talk = cur.String()
	}
	u.printf("info: current conversation %s", talk)
}

// to is :to NAME: a name nobody has is refused at once, not at the first
// send; the server's spelling of the name is used.
func (u *ui) to(ctx context.Context, name string) {
	usr, err := u.c.LookupUser(ctx, name)
	if err != nil {
		u.errorf(":to %s: %v", name, err)
		return
	}
	if usr.Username != "" {
		name = usr.Username
	}
	u.setCurrent(target{user: name})
	u.printf("to %s", name)
}

// reply is :reply SEQ text in the current conversation.
func (u *ui) reply(ctx context.Context, t target, seq uint64, text string) {
	if t.empty() {
		u.errorf(":reply: no current conversation (use :to NAME or :g GROUP)")
		return
	}
	u.send(ctx, t, client.SendRequest{ToUser: t.user, ToGroup: t.group, Text: text, ReplyTo: seq})
}

// get is :get FILE_ID [PATH]. The bytes go to a temporary file beside the
// target first, so a failed download leaves nothing behind and an existing
// file is never overwritten.
func (u *ui) get(ctx context.Context, id, path string) {
	dir, dest := ".", ""
	if path != "" {
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			dir = path
		} else {
			dir, dest = filepath.Dir(path), path
		}
	}
	tmp, err := os.CreateTemp(dir, ".magpie-get-*")
	if err != nil {
		u.errorf(":get %s: %v", id, err)
		return
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	ref, err := u.c.DownloadFile(ctx, id, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		u.errorf(":get %s: %v", id, err)
		return
	}
	if dest == "" {
		name := filepath.Base(filepath.Clean("/" + ref.Name)) // no directories from the server
		if name == "/" || name == "." {
			name = id
		}
		dest = filepath.Join(dir, name)
	}
	if _, err := os.Lstat(dest); err == nil {
		u.errorf(":get %s: %s exists (give another PATH)", id, dest)
		return
	} else if !errors.Is(err, fs.ErrNotExist) {
		u.errorf(":get %s: %v", id, err)
		return
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		u.errorf(":get %s: %v", id, err)
		return
	}
	u.printf("saved %s %s to %s", ref.Name, humanSize(ref.Size), dest)
}

// groupManage runs the owner's and admins' commands on the current group:
// :members, :role, :owner, :mute, :unmute, :mute-all, :unmute-all,
// :rename and :dissolve.
func (u *ui) groupManage(ctx context.Context, cur target, cmd command) {
	word := map[cmdKind]string{cmdMembers: ":members", cmdRole: ":role", cmdOwner: ":owner", cmdMute: ":mute",
		cmdUnmute: ":unmute", cmdMuteAll: ":mute-all", cmdUnmuteAll: ":unmute-all", cmdRename: ":rename",
		cmdDissolve: ":dissolve"}[cmd.kind]
	if cur.group == "" {
		u.errorf("%s: the current conversation is not a group (use :g GROUP)", word)
		return
	}
	if cmd.to != "" {
		word += " " + cmd.to
	}
	g := cur.label()
	until := time.Now().Add(time.Duration(cmd.n) * time.Minute)
	var err error
	switch cmd.kind {
	case cmdMembers:
		var grp client.Group
		if grp, err = u.c.Group(ctx, cur.group); err == nil {
			u.printMembers(grp)
		}
	case cmdRole:
		if err = u.c.SetRole(ctx, cur.group, cmd.to, client.Role(cmd.text)); err == nil {
			u.printf("%s is %s of %s", cmd.to, map[string]string{"admin": "an admin", "member": "a member"}[cmd.text], g)
		}
	case cmdOwner:
		if err = u.c.TransferOwner(ctx, cur.group, cmd.to); err == nil {
			u.printf("%s is the owner of %s", cmd.to, g)
		}
	case cmdMute:
		if err = u.c.MuteMember(ctx, cur.group, cmd.to, until); err == nil {
			u.printf("muted %s in %s until %s", cmd.to, g, until.Local().Format("2006-01-02 15:04"))
		}
	case cmdUnmute:
		if err = u.c.MuteMember(ctx, cur.group, cmd.to, time.Time{}); err == nil {
			u.printf("unmuted %s in %s", cmd.to, g)
		}
	case cmdMuteAll, cmdUnmuteAll:
		at := until
		if cmd.kind == cmdUnmuteAll {
			at = time.Time{}
		}
		if _, err = u.c.UpdateGroup(ctx, cur.group, client.GroupUpdate{MutedUntil: &at}); err == nil {
			if at.IsZero() {
				u.printf("unmuted everyone in %s", g)
			} else {
				u.printf("muted everyone but the owner and admins in %s until %s", g, at.Local().Format("2006-01-02 15:04"))
			}
		}
	case cmdRename:
		var grp client.Group
		if grp, err = u.c.UpdateGroup(ctx, cur.group, client.GroupUpdate{Name: &cmd.text}); err == nil {
			u.setName(grp.ID, cmd.text)
			u.mu.Lock()
			if u.current.group == cur.group {
				u.current.name = cmd.text
			}
			u.mu.Unlock()
			u.printf("renamed %s to %s", g, cmd.text)
		}
	case cmdDissolve:
		if err = u.c.DissolveGroup(ctx, cur.group); err == nil {
			u.mu.Lock()
			if u.current == cur {
				u.current = target{}
			}
			u.mu.Unlock()
			u.printf("dissolved %s", g)
		}
	}
	if err != nil {
		u.errorf("%s: %v", word, err)
	}
}

func (u *ui) printMembers(g client.Group) {
	u.printf("members of %s (%s): %d", g.Name, g.ID, g.MemberCount)
	for _, m := range g.Members {
		line := "member: " + m.Username
		if m.Role != client.RoleMember && m.Role != "" {
			line += " (" + string(m.Role) + ")"
		}
		if m.MutedUntil.After(time.Now()) {
			line += ", muted until " + m.MutedUntil.Local().Format("2006-01-02 15:04")
		}
		u.printf("%s", line)
	}
	if g.MutedUntil.After(time.Now()) {
		u.printf("everyone but the owner and admins is muted until %s", g.MutedUntil.Local().Format("2006-01-02 15:04"))
	}
}
