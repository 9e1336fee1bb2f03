package chat

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/magpie-im/magpie/client"
)

// target is a conversation the user talks in: a user, or a group.
type target struct {
	user  string // private chats: the other user
	group string // groups: the id
	name  string // groups: the name
}

func (t target) empty() bool { return t.user == "" && t.group == "" }

// String names the target as output lines do: "→ bob" or "@ team".
func (t target) String() string {
	if t.group != "" {
		return "@ " + t.label()
	}
	return "→ " + t.user
}

// label is the user's name or the group's name (its id if it has none).
func (t target) label() string {
	switch {
	case t.user != "":
		return t.user
	case t.name != "":
		return t.name
	}
	return t.group
}

// formatMessage renders a message in the stable output format (see the
// package doc). group is the group's name for group messages. A stored
// message starts with its seq ("#12 "), the number :recall, :edit, :reads
// and :reply take.
func formatMessage(m client.Message, group string) string {
	ts := "[" + m.SentAt.Local().Format(time.TimeOnly) + "] "
	if m.Seq > 0 && !m.Transient {
		ts = fmt.Sprintf("#%d %s", m.Seq, ts)
	}
	switch {
	case m.Kind == client.KindEvent && m.Event != nil:
		return ts + "* " + eventText(m.Event, group)
	case m.Kind == client.KindRecall && removedByAdmin(m):
		return fmt.Sprintf("%s* an admin removed #%d", ts, m.RefSeq)
	case m.Kind == client.KindRecall:
		return fmt.Sprintf("%s* %s recalled #%d", ts, m.Sender, m.RefSeq)
	case m.Kind == client.KindEdit:
		return fmt.Sprintf("%s* %s edited #%d: %s", ts, m.Sender, m.RefSeq, m.Text)
	case m.Kind == client.KindNotification:
		if m.Sender == "" {
			return ts + "(notification) " + body(m)
		}
		return ts + "(notification) " + m.Sender + ": " + body(m)
	case m.Transient:
		return ts + "(broadcast) " + m.Sender + ": " + body(m)
	}
	who := m.Sender
	switch {
	case m.IsGroup() && m.Own:
		who = "me @ " + group
	case m.IsGroup():
		who = m.Sender + " @ " + group
	case m.Own:
		who = "me → " + m.Peer
	}
	return ts + who + ": " + body(m)
}

// body is a message's text, file and state.
func body(m client.Message) string {
	if m.Recalled && removedByAdmin(m) {
		return "(removed by admin)"
	}
	if m.Recalled {
		return "(recalled)"
	}
	s := m.Text
	if f := m.File; f != nil {
		s = strings.TrimSpace(fmt.Sprintf("[file %s %s id=%s] %s", f.Name, humanSize(f.Size), f.ID, m.Text))
	}
	if m.RefSeq > 0 && (m.Kind == client.KindText || m.Kind == client.KindFile) {
		s = fmt.Sprintf("(reply to #%d) %s", m.RefSeq, s)
	}
	if !m.EditedAt.IsZero() {
		s += " (edited)"
	}
	return s
}

// eventText describes a group event: "bob joined team".
func eventText(ev *client.GroupEvent, group string) string {
	users := strings.Join(ev.Usernames, ", ")
	subject := users // for events a user does to themself
	if subject == "" {
		subject = ev.Actor
	}
	var s string
	switch ev.Type {
	case "created":
		s = ev.Actor + " created " + group
		if users != "" {
			s += " with " + users
		}
	case "joined":
		s = subject + " joined " + group
	case "left":
		s = subject + " left " + group
	case "added":
		s = ev.Actor + " added " + users + " to " + group
	case "removed":
		s = ev.Actor + " removed " + users + " from " + group
	case "role":
		s = ev.Actor + " made " + users + " " + ev.Detail + " in " + group
	case "owner":
		s = ev.Actor + " made " + users + " the owner of " + group
	case "muted", "unmuted":
		if users == "" {
			s = ev.Actor + " " + ev.Type + " everyone in " + group
		} else {
			s = ev.Actor + " " + ev.Type + " " + users + " in " + group
		}
		if ms, err := strconv.ParseInt(ev.Detail, 10, 64); err == nil && ev.Type == "muted" {
			return s + " until " + untilText(ms)
		}
	case "updated":
		s = ev.Actor + " updated " + group
		if d := updateText(ev.Detail); d != "" {
			return s + " (" + d + ")"
		}
	case "dissolved":
		s = ev.Actor + " dissolved " + group
	default:
		s = strings.Join(strings.Fields(ev.Actor+" "+ev.Type+" "+users), " ") + " in " + group
	}
	switch ev.Type {
	case "created", "role", "owner": // the detail repeats the name or the role
	default:
		if ev.Detail != "" {
			s += " (" + ev.Detail + ")"
		}
	}
	return s
}

// untilText renders a mute's end (Unix ms) on the local clock.
func untilText(ms int64) string {
	if ms == 0 {
		return "off"
	}
	return time.UnixMilli(ms).Local().Format("2006-01-02 15:04")
}

// updateText renders an "updated" event's detail, a JSON object of the
// changed settings, as "join_policy=open, name=crew"; other text as is.
func updateText(detail string) string {
	var changed map[string]any
	if json.Unmarshal([]byte(detail), &changed) != nil {
		return detail
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(changed)) {
		v := fmt.Sprint(changed[k])
		if f, ok := changed[k].(float64); ok && k == "muted_until" {
			v = untilText(int64(f))
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ", ")
}

// humanSize renders a byte count: "512 B", "1.5 KB", "12 KB", "3.4 MB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n)/unit, []string{"KB", "MB", "GB", "TB"}
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// removedByAdmin: a message, or the recall of one, that a moderator
// removed through the admin API (its event says so).
func removedByAdmin(m client.Message) bool {
	return m.Event != nil && m.Event.Type == "removed_by_admin"
}
