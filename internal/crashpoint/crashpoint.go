// Package crashpoint lets the fault run crash a process at a named point
// of its code, to test what survives a crash exactly there (scenario 9 of
// the reliability doc: between commit, publish and ACK).
//
// In a normal build every function here is an empty one the compiler
// removes. Built with `-tags faulthooks`, the environment variable
// MAGPIE_CRASHPOINT=NAME:N makes the N-th Reached(NAME) kill the process
// with SIGKILL, as kill -9 would: no deferred code, no flush. Release
// binaries are never built with the tag.
package crashpoint

// Env is the variable a faulthooks build reads at start.
const Env = "MAGPIE_CRASHPOINT"

// The points the code marks.
const (
	// CommitPublish: a batch of messages is committed; nothing of it is
	// ACKed or published yet.
	CommitPublish = "commit-publish"
	// PublishACK: a message is committed and published to its recipients;
	// its ACK is not sent yet. Armed, the logic node publishes a message
	// before ACKing it (normally it ACKs first), so the crash lands
	// between the two.
	PublishACK = "publish-ack"
)
