package chat

import (
	"context"
	"fmt"
	"strings"

	"github.com/magpie-im/magpie/client"
)

// social runs the group and friend commands.
func (u *ui) social(ctx context.Context, cur target, cmd command) {
	switch cmd.kind {
	case cmdGroups:
		u.listGroups(ctx)
	case cmdGroup:
		t, err := u.findGroup(ctx, cmd.to)
		if err != nil {
			u.errorf(":g %s: %v", cmd.to, err)
			return
		}
		u.setCurrent(t)
		u.printf("to %s (%s)", t.name, t.group)
	case cmdCreate:
		g, err := u.c.CreateGroup(ctx, client.NewGroup{Name: cmd.to, Members: cmd.users})
		if err != nil {
			u.errorf(":create %s: %v", cmd.to, err)
			return
		}
		u.setName(g.ID, g.Name)
		t := target{group: g.ID, name: g.Name}
		u.setCurrent(t)
		line := fmt.Sprintf("created %s (%s)", g.Name, g.ID)
		if len(cmd.users) > 0 {
			line += " with " + strings.Join(cmd.users, ", ")
		}
		u.printf("%s", line)
		u.printf("to %s (%s)", t.name, t.group)
	case cmdInvite, cmdKick, cmdLeave:
		u.member(ctx, cur, cmd)
	case cmdJoin, cmdRequests, cmdApprove, cmdReject, cmdNotice:
		u.groupAdmin(ctx, cur, cmd)
	default:
		u.friend(ctx, cmd)
	}
}

func (u *ui) listGroups(ctx context.Context) {
	groups, err := u.c.Groups(ctx)
	if err != nil {
		u.errorf(":groups: %v", err)
		return
	}
	if len(groups) == 0 {
		u.printf("groups: (none)")
	}
	for _, g := range groups {
		u.setName(g.ID, g.Name)
		u.printf("group: %s (%s), %d members, owner %s", g.Name, g.ID, g.MemberCount, g.Owner)
	}
}

// findGroup resolves :g's argument: one of my groups by id or name (exact,
// then ignoring case), else an id the server shows me (an open group).
func (u *ui) findGroup(ctx context.Context, arg string) (target, error) {
	groups, err := u.c.Groups(ctx)
	if err != nil {
		return target{}, err
	}
	var byName, byFold []client.Group
	for _, g := range groups {
		u.setName(g.ID, g.Name)
		switch {
		case g.ID == arg:
			return target{group: g.ID, name: g.Name}, nil
		case g.Name == arg:
			byName = append(byName, g)
		case strings.EqualFold(g.Name, arg):
			byFold = append(byFold, g)
		}
	}
	if len(byName) == 0 {
		byName = byFold
	}
	switch len(byName) {
	case 1:
		return target{group: byName[0].ID, name: byName[0].Name}, nil
	case 0:
		if client.IsGroupID(arg) {
			if g, err := u.c.Group(ctx, arg); err == nil {
				return target{group: g.ID, name: g.Name}, nil
			}
		}
		return target{}, fmt.Errorf("no such group of mine (see :groups)")
	}
	ids := make([]string, len(byName))
	for i, g := range byName {
		ids[i] = g.ID
	}
	return target{}, fmt.Errorf("%d groups have that name (%s); use the id", len(ids), strings.Join(ids, ", "))
}

// member runs :invite, :kick and :leave on the current group.
func (u *ui) member(ctx context.Context, cur target, cmd command) {
	word := map[cmdKind]string{cmdInvite: ":invite", cmdKick: ":kick", cmdLeave: ":leave"}[cmd.kind]
	if cur.group == "" {
		u.errorf("%s: the current conversation is not a group (use :g GROUP)", word)
		return
	}
	var err error
	switch cmd.kind {
	case cmdInvite:
		if _, err = u.c.AddMembers(ctx, cur.group, cmd.users...); err == nil {
			u.printf("invited %s to %s", strings.Join(cmd.users, ", "), cur.label())
		}
	case cmdKick:
		if err = u.c.RemoveMember(ctx, cur.group, cmd.to); err == nil {
			u.printf("removed %s from %s", cmd.to, cur.label())
		}
	case cmdLeave:
		if err = u.c.LeaveGroup(ctx, cur.group); err == nil {
			u.mu.Lock()
			if u.current == cur {
				u.current = target{}
			}
			u.mu.Unlock()
			u.printf("left %s", cur.label())
		}
	}
	if err != nil {
		u.errorf("%s: %v", word, err)
	}
}

