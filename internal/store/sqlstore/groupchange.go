package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// groupTx is one attempt at one ChangeGroup, inside its transaction.
type groupTx struct {
	d       dialect
	tx      *sql.Tx
	c       store.GroupChange
	at      int64
	lastSeq int64
	policy  store.JoinPolicy
	maxOwn  int // the group's own member limit, 0: none
	actor   memberRow
	res     store.GroupChangeResult
}

type memberRow struct {
	current bool
	role    store.Role
}

func (m memberRow) rule() rules.Member { return rules.Member{Current: m.current, Role: m.role} }

func (s *Store) ChangeGroup(ctx context.Context, c store.GroupChange) (store.GroupChangeResult, error) {
	if err := s.check(); err != nil {
		return store.GroupChangeResult{}, err
	}
	if !groupIDArg(c.GroupID) {
		return store.GroupChangeResult{}, fmt.Errorf("group %q: %w", c.GroupID, store.ErrNotFound)
	}
	at := millis(c.At)
	if at == 0 {
		at = nowMillis()
	}
	var res store.GroupChangeResult
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		g := &groupTx{d: s.d, tx: tx, c: c, at: at}
		if err := g.run(ctx); err != nil {
			return err
		}
		if g.res.Event != nil {
			if err := touchGroup(ctx, tx, c.GroupID, g.res.Former); err != nil {
				return err
			}
		}
		var err error
		g.res.Group, err = loadGroup(ctx, tx, c.GroupID, true)
		res = g.res
		return err
	})
	if err != nil {
		return store.GroupChangeResult{}, wrapErr("change group", err)
	}
	return res, nil
}

