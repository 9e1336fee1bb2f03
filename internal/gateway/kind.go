package gateway

// Kind is a client transport: how a connection reached the gateway. A new
// transport (MQTT is next) adds a Kind here, its adapter, and nothing
// else: the counters, the metrics label and the logs follow from the list.
type Kind uint8

const (
	TCP       Kind = iota // length-prefixed protobuf frames on --tcp
	WebSocket             // /v1/ws on --http, protobuf or JSON frames

	numKinds
)

// Kinds lists every transport, in the order metrics print them.
func Kinds() []Kind { return []Kind{TCP, WebSocket} }

// String is the transport's name in logs and metrics labels.
func (k Kind) String() string {
	switch k {
	case TCP:
		return "tcp"
	case WebSocket:
		return "ws"
	}
	return "unknown"
}
