package gateway

// Kind is a client transport: how a connection reached the gateway. A new
// transport adds a Kind here, its adapter, and nothing else: the
// counters, the metrics label and the logs follow from the list.
type Kind uint8

const (
	TCP       Kind = iota // length-prefixed protobuf frames on --tcp
	WebSocket             // /v1/ws on --http, protobuf or JSON frames
	MQTT                  // MQTT 3.1.1 and 5.0 on --mqtt (mqtt.go)

	numKinds
)

// Kinds lists every transport, in the order metrics print them.
func Kinds() []Kind { return []Kind{TCP, WebSocket, MQTT} }

// String is the transport's name in logs and metrics labels.
func (k Kind) String() string {
	switch k {
	case TCP:
		return "tcp"
	case WebSocket:
		return "ws"
	case MQTT:
		return "mqtt"
	}
	return "unknown"
}
