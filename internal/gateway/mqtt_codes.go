package gateway

import (
	"strings"

	"github.com/magpie-im/magpie/proto/wire"
)

// MQTT reason codes the gateway sends (MQTT 5.0 section 2.4) and their
// MQTT 3.1.1 CONNACK return codes. docs/mqtt.md has the table; the test
// of this file checks it covers every wire code.
const (
	rcSuccess               byte = 0x00
	rcNoSubscriptionExisted byte = 0x11
	rcUnspecified           byte = 0x80
	rcMalformed             byte = 0x81
	rcProtocolError         byte = 0x82
	rcUnsupportedVersion    byte = 0x84
	rcClientIDInvalid       byte = 0x85
	rcBadCredentials        byte = 0x86
	rcNotAuthorized         byte = 0x87
	rcServerUnavailable     byte = 0x88
	rcServerBusy            byte = 0x89
	rcServerShuttingDown    byte = 0x8B
	rcKeepAliveTimeout      byte = 0x8D
	rcSessionTakenOver      byte = 0x8E
	rcTopicFilterInvalid    byte = 0x8F
	rcTopicNameInvalid      byte = 0x90
	rcTopicAliasInvalid     byte = 0x94
	rcPacketTooLarge        byte = 0x95
	rcMessageRateTooHigh    byte = 0x96
	rcQuotaExceeded         byte = 0x97
	rcPayloadFormatInvalid  byte = 0x99
	rcRetainNotSupported    byte = 0x9A
	rcQoSNotSupported       byte = 0x9B
	rcUseAnotherServer      byte = 0x9C
	rcSharedSubsUnsupported byte = 0x9E
	rcConnectionRateExceed  byte = 0x9F

	// MQTT 3.1.1 CONNACK return codes.
	rc3UnacceptableVersion byte = 1
	rc3IdentifierRejected  byte = 2
	rc3ServerUnavailable   byte = 3
	rc3BadCredentials      byte = 4
	rc3NotAuthorized       byte = 5
)

// disconnectReason is the MQTT 5 DISCONNECT reason for a wire code the
// gateway closes a connection with (a Kick).
func disconnectReason(c wire.Code) byte {
	switch c {
	case wire.CodeTooLarge:
		return rcPacketTooLarge
	case wire.CodeRateLimited:
		return rcMessageRateTooHigh
	case wire.CodeUnavailable:
		return rcServerBusy
	case wire.CodeUnauthenticated, wire.CodeLoggedOut, wire.CodeSessionExpired, wire.CodeForbidden:
		return rcNotAuthorized
	case wire.CodeSlowConsumer:
		return rcQuotaExceeded
	case wire.CodeReplaced:
		return rcSessionTakenOver
	case wire.CodeDraining:
		return rcUseAnotherServer
	case wire.CodeServerShutdown:
		return rcServerShuttingDown
	case wire.CodeHeartbeatTimeout:
		return rcKeepAliveTimeout
	case wire.CodeProtocolError:
		return rcMalformed
	}
	return rcUnspecified
}

// connackReason is the CONNACK refusal for the wire code logic refused an
// auth with: MQTT 5's reason code and MQTT 3.1.1's return code.
func connackReason(c wire.Code) (v5, v3 byte) {
	switch c {
	case wire.CodeUnauthenticated, wire.CodeInvalidCredential, wire.CodeSessionExpired, wire.CodeLoggedOut:
		return rcBadCredentials, rc3BadCredentials
	case wire.CodeRateLimited:
		return rcConnectionRateExceed, rc3ServerUnavailable
	case wire.CodeUnavailable, wire.CodeInternal, wire.CodeDraining, wire.CodeServerShutdown:
		return rcServerUnavailable, rc3ServerUnavailable
	}
	return rcNotAuthorized, rc3NotAuthorized
}

// pubackReason is the MQTT 5 PUBACK reason for a send logic refused for
// good. retry reports a code whose action is to retry: the connection is
// closed instead (with disconnectReason) so that the client sends the
// PUBLISH again, with DUP, once it reconnects.
func pubackReason(c wire.Code) (rc byte, retry bool) {
	switch c {
	case wire.CodeInternal, wire.CodeRateLimited, wire.CodeUnavailable:
		return 0, true
	case wire.CodeBadRequest:
		return rcPayloadFormatInvalid, false
	case wire.CodeTooLarge:
		return rcQuotaExceeded, false
	case wire.CodeForbidden, wire.CodeNotMember, wire.CodeBlocked:
		return rcNotAuthorized, false
	case wire.CodeNotFound:
		return rcTopicNameInvalid, false
	}
	return rcUnspecified, false
}

// The topics (docs/mqtt.md).
const (
	topicInbox     = "magpie/inbox"
	topicSendUser  = "magpie/to/user/"
	topicSendGroup = "magpie/to/group/"
	topicSendRoot  = "magpie/to/"
)

// sendTarget parses a PUBLISH topic: exactly one of user and group is set,
// or rc says why the topic is refused.
func sendTarget(topic string) (user, group string, rc byte) {
	switch {
	case strings.HasPrefix(topic, topicSendUser):
		user = topic[len(topicSendUser):]
		if !validUsername(user) {
			return "", "", rcTopicNameInvalid
		}
		return user, "", rcSuccess
	case strings.HasPrefix(topic, topicSendGroup):
		group = topic[len(topicSendGroup):]
		if !validToken(group) {
			return "", "", rcTopicNameInvalid
		}
		return "", group, rcSuccess
	case strings.HasPrefix(topic, topicSendRoot):
		return "", "", rcTopicNameInvalid
	}
	return "", "", rcNotAuthorized
}

// validUsername is the account name rule (2-32 of A-Z a-z 0-9 _ -).
func validUsername(s string) bool {
	if len(s) < 2 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validToken is the rule for ids and device names: 1-64 printable ASCII
// bytes, no spaces, no '.', '*' or '>'. Logic checks ids again; the
// gateway checks them so a topic it cannot map is refused as a topic.
func validToken(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// subscribeReason is the SUBACK reason for one filter: the granted QoS
// for magpie/inbox (at most 1), else why it is refused.
func subscribeReason(filter string, qos byte) byte {
	switch {
	case filter == topicInbox:
		return min(qos, 1)
	case strings.HasPrefix(filter, "$share/"):
		return rcSharedSubsUnsupported
	case !validFilter(filter):
		return rcTopicFilterInvalid
	}
	return rcNotAuthorized
}

// validFilter checks a topic filter's wildcards (MQTT 4.7.1): '#' only
// last and alone in its level, '+' alone in its level.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}
