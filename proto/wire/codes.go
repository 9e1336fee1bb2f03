package wire

//go:generate go run ./gencodes -root ../..

// Code is an error or disconnect code sent in Error.code and Kick.code.
// The constants are generated from codes.json, the one table of codes
// (name, action, HTTP status, meaning), which is only ever appended to:
// codes are never renumbered or reused.
type Code uint32

// Action tells a client what to do about a code.
type Action int

const (
	GiveUp    Action = iota // the request is wrong; do not repeat it
	Retry                   // repeat the request (with the same client_msg_id), after retry_after_ms if set
	Reconnect               // open a new connection (possibly to another gateway) and sync
	Relogin                 // the token is unusable: log in again over HTTP
)

type codeInfo struct {
	name   string
	action Action
	http   int // 0: the code is only sent on the long connection
}

func (c Code) info() (codeInfo, bool) {
	if c == 0 || int(c) >= len(codes) {
		return codeInfo{}, false
	}
	return codes[c], true
}

// String returns the code's stable name, as used in HTTP error bodies.
func (c Code) String() string {
	if i, ok := c.info(); ok {
		return i.name
	}
	return "unknown"
}

// Action says what a client should do after receiving c.
func (c Code) Action() Action {
	i, _ := c.info()
	return i.action // GiveUp for unknown codes
}

// HTTPStatus is the status the HTTP API answers with c: 500 for codes that
// belong to the long connection only, and for unknown ones.
func (c Code) HTTPStatus() int {
	if i, ok := c.info(); ok && i.http != 0 {
		return i.http
	}
	return 500
}

// KickReconnect is a kick's reconnect flag for c, derived from c's action
// so the flag and the code table cannot disagree: Reconnect and Retry
// codes say connect again (as you are); GiveUp codes say do not, and so
// do Relogin codes: the token is spent, and a client must log in first
// (the SDK does, when it holds the credentials).
func (c Code) KickReconnect() bool {
	a := c.Action()
	return a == Reconnect || a == Retry
}

// Codes lists every defined code, for documentation and tests.
func Codes() []Code {
	out := make([]Code, 0, len(codes)-1)
	for c := Code(1); int(c) < len(codes); c++ {
		out = append(out, c)
	}
	return out
}
