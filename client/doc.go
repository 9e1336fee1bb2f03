// Package client is the Go SDK for Magpie.
//
// A Client logs in over the HTTP API, keeps one long connection (TCP or
// WebSocket) to the gateway the server names, and hides the protocol's
// failure modes from the application:
//
//   - Connection: it pings at the server's heartbeat interval and treats a
//     missing pong as a dead connection. Every drop is followed by a
//     reconnect with jittered exponential backoff (Options.BackoffMin and
//     BackoffMax), a new login when the token is refused or expired, and a
//     sync from the cursors. A kick with reconnect=false (replaced, logged
//     out) or a fatal error (bad credentials) stops the client with
//     StateClosed and that error; a kick whose code says log in again
//     (session_expired, sent when the token expires) makes it drop the
//     token, log in again and reconnect.
//   - Sessions: Sessions lists this user's logins, EndSession ends one,
//     LogoutAll ends all of them, ChangePassword ends all but this one
//     (and the Client logs in with the new password from then on).
//   - Gateway failover: the SDK reconnects to the gateway its login named
//     until that gateway is draining (a kick or error with
//     wire.CodeDraining) or two consecutive dials, or auths that got no
//     answer, failed (a gateway killed outright). Then it asks the server
//     for a live gateway with its token (GET /v1/gateway: no password
//     hash, so a reconnect storm stays cheap), and logs in again (same
//     Device id: the session is replaced, not added) only if the token is
//     refused. The backoff between attempts stays jittered, so the
//     clients of a dead gateway do not all come back at the same moment.
//   - Sending: Send returns only after the server's ack, which means the
//     message is durably stored. After a lost connection or a retryable
//     error it sends again with the same client message id, which the
//     server deduplicates, until the ack arrives or the context ends.
//   - Receiving: OnMessage sees each message exactly once and in seq order
//     within its conversation, whether it arrived live, by sync after a
//     reconnect, or by filling a gap (live pushes are best effort). After
//     OnMessage returns, the SDK reports the new delivered cursor to the
//     server and saves it through Options.Cursors, if set.
//     A lost push of a conversation's last message has no later message
//     to reveal the gap, so while connected the SDK also syncs from the
//     cursors in the background every Options.ResyncEvery (default 2
//     minutes, checked at heartbeats; negative disables it). Such a sync
//     reports to OnConversation only the states of conversations it
//     brings messages for.
//     Messages this user sent from other devices arrive the same way, with
//     Message.Own set; this Client's own sends are not echoed to OnMessage.
//   - Transient messages (broadcasts, server push notifications: seq 0,
//     Message.Transient) are not stored and have no place in a stream.
//     They go to OnMessage as they arrive, in arrival order with the
//     rest, and never move a cursor, wait for a gap or start a fill.
//   - Changes are messages: a recall, an edit or a group event (member
//     added, left, role changed…) is a RECALL, EDIT or EVENT message with
//     its own seq, delivered in order like any other. Recall and Edit are
//     retried with one client message id like Send.
//   - Conversation state pushes (flags changed on another device) go to
//     OnConversation.
//   - Notices (a friend request or acceptance, a join request for a
//     group this user runs, being added to or removed from a group, a
//     scheduled message refused at its time) go to OnNotice as they
//     arrive. They are transient: a device offline then never gets them,
//     and the HTTP lists (Friends, JoinRequests, Groups, ScheduledMessages)
//     stay the record.
//
// # TLS
//
// An https:// Options.Server, a wss:// WebSocket gateway and a TCP gateway
// advertised as tls://host:port are dialled with TLS, verified against the
// system roots or Options.TLS (RootCAs for a private CA). Options.TLS
// also configures the SDK's HTTP client unless Options.HTTPClient is set.
// Client.Register creates the account through the same client.
//
// # Features over HTTP
//
// Groups (CreateGroup, AddMembers, SetRole, Reads, JoinRequests,
// ApproveJoin, …), friends and blocks (RequestFriend, UpdateFriend for a
// remark or friend group, SetFriendPolicy, FriendGroups, Block, …), files
// (UploadFile, DownloadFile) and conversation flags (SetConversationFlags)
// are plain HTTP calls with the session token; a refused token is renewed
// by logging in again, once. A group's id is its conversation's id
// ("g_…"): send to it with SendRequest.ToGroup and read it with History
// like a private chat.
//
// SyncFriends and SyncGroups return what changed in this user's friends
// and groups after a seq the caller stored (0: everything): keep the Seq
// each returns and pass it next time, calling again at once while More.
//
// Without Options.Cursors, a new Client starts with empty cursors and the
// first sync delivers each conversation's history from the start (as far as
// the server keeps it). NewFileCursors is a ready CursorStore in a JSON
// file, so a new process resumes where the last one stopped.
//
// # Control
//
// Gateway and GatewayAddr say which gateway the connection is on.
// Options.NoReconnect stops the Client at the first lost connection
// instead of reconnecting; Options.Backoff replaces the reconnect and
// retry delays (JitteredBackoff is the default). SendMany sends many
// messages in one call, in order per conversation and concurrently across
// conversations; SendRequest.ReplyTo makes a message a reply to an earlier
// one. LookupUser checks that a name exists before a chat is opened.
//
// # Concurrency
//
// All Client methods are safe for concurrent use. Callbacks (OnMessage,
// OnReceipt, OnState, OnConversation, OnTyping) run one at a time, in order, on one SDK goroutine,
// with no SDK lock held, so they may call Client methods — but a callback
// that blocks delays every later callback. Close may be called from a
// callback.
//
// # Errors
//
// Errors from the server are *Error values carrying a wire.Code; the code's
// Action (wire.GiveUp, Retry, Reconnect, Relogin) says what it means, and
// the SDK performs every action but GiveUp itself.
package client