// friend runs the friend and block commands.
func (u *ui) friend(ctx context.Context, cmd command) {
	var err error
	switch cmd.kind {
	case cmdFriends:
		var fl client.FriendList
		if fl, err = u.c.Friends(ctx); err == nil {
			u.printFriends(fl)
		}
	case cmdAdd:
		var st client.FriendStatus
		if st, err = u.c.RequestFriend(ctx, cmd.to); err == nil {
			if st == client.FriendsNow {
				u.printf("friends with %s", cmd.to)
			} else {
				u.printf("friend request sent to %s", cmd.to)
			}
		}
	case cmdAccept:
		if err = u.c.AcceptFriend(ctx, cmd.to); err == nil {
			u.printf("friends with %s", cmd.to)
		}
	case cmdDecline:
		if err = u.c.DeclineFriend(ctx, cmd.to); err == nil {
			u.printf("declined %s", cmd.to)
		}
	case cmdBlock:
		if err = u.c.Block(ctx, cmd.to); err == nil {
			u.printf("blocked %s", cmd.to)
		}
	case cmdUnblock:
		if err = u.c.Unblock(ctx, cmd.to); err == nil {
			u.printf("unblocked %s", cmd.to)
		}
	case cmdRemark:
		if _, err = u.c.UpdateFriend(ctx, cmd.to, client.FriendUpdate{Remark: &cmd.text}); err == nil {
			if cmd.text == "" {
				u.printf("no remark for %s", cmd.to)
			} else {
				u.printf("%s is %q to me", cmd.to, cmd.text)
			}
		}
	case cmdFriendGroup:
		if _, err = u.c.UpdateFriend(ctx, cmd.to, client.FriendUpdate{Group: &cmd.text}); err == nil {
			if cmd.text == "" {
				u.printf("%s is in no friend group", cmd.to)
			} else {
				u.printf("%s is in friend group %s", cmd.to, cmd.text)
			}
		}
	case cmdFriendGroups:
		var groups []client.FriendGroup
		if groups, err = u.c.FriendGroups(ctx); err == nil {
			if len(groups) == 0 {
				u.printf("friend groups: (none)")
			}
			for _, g := range groups {
				names := make([]string, len(g.Friends))
				for i, f := range g.Friends {
					names[i] = f.Username
				}
				u.printf("friend group %s: %s", g.Name, strings.Join(names, ", "))
			}
		}
	case cmdPolicy:
		if err = u.c.SetFriendPolicy(ctx, client.FriendPolicy(cmd.text)); err == nil {
			u.printf("friend requests: %s", policyText(client.FriendPolicy(cmd.text)))
		}
	}
	if err != nil {
		word := map[cmdKind]string{cmdFriends: ":friends", cmdAdd: ":add", cmdAccept: ":accept",
			cmdDecline: ":decline", cmdBlock: ":block", cmdUnblock: ":unblock", cmdRemark: ":remark",
			cmdFriendGroup: ":fgroup", cmdFriendGroups: ":fgroups", cmdPolicy: ":policy"}[cmd.kind]
		u.errorf("%s %s: %v", word, cmd.to, err)
	}
}

func (u *ui) printFriends(fl client.FriendList) {
	lines := 0
	for _, l := range []struct {
		label string
		fs    []client.Friend
	}{{"friend", fl.Friends}, {"friend request from", fl.Incoming}, {"friend request to", fl.Outgoing}, {"blocked", fl.Blocked}} {
		for _, f := range l.fs {
			line := l.label + ": " + f.Username
			if f.Remark != "" {
				line += fmt.Sprintf(" %q", f.Remark)
			}
			if f.Group != "" {
				line += " [" + f.Group + "]"
			}
			u.printf("%s", line)
			lines++
		}
	}
	if lines == 0 {
		u.printf("friends: (none)")
	}
	if fl.Policy != "" && fl.Policy != client.FriendApprove {
		u.printf("friend requests: %s", policyText(fl.Policy))
	}
}

func policyText(p client.FriendPolicy) string {
	switch p {
	case client.FriendAnyone:
		return "anyone may add me at once"
	case client.FriendNobody:
		return "nobody may add me"
	}
	return "ask me first"
}

// groupAdmin runs :join, and :requests, :approve, :reject and :notice on
// the current group.
func (u *ui) groupAdmin(ctx context.Context, cur target, cmd command) {
	word := map[cmdKind]string{cmdJoin: ":join", cmdRequests: ":requests", cmdApprove: ":approve",
		cmdReject: ":reject", cmdNotice: ":notice"}[cmd.kind]
	if cmd.kind == cmdJoin {
		g, err := u.c.JoinGroup(ctx, cmd.to)
		switch {
		case err != nil:
			u.errorf(":join %s: %v", cmd.to, err)
		case g.Requested:
			u.printf("asked to join %s; an owner or admin will answer", cmd.to)
		default:
			u.setName(g.ID, g.Name)
			u.printf("joined %s (%s)", g.Name, g.ID)
		}
		return
	}
	if cur.group == "" {
		u.errorf("%s: the current conversation is not a group (use :g GROUP)", word)
		return
	}
	var err error
	switch cmd.kind {
	case cmdRequests:
		var reqs []client.JoinRequest
		if reqs, err = u.c.JoinRequests(ctx, cur.group); err == nil {
			if len(reqs) == 0 {
				u.printf("join requests: (none)")
			}
			for _, r := range reqs {
				u.printf("join request: %s", r.Username)
			}
		}
	case cmdApprove:
		if err = u.c.ApproveJoin(ctx, cur.group, cmd.to); err == nil {
			u.printf("%s may join %s", cmd.to, cur.label())
		}
	case cmdReject:
		if err = u.c.RejectJoin(ctx, cur.group, cmd.to); err == nil {
			u.printf("refused %s's request to join %s", cmd.to, cur.label())
		}
	case cmdNotice:
		if _, err = u.c.UpdateGroup(ctx, cur.group, client.GroupUpdate{Notice: &cmd.text}); err == nil {
			u.printf("notice of %s: %s", cur.label(), cmd.text)
		}
	}
	if err != nil {
		u.errorf("%s: %v", word, err)
	}
}