func (g *groupTx) run(ctx context.Context) error {
	var kind, policy string
	var dissolved int64
	err := g.tx.QueryRowContext(ctx, `SELECT kind, last_seq, join_policy, dissolved_at, max_members FROM conversations WHERE id = $1`+
		g.d.forUpdate(), g.c.GroupID).Scan(&kind, &g.lastSeq, &policy, &dissolved, &g.maxOwn)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (kind != string(store.Group) || dissolved != 0)) {
		return fmt.Errorf("group %q: %w", g.c.GroupID, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	g.policy = store.JoinPolicy(policy)
	if g.actor, err = g.member(ctx, g.c.ActorID); err != nil {
		return err
	}
	if g.c.Op == store.OpJoin {
		return g.join(ctx)
	}
	if !g.actor.current {
		return fmt.Errorf("group %q: %w", g.c.GroupID, store.ErrNotMember)
	}
	switch g.c.Op {
	case store.OpAdd:
		return g.add(ctx)
	case store.OpLeave:
		return g.leave(ctx, g.c.ActorID)
	case store.OpRemove:
		return g.remove(ctx)
	case store.OpSetRole:
		return g.setRole(ctx)
	case store.OpTransfer:
		return g.transfer(ctx)
	case store.OpMute:
		return g.mute(ctx)
	case store.OpUpdate:
		return g.update(ctx)
	case store.OpDissolve:
		return g.dissolve(ctx)
	case store.OpApprove, store.OpReject:
		return g.answerRequest(ctx)
	}
	return fmt.Errorf("unknown group op %d", g.c.Op)
}

func (g *groupTx) member(ctx context.Context, uid int64) (memberRow, error) {
	var role string
	var left sql.NullInt64
	err := g.tx.QueryRowContext(ctx, `SELECT role, left_seq FROM members WHERE conversation_id = $1 AND user_id = $2`,
		g.c.GroupID, uid).Scan(&role, &left)
	if errors.Is(err, sql.ErrNoRows) {
		return memberRow{}, nil
	}
	return memberRow{current: err == nil && !left.Valid, role: store.Role(role)}, err
}

func (g *groupTx) target() (int64, error) {
	uid, r := rules.Target(g.c.Targets)
	return uid, rules.Err(r)
}

// currentTarget is the one target, who must be a current member.
func (g *groupTx) currentTarget(ctx context.Context) (int64, memberRow, error) {
	uid, err := g.target()
	if err != nil {
		return 0, memberRow{}, err
	}
	m, err := g.member(ctx, uid)
	if err == nil {
		err = rules.Err(rules.CurrentTarget(m.rule()))
	}
	return uid, m, err
}

func (g *groupTx) event(ctx context.Context, ev store.Event) (int64, error) {
	m, err := appendEvent(ctx, g.tx, g.c.GroupID, g.lastSeq, g.c.ActorID, ev, g.at)
	if err != nil {
		return 0, err
	}
	g.lastSeq = int64(m.Seq)
	g.res.Event = &m
	return g.lastSeq, nil
}

func (g *groupTx) count(ctx context.Context) (int, error) {
	var n int
	err := g.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE conversation_id = $1 AND left_seq IS NULL`, g.c.GroupID).Scan(&n)
	return n, err
}

// admit makes users members from the event at seq on: their window starts
// at it and their cursors sit on it, so they have nothing unread.
func (g *groupTx) admit(ctx context.Context, users []int64, seq int64) error {
	for _, uid := range users {
		if _, err := g.tx.ExecContext(ctx, `DELETE FROM group_join_requests WHERE conversation_id = $1 AND user_id = $2`,
			g.c.GroupID, uid); err != nil {
			return err
		}
		// A returning member's last stay becomes a past window before the
		// row is reused for the new one.
		if _, err := g.tx.ExecContext(ctx, `INSERT INTO member_windows(conversation_id, user_id, from_seq, to_seq)
			SELECT conversation_id, user_id, joined_seq, left_seq FROM members
			WHERE conversation_id = $1 AND user_id = $2 AND left_seq IS NOT NULL AND left_seq > joined_seq
			ON CONFLICT DO NOTHING`, g.c.GroupID, uid); err != nil {
			return fmt.Errorf("admit member: keep past window: %w", err)
		}
		if _, err := g.tx.ExecContext(ctx, `INSERT INTO members(conversation_id, user_id, delivered_seq, read_seq, joined_seq, role, joined_at)
			VALUES ($1, $2, $3, $3, $4, 'member', $5)
			ON CONFLICT (conversation_id, user_id) DO UPDATE SET delivered_seq = $3, read_seq = $3, joined_seq = $4,
				left_seq = NULL, role = 'member', muted_until = 0, joined_at = $5`,
			g.c.GroupID, uid, seq, seq-1, g.at); err != nil {
			return fmt.Errorf("admit member: %w", err)
		}
	}
	return nil
}

func (g *groupTx) checkSize(ctx context.Context, adding int) error {
	limit := effectiveMax(g.c.MaxSize, g.maxOwn)
	if limit <= 0 {
		return nil
	}
	n, err := g.count(ctx)
	if err != nil {
		return err
	}
	return rules.Err(rules.Fits(n, adding, limit))
}

func (g *groupTx) add(ctx context.Context) error {
	if r := rules.MayAdd(g.actor.rule(), g.policy); r != nil {
		return r
	}
	users := slices.Clone(g.c.Targets)
	slices.Sort(users)
	users = slices.Compact(users)
	var fresh []int64
	for _, uid := range users {
		m, err := g.member(ctx, uid)
		if err != nil {
			return err
		}
		if !m.current {
			fresh = append(fresh, uid)
		}
	}
	if len(fresh) == 0 {
		return nil // all already members: nothing happened, no event
	}
	if n, err := countUsers(ctx, g.tx, fresh); err != nil {
		return err
	} else if n != len(fresh) {
		return rules.Refuse(rules.NoSuchUser)
	}
	if err := g.checkSize(ctx, len(fresh)); err != nil {
		return err
	}
	seq, err := g.event(ctx, narrowEvent(g.c.Event, fresh))
	if err != nil {
		return err
	}
	return g.admit(ctx, fresh, seq)
}

func (g *groupTx) join(ctx context.Context) error {
	if g.actor.current {
		return nil
	}
	if g.policy == store.JoinApproval {
		g.res.Requested = true
		_, err := g.tx.ExecContext(ctx, `INSERT INTO group_join_requests(conversation_id, user_id, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (conversation_id, user_id) DO NOTHING`, g.c.GroupID, g.c.ActorID, g.at)
		return err
	}
	if r := rules.MayJoin(g.policy); r != nil {
		return r
	}
	if err := g.checkSize(ctx, 1); err != nil {
		return err
	}
	seq, err := g.event(ctx, narrowEvent(g.c.Event, []int64{g.c.ActorID}))
	if err != nil {
		return err
	}
	return g.admit(ctx, []int64{g.c.ActorID}, seq)
}

// answerRequest grants (OpApprove: the user joins, within the limits) or
// drops (OpReject) a pending join request; owner and admins only.
func (g *groupTx) answerRequest(ctx context.Context) error {
	if r := rules.OnlyModerators(g.actor.rule()); r != nil {
		return r
	}
	uid, err := g.target()
	if err != nil {
		return err
	}
	res, err := g.tx.ExecContext(ctx, `DELETE FROM group_join_requests WHERE conversation_id = $1 AND user_id = $2`, g.c.GroupID, uid)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return rules.Refuse(rules.NoJoinRequest)
	}
	if g.c.Op == store.OpReject {
		return nil
	}
	if m, err := g.member(ctx, uid); err != nil || m.current {
		return err // added meanwhile: the request is answered
	}
	if err := g.checkSize(ctx, 1); err != nil {
		return err
	}
	seq, err := g.event(ctx, narrowEvent(g.c.Event, []int64{uid}))
	if err != nil {
		return err
	}
	return g.admit(ctx, []int64{uid}, seq)
}

// leave ends uid's membership with the current event, which is the last
// message their window shows.
func (g *groupTx) leave(ctx context.Context, uid int64) error {
	if uid == g.c.ActorID {
		if r := rules.MayLeave(g.actor.rule()); r != nil {
			return r
		}
	}
	seq, err := g.event(ctx, g.c.Event)
	if err != nil {
		return err
	}
	if _, err := g.tx.ExecContext(ctx, `UPDATE members SET left_seq = $1, muted_until = 0,
		delivered_seq = CASE WHEN delivered_seq > $1 THEN delivered_seq ELSE $1 END
		WHERE conversation_id = $2 AND user_id = $3`, seq, g.c.GroupID, uid); err != nil {
		return err
	}
	g.res.Former = append(g.res.Former, uid)
	return nil
}

func (g *groupTx) remove(ctx context.Context) error {
	uid, m, err := g.currentTarget(ctx)
	if err != nil {
		return err
	}
	if uid == g.c.ActorID {
		return g.leave(ctx, uid) // removing oneself is leaving
	}
	if r := rules.MayRemove(g.actor.rule(), m.rule()); r != nil {
		return r
	}
	return g.leave(ctx, uid)
}

func (g *groupTx) setRole(ctx context.Context) error {
	t, _ := g.target()
	if r := rules.MaySetRoleAtAll(g.actor.rule(), t == g.c.ActorID); r != nil {
		return r
	}
	uid, m, err := g.currentTarget(ctx)
	if err != nil {
		return err
	}
	if r := rules.MaySetRole(uid == g.c.ActorID, g.c.Role); r != nil {
		return r
	}
	if m.role == g.c.Role {
		return nil // nothing changes, no event
	}
	return g.setMemberRole(ctx, uid, g.c.Role, true)
}

func (g *groupTx) setMemberRole(ctx context.Context, uid int64, role store.Role, withEvent bool) error {
	if withEvent {
		if _, err := g.event(ctx, g.c.Event); err != nil {
			return err
		}
	}
	_, err := g.tx.ExecContext(ctx, `UPDATE members SET role = $1 WHERE conversation_id = $2 AND user_id = $3`,
		string(role), g.c.GroupID, uid)
	return err
}

func (g *groupTx) transfer(ctx context.Context) error {
	if r := rules.OnlyOwner(g.actor.rule()); r != nil {
		return r
	}
	uid, _, err := g.currentTarget(ctx)
	if err != nil || uid == g.c.ActorID {
		return err
	}
	if err := g.setMemberRole(ctx, g.c.ActorID, store.RoleAdmin, true); err != nil {
		return err
	}
	// The new owner's mute ends with the promotion.
	_, err = g.tx.ExecContext(ctx, `UPDATE members SET role = $1, muted_until = 0 WHERE conversation_id = $2 AND user_id = $3`,
		string(store.RoleOwner), g.c.GroupID, uid)
	return err
}

func (g *groupTx) mute(ctx context.Context) error {
	if r := rules.OnlyModerators(g.actor.rule()); r != nil {
		return r
	}
	uid, m, err := g.currentTarget(ctx)
	if err != nil {
		return err
	}
	if r := rules.MayMute(g.actor.rule(), m.rule(), uid == g.c.ActorID); r != nil {
		return r
	}
	if _, err := g.event(ctx, g.c.Event); err != nil {
		return err
	}
	_, err = g.tx.ExecContext(ctx, `UPDATE members SET muted_until = $1 WHERE conversation_id = $2 AND user_id = $3`,
		millis(g.c.Until), g.c.GroupID, uid)
	return err
}

func (g *groupTx) update(ctx context.Context) error {
	if r := rules.OnlyModerators(g.actor.rule()); r != nil {
		return r
	}
	if g.c.Name == nil && g.c.JoinPolicy == nil && g.c.MutedUntil == nil && g.c.Intro == nil && g.c.Notice == nil &&
		g.c.AvatarURL == nil && g.c.MaxMembers == nil {
		return nil
	}
	if g.c.MaxMembers != nil && *g.c.MaxMembers > 0 {
		n, err := g.count(ctx)
		if err != nil {
			return err
		}
		if n > *g.c.MaxMembers {
			return rules.Refuse(rules.LimitBelowCount)
		}
	}
	if _, err := g.event(ctx, g.c.Event); err != nil {
		return err
	}
	set := func(col string, v any) error {
		_, err := g.tx.ExecContext(ctx, `UPDATE conversations SET `+col+` = $1 WHERE id = $2`, v, g.c.GroupID)
		return err
	}
	if g.c.Name != nil {
		if err := set("name", *g.c.Name); err != nil {
			return err
		}
	}
	if g.c.JoinPolicy != nil {
		if err := set("join_policy", string(*g.c.JoinPolicy)); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		col string
		v   *string
	}{{"intro", g.c.Intro}, {"notice", g.c.Notice}, {"avatar_url", g.c.AvatarURL}} {
		if f.v != nil {
			if err := set(f.col, *f.v); err != nil {
				return err
			}
		}
	}
	if g.c.MaxMembers != nil {
		if err := set("max_members", *g.c.MaxMembers); err != nil {
			return err
		}
	}
	if g.c.MutedUntil != nil {
		return set("muted_until", millis(*g.c.MutedUntil))
	}
	return nil
}

// dissolve ends every membership with the "dissolved" event; the row stays
// so that former members keep their history.
func (g *groupTx) dissolve(ctx context.Context) error {
	if r := rules.OnlyOwner(g.actor.rule()); r != nil {
		return r
	}
	rows, err := g.tx.QueryContext(ctx, `SELECT user_id FROM members WHERE conversation_id = $1 AND left_seq IS NULL ORDER BY user_id`, g.c.GroupID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			rows.Close()
			return err
		}
		g.res.Former = append(g.res.Former, uid)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	seq, err := g.event(ctx, g.c.Event)
	if err != nil {
		return err
	}
	if _, err := g.tx.ExecContext(ctx, `UPDATE members SET left_seq = $1 WHERE conversation_id = $2 AND left_seq IS NULL`, seq, g.c.GroupID); err != nil {
		return err
	}
	_, err = g.tx.ExecContext(ctx, `UPDATE conversations SET dissolved_at = $1 WHERE id = $2`, g.at, g.c.GroupID)
	return err
}
