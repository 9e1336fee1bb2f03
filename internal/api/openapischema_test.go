package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/api/openapicheck"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

func parsedDoc(t *testing.T) *openapicheck.Doc {
	t.Helper()
	d, err := openapicheck.Parse(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Every operation documents a success answer and the error shape (the
// health check has no error shape: its 503 is a Health body).
func TestOpenAPIEveryOperationHasSchemas(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses   map[string]json.RawMessage `json:"responses"`
			RequestBody json.RawMessage            `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	parsedDoc(t) // the schemas use only what openapicheck checks
	for path, ops := range doc.Paths {
		for method, op := range ops {
			route := strings.ToUpper(method) + " " + path
			ok2xx := false
			for code := range op.Responses {
				ok2xx = ok2xx || code[0] == '2'
			}
			if !ok2xx {
				t.Errorf("%s documents no 2xx answer", route)
			}
			if _, ok := op.Responses["default"]; !ok && route != "GET /healthz" && route != "GET /v1/openapi.json" {
				t.Errorf("%s documents no default (error) answer", route)
			}
		}
	}
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The encoders' fullest output (every optional field set) and their
// emptiest both match the schemas, so a field the e2e-style run never
// produces (an event's user ids, a login's email) is checked too.
func TestOpenAPISchemasMatchEncoders(t *testing.T) {
	d := parsedDoc(t)
	now := time.UnixMilli(1795443260123)
	full := store.Message{ConversationID: "g_3", Seq: 9, SenderID: 1, Sender: "alice", ClientMsgID: "a-9", Text: "x", SentAt: now,
		Kind: 4, RefSeq: 3, File: &store.FileRef{ID: "f_1", Name: "a.png", ContentType: "image/png", Size: 3},
		Event:    &store.Event{Type: "join", ActorID: 1, Actor: "alice", UserIDs: []int64{2}, Usernames: []string{"bob"}, Detail: "d"},
		EditedAt: now, Recalled: true}
	conv := store.Conversation{ID: "p_1_2", Kind: store.Private, LastSeq: 4, Peer: "bob", PeerID: 2, LastMessage: &full, ClearedSeq: 2}
	group := store.GroupInfo{ID: "g_1", Name: "g", Owner: "alice", JoinPolicy: store.JoinApproval, MutedUntil: now, MemberCount: 1,
		CreatedAt: now, Dissolved: true, Members: []store.GroupMember{{UserID: 1, Username: "alice", Role: store.RoleOwner, JoinedAt: now}}}
	login := logic.LoginResult{Token: "t", Identity: logic.Identity{UserID: 1, Username: "alice", SessionID: "s", Device: "d"},
		ExpiresAt: now, Gateway: &clusterpb.GatewayInfo{Id: "gw", Addrs: map[string]string{"tcp": "a:1", "ws": "ws://a", "mqtt": "a:2"}},
		User: store.User{DisplayName: "Alice", Email: "a@example.com"}}
	yes := true
	app := store.App{ID: 2, Name: "acme", CreatedAt: now, Settings: store.AppSettings{DevicePolicy: "single", RequireFriendship: &yes,
		MaxGroupSize: 5, Auth: []string{"local"}, Hosts: []string{"h"}, WebhookURLs: []string{"u"}, WebhookSecret: "s",
		BeforeSendURL: "b", BeforeAddURL: "c"}, Keys: store.AppKeys{PushKeyID: "p", PushSecret: "ps", AdminKeyID: "a", AdminSecret: "as"}}
	for _, c := range []struct {
		schema string
		v      any
	}{
		{"Message", messageOut(full)},
		{"Message", messageOut(store.Message{SentAt: now})},
		{"Conversation", conversationOut(conv)},
		{"Conversation", conversationOut(store.Conversation{ID: "g_1", Kind: store.Group})},
		{"Group", groupOut(group)},
		{"Group", groupOut(store.GroupInfo{JoinPolicy: store.JoinOpen, CreatedAt: now})},
		{"Login", loginJSON(login)},
		{"Login", loginJSON(logic.LoginResult{Identity: logic.Identity{UserID: 1}, ExpiresAt: now, Gateway: &clusterpb.GatewayInfo{Tcp: "a:1"}})},
		{"Ack", ackJSON(logic.Ack{ConversationID: "p_1_2", Seq: 1, SentAt: now})},
		{"Ack", ackJSON(logic.Ack{ScheduledID: 4, SendAt: now})},
		{"AppWithSecrets", appJSON(app, true)},
		{"App", appJSON(app, false)},
		{"AdminUser", adminUserJSON(store.User{ID: 1, Username: "a", CreatedAt: now, DisabledAt: now, DeletedAt: now})},
		{"Friend", friendOut(store.Contact{UserID: 2, Username: "bob", Since: now, Remark: "r", Group: "g", Seq: 3})},
	} {
		if err := d.Validate("#/components/schemas/"+c.schema, jsonOf(t, c.v)); err != nil {
			t.Errorf("%s %s: %v", c.schema, jsonOf(t, c.v), err)
		}
	}
	// And the schemas are not vacuous: a message without its kind fails.
	m := map[string]any{}
	_ = json.Unmarshal(jsonOf(t, messageOut(full)), &m)
	delete(m, "kind")
	if err := d.Validate("#/components/schemas/Message", jsonOf(t, m)); err == nil {
		t.Error("a message without kind passed")
	}
}
