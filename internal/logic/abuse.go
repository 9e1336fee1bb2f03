package logic

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// Abuse limits (docs/operations.md, "Abuse limits"). Every bucket here is
// per logic node: in a cluster an attacker who spreads requests over N
// nodes gets N budgets, which bounds the damage without a shared store
// round trip on every login and send.

// Client is what the edge knows about who is asking. Addr is the client's
// address after --trusted-proxies (the API's clientAddr); the zero Addr
// (unknown, e.g. a caller inside the process) skips the per-address limits.
type Client struct {
	Addr netip.Addr
	App  string // the app named at register or login ("" : by Host, else the default)
	Host string // the request's host name, which apps may claim (AppSettings.Hosts)
}

// Bursts of the abuse limiters: how many attempts an idle key may make at
// once before its rate applies.
const (
	loginIPBurst  = 20 // failed logins of one address (a typo-prone office behind one NAT)
	registerBurst = 10 // registrations of one address
	// The global failed-login bucket holds globalBurstSecs seconds of its
	// rate, so a short spike of typos does not lock everyone out.
	globalBurstSecs = 10
)

// addrKey is the bucket of an address: IPv4 addresses one by one, IPv6 by
// their /64, since one host is routinely given a whole /64 and could
// otherwise rotate through 2^64 buckets.
func addrKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// limited reports whether the per-address limits apply to c.
func (s *Service) limited(c Client) bool {
	if !c.Addr.IsValid() {
		return false
	}
	a := c.Addr.Unmap()
	for _, p := range s.cfg.LimitExempt {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Limit names a limit in the refusal counters (Stats.Limited).
type Limit int

const (
	LimitLoginAddr Limit = iota
	LimitLoginUser
	LimitLoginGlobal
	LimitRegisterAddr
	LimitHashBusy
	LimitUserSends
	LimitPushKey
	NumLimits // the number of limits
)

// String is the limit's metric label.
func (l Limit) String() string {
	return [...]string{"login_addr", "login_user", "login_global", "register_addr", "hash_busy", "user_sends", "push_key"}[l]
}

// refuse counts a refusal by limit l and returns err.
func (s *Service) refuse(l Limit, err error) error {
	s.stats.limited[l].Add(1)
	return err
}

// admitLogin applies the login limits that must be checked before the
// password is hashed: the client's address, the username, and the node's
// failed-login budget. It returns a func that gives back the address and
// global tokens once the login succeeded, so only failures use them up: a
// spray burns its own budget, real users behind the same address do not.
func (s *Service) admitLogin(c Client, username string) (succeeded func(), err error) {
	now := s.now()
	var ipKey string
	if s.loginIPs != nil && s.limited(c) {
		ipKey = addrKey(c.Addr)
		if ok, wait := s.loginIPs.allow(ipKey, now); !ok {
			return nil, s.refuse(LimitLoginAddr, rateLimited("too many failed logins from this address", wait))
		}
	}
	if username == "" {
		// A token login (POST /v1/login/token): the user is not known
		// before the token is verified, so only the failure limits apply.
	} else if ok, wait := s.logins.allow(username, now); !ok {
		return nil, s.refuse(LimitLoginUser, rateLimited("too many login attempts", wait))
	}
	if s.loginsAll != nil {
		if ok, wait := s.loginsAll.allow("", now); !ok {
			if ipKey != "" {
				s.loginIPs.refund(ipKey)
			}
			return nil, s.refuse(LimitLoginGlobal, rateLimited("too many failed logins on this server, retry later", wait))
		}
	}
	return func() {
		if ipKey != "" {
			s.loginIPs.refund(ipKey)
		}
		if s.loginsAll != nil {
			s.loginsAll.refund("")
		}
	}, nil
}

// admitRegister applies the per-address registration limit.
func (s *Service) admitRegister(c Client) error {
	if s.registers == nil || !s.limited(c) {
		return nil
	}
	if ok, wait := s.registers.allow(addrKey(c.Addr), s.now()); !ok {
		return s.refuse(LimitRegisterAddr, rateLimited("too many registrations from this address", wait))
	}
	return nil
}

// errHashBusy answers a request that waited HashWait for a hashing slot:
// the node is saturated with password work and the client should retry.
var errHashBusy = unavailable("server busy checking passwords, retry", time.Second, ErrOverloaded)

// hashWithin runs fn (one Argon2id hash) in one of HashConcurrency slots,
// waiting at most HashWait or until ctx ends; it never queues forever, so
// a flood of hashes turns into 503s instead of a pile of goroutines each
// holding a request and, soon, 19 MiB.
func (s *Service) hashWithin(ctx context.Context, fn func()) error {
	t := time.NewTimer(s.cfg.HashWait)
	defer t.Stop()
	select {
	case s.hashSem <- struct{}{}:
	case <-t.C:
		return s.refuse(LimitHashBusy, errHashBusy)
	case <-ctx.Done():
		return s.refuse(LimitHashBusy, errHashBusy)
	}
	defer func() { <-s.hashSem }()
	s.stats.hashes.Add(1)
	fn()
	return nil
}

// allowSend takes one token from the user's send budget, shared by every
// path a user sends through on this node: the long connection (each
// connection also has the gateway's --conn-rate) and POST /v1/messages.
func (s *Service) allowSend(userID int64) error {
	if s.userSends == nil {
		return nil
	}
	if ok, wait := s.userSends.allow(strconv.FormatInt(userID, 10), s.now()); !ok {
		return s.refuse(LimitUserSends, rateLimited(fmt.Sprintf("too many messages (limit %g per second per user)", s.cfg.UserSendRate), wait))
	}
	return nil
}

// allowPush takes one token from a push key's budget.
func (s *Service) allowPush(keyID string) error {
	if s.pushes == nil {
		return nil
	}
	if ok, wait := s.pushes.allow(keyID, s.now()); !ok {
		return s.refuse(LimitPushKey, rateLimited(fmt.Sprintf("too many push requests for this key (limit %g per second)", s.cfg.PushRate), wait))
	}
	return nil
}

// newOptionalLimiter is a limiter for rate, or nil (no limit) for rate 0.
func newOptionalLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	return newLimiter(rate, max(burst, 1))
}

// capSessions adds to kick the oldest of the user's active sessions while
// the new login would leave more than MaxSessionsPerUser: a login loop with
// fresh device names cannot grow the session table without bound. The
// oldest go, not the new one, so a user who lost track of old devices is
// never locked out (the sessions a login ends are listed in docs/api.md).
func (s *Service) capSessions(active, kick []store.Session) []store.Session {
	max := s.cfg.MaxSessionsPerUser
	if max <= 0 {
		return kick
	}
	going := make(map[string]bool, len(kick))
	for _, k := range kick {
		going[k.ID] = true
	}
	var stay []store.Session
	for _, a := range active {
		if !going[a.ID] {
			stay = append(stay, a)
		}
	}
	if len(stay) < max {
		return kick
	}
	sort.Slice(stay, func(i, j int) bool { return stay[i].CreatedAt.Before(stay[j].CreatedAt) })
	return append(kick, stay[:len(stay)-max+1]...)
}
