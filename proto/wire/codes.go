package wire

// Code is an error or disconnect code sent in Error.code and Kick.code.
// The table is append-only: codes are never renumbered or reused.
type Code uint32

// Action tells a client what to do about a code.
type Action int

const (
	GiveUp    Action = iota // the request is wrong; do not repeat it
	Retry                   // repeat the request (with the same client_msg_id), after retry_after_ms if set
	Reconnect               // open a new connection (possibly to another gateway) and sync
	Relogin                 // the token is unusable: log in again over HTTP
)

const (
	CodeInternal          Code = 1  // server fault; retry
	CodeBadRequest        Code = 2  // malformed or invalid request
	CodeUnauthenticated   Code = 3  // missing, invalid or expired token
	CodeForbidden         Code = 4  // not allowed for this user
	CodeNotFound          Code = 5  // no such user, conversation or message
	CodeConflict          Code = 6  // already exists
	CodeTooLarge          Code = 7  // a frame or field exceeds its limit
	CodeRateLimited       Code = 8  // too many requests; see retry_after_ms
	CodeUnavailable       Code = 9  // a backend is down; retry
	CodeUnknownCommand    Code = 10 // the envelope body is not a known request
	CodeAuthTimeout       Code = 11 // no auth frame within the deadline
	CodeAlreadyAuthed     Code = 12 // a second auth on one connection
	CodeNotAuthenticated  Code = 13 // a request before auth
	CodeSlowConsumer      Code = 14 // the client did not read fast enough
	CodeReplaced          Code = 15 // a newer login took this device's place
	CodeLoggedOut         Code = 16 // the session was logged out
	CodeDraining          Code = 17 // the gateway is shutting down; reconnect elsewhere
	CodeHeartbeatTimeout  Code = 18 // nothing received within the heartbeat deadline
	CodeProtocolError     Code = 19 // an undecodable frame
	CodeNotMember         Code = 20 // not a member of the conversation
	CodeSeqOutOfRange     Code = 21 // a receipt beyond the conversation's last seq
	CodeBlocked           Code = 22 // the recipient blocked the sender
	CodeDeviceLimit       Code = 23 // the login policy refused a new device
	CodeServerShutdown    Code = 24 // the server is stopping
	CodeInvalidCredential Code = 25 // wrong username or password
)

type codeInfo struct {
	name   string
	action Action
}

var codes = map[Code]codeInfo{
	CodeInternal:          {"internal", Retry},
	CodeBadRequest:        {"bad_request", GiveUp},
	CodeUnauthenticated:   {"unauthenticated", Relogin},
	CodeForbidden:         {"forbidden", GiveUp},
	CodeNotFound:          {"not_found", GiveUp},
	CodeConflict:          {"conflict", GiveUp},
	CodeTooLarge:          {"too_large", GiveUp},
	CodeRateLimited:       {"rate_limited", Retry},
	CodeUnavailable:       {"unavailable", Retry},
	CodeUnknownCommand:    {"unknown_command", GiveUp},
	CodeAuthTimeout:       {"auth_timeout", Reconnect},
	CodeAlreadyAuthed:     {"already_authenticated", GiveUp},
	CodeNotAuthenticated:  {"not_authenticated", GiveUp},
	CodeSlowConsumer:      {"slow_consumer", Reconnect},
	CodeReplaced:          {"replaced", GiveUp},
	CodeLoggedOut:         {"logged_out", GiveUp},
	CodeDraining:          {"draining", Reconnect},
	CodeHeartbeatTimeout:  {"heartbeat_timeout", Reconnect},
	CodeProtocolError:     {"protocol_error", Reconnect},
	CodeNotMember:         {"not_member", GiveUp},
	CodeSeqOutOfRange:     {"seq_out_of_range", GiveUp},
	CodeBlocked:           {"blocked", GiveUp},
	CodeDeviceLimit:       {"device_limit", GiveUp},
	CodeServerShutdown:    {"server_shutdown", Reconnect},
	CodeInvalidCredential: {"invalid_credentials", GiveUp},
}

// String returns the code's stable name, as used in HTTP error bodies.
func (c Code) String() string {
	if i, ok := codes[c]; ok {
		return i.name
	}
	return "unknown"
}

// Action says what a client should do after receiving c.
func (c Code) Action() Action {
	if i, ok := codes[c]; ok {
		return i.action
	}
	return GiveUp
}

// Codes lists every defined code, for documentation and tests.
func Codes() []Code {
	out := make([]Code, 0, len(codes))
	for c := Code(1); int(c) <= len(codes); c++ {
		if _, ok := codes[c]; ok {
			out = append(out, c)
		}
	}
	return out
}
