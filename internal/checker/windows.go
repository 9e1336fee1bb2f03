package checker

import "sort"

// Membership windows (scenario 11). A group member sees the messages from
// the event that made them a member (created, added, joined) up to the
// event that ended it (left, removed), both included, for every stay; a
// user who left and came back has several windows. Once a conversation has
// a window recorded (Member), the checker expects its messages by window,
// not by the members an invoke named: every device of a user whose window
// holds a message's seq must show it, and no device may show a seq outside
// its user's windows.
//
// One exception follows the sync protocol: a device syncs the groups its
// user is a member of now and the ones it already holds (a cursor); a
// group the user joined and left while the device was away is not
// brought to it. So a window of a group the user is no longer in is
// expected only on the devices that show or sent something of that group.

// window is a closed seq range [from, to]; to == 0: still open.
type window struct{ from, to uint64 }

func (w window) holds(seq uint64) bool { return seq >= w.from && (w.to == 0 || seq <= w.to) }

type memberEvent struct {
	user string
	join bool
	seq  uint64
}

// Member records that the event at seq of conv began (join) or ended
// (leave) user's membership. The harness learns it from the group event
// messages its devices show; recording the same event twice is harmless.
func (r *Recorder) Member(conv, user string, join bool, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op := "leave"
	if join {
		op = "join"
	}
	if r.members == nil {
		r.members = map[string]map[memberKey]memberEvent{}
	}
	k := memberKey{user, seq}
	if _, ok := r.members[conv][k]; ok {
		return
	}
	r.emit(event{Ev: "member", Conv: conv, User: user, Op: op, Seq: seq})
	if r.members[conv] == nil {
		r.members[conv] = map[memberKey]memberEvent{}
	}
	r.members[conv][k] = memberEvent{user: user, join: join, seq: seq}
}

type memberKey struct {
	user string
	seq  uint64
}

// windows is every user's windows per windowed conversation.
type windows map[string]*convWindows

type convWindows struct {
	users map[string][]window // by seq
	names []string            // the users, sorted
}

// windowsLocked builds the windows from the member events: a join opens
// one (a join while open is the same stay), a leave closes the open one.
func (r *Recorder) windowsLocked() windows {
	out := windows{}
	for conv, evs := range r.members {
		list := make([]memberEvent, 0, len(evs))
		for _, e := range evs {
			list = append(list, e)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
		users := map[string][]window{}
		var names []string
		for _, e := range list {
			if _, ok := users[e.user]; !ok {
				names = append(names, e.user)
			}
			ws := users[e.user]
			open := len(ws) > 0 && ws[len(ws)-1].to == 0
			switch {
			case e.join && !open:
				ws = append(ws, window{from: e.seq})
			case !e.join && open:
				ws[len(ws)-1].to = e.seq
			}
			users[e.user] = ws
		}
		sort.Strings(names)
		out[conv] = &convWindows{users: users, names: names}
	}
	return out
}

// in reports whether user may see seq of conv, and whether conv has
// windows at all (if not, the invoke's members decide).
func (w windows) in(conv, user string, seq uint64) (in, windowed bool) {
	cw, ok := w[conv]
	if !ok {
		return false, false
	}
	for _, win := range cw.users[user] {
		if win.holds(seq) {
			return true, true
		}
	}
	return false, true
}

// member reports whether user's last window of conv is still open.
func (w windows) member(conv, user string) bool {
	cw, ok := w[conv]
	if !ok {
		return false
	}
	ws := cw.users[user]
	return len(ws) > 0 && ws[len(ws)-1].to == 0
}
