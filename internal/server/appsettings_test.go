package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/magpie-im/magpie/internal/auth"
)

// An app's settings apply to its users and only to them (issue 12: an app
// has its own device policy, friendship requirement, limits and login
// sources, and is named by a host name it claims). The server runs with
// the defaults (any number of devices, no friendship needed, groups up to
// --max-group-size, --auth local,http); acme sets a single device, friends
// only, groups of 3, local logins only and the host chat.acme.test. Each
// check is made in both apps, so a refusal in acme is the setting, not a
// broken call. On both stores.
func TestAppSettingsApply(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAppSettingsApply(t, "") })
	t.Run("postgres", func(t *testing.T) { testAppSettingsApply(t, postgresSchema(t)) })
}

func testAppSettingsApply(t *testing.T, dsn string) {
	const secret = "auth-endpoint-secret-1"
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ask map[string]string
		_ = json.Unmarshal(body, &ask)
		switch {
		case r.Header.Get("X-Magpie-Signature") != auth.Signature([]byte(secret), body):
			w.WriteHeader(http.StatusInternalServerError)
		case ask["username"] == "hal" && ask["password"] == "password-hal":
			_, _ = io.WriteString(w, `{"allow":true}`)
		default:
			_, _ = io.WriteString(w, `{"allow":false,"unknown":true}`)
		}
	}))
	defer ep.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.Auth, cfg.AuthURL, cfg.AuthSecret = []string{"local", "http"}, ep.URL, secret
	n := startNode(t, cfg)
	settings := map[string]any{"device_policy": "single", "require_friendship": true, "max_group_size": 3,
		"auth": []string{"local"}, "hosts": []string{"chat.acme.test"}}
	if st, m := signedAdmin(t, n, "/v1/admin/apps", mustJSON(map[string]any{"name": "acme", "settings": settings}), adminSecret); st != 201 {
		t.Fatalf("create acme = %d %v", st, m)
	}

	// call is apiCall with a Host header.
	call := func(host, method, path, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+n.HTTPAddr()+path, bytes.NewBufferString(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return doJSON(t, req)
	}
	login := func(app, user, device string) (int, string) {
		t.Helper()
		st, m := apiCall(t, n, "POST", "/v1/login", "", string(mustJSON(map[string]string{
			"app": app, "username": user, "password": "password-" + user, "device": device})))
		tok, _ := m["token"].(string)
		return st, tok
	}
	for _, app := range []string{"", "acme"} {
		for _, u := range []string{"ann", "ben", "cat", "dan"} {
			body := string(mustJSON(map[string]string{"app": app, "username": u, "password": "password-" + u}))
			if st, m := apiCall(t, n, "POST", "/v1/users", "", body); st != 201 {
				t.Fatalf("register %q/%s = %d %v", app, u, st, m)
			}
		}
	}

	// The host name names the app: ann's login through chat.acme.test is
	// acme's ann (acme's settings hold her: a message to a stranger is
	// refused), through another host the default app's.
	body := `{"username":"ann","password":"password-ann","device":"web"}`
	st, m := call("chat.acme.test", "POST", "/v1/login", "", body)
	if st != 200 {
		t.Fatalf("login through acme's host = %d %v", st, m)
	}
	hostAnn := m["token"].(string)
	if st, m := apiCall(t, n, "POST", "/v1/messages", hostAnn, `{"to_user":"ben","text":"hi"}`); st != 403 {
		t.Errorf("acme's ann (logged in by host) to ben, not a friend = %d %v, want 403", st, m)
	}
	st, m = call("chat.other.test", "POST", "/v1/login", "", body)
	if st != 200 {
		t.Fatalf("login through another host = %d %v", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", m["token"].(string), `{"to_user":"ben","text":"hi"}`); st != 200 {
		t.Errorf("default ann (another host) to ben = %d %v, want 200", st, m)
	}

	for _, tc := range []struct {
		app                       string
		friendsOnly, singleDevice bool
		groupMax                  int
	}{{"", false, false, 0}, {"acme", true, true, 3}} {
		t.Run(fmt.Sprintf("app %q", tc.app), func(t *testing.T) {
			// The friendship requirement.
			_, ann := login(tc.app, "ann", "laptop")
			st, m := apiCall(t, n, "POST", "/v1/messages", ann, `{"to_user":"ben","text":"not friends"}`)
			if tc.friendsOnly && st != 403 || !tc.friendsOnly && st != 200 {
				t.Errorf("ann to ben, not friends = %d %v (friends only: %v)", st, m, tc.friendsOnly)
			}

			// The device policy: a second device ends the first's session.
			_, phone := login(tc.app, "ann", "phone")
			st, m = apiCall(t, n, "GET", "/v1/conversations", ann, "")
			if tc.singleDevice && st != 401 || !tc.singleDevice && st != 200 {
				t.Errorf("the laptop's session after the phone's login = %d %v (single device: %v)", st, m, tc.singleDevice)
			}

			// The group size: 3 with the creator.
			st, m = apiCall(t, n, "POST", "/v1/groups", phone, `{"name":"three","members":["ben","cat"]}`)
			if st != 201 {
				t.Fatalf("a group of 3 = %d %v", st, m)
			}
			st, m = apiCall(t, n, "POST", "/v1/groups", phone, `{"name":"four","members":["ben","cat","dan"]}`)
			if tc.groupMax == 3 && st == 201 || tc.groupMax == 0 && st != 201 {
				t.Errorf("a group of 4 = %d %v (limit %d)", st, m, tc.groupMax)
			}

			// The login sources: hal is the HTTP source's user, which acme
			// does not ask.
			st, _ = login(tc.app, "hal", "phone")
			if tc.app == "acme" && st != 401 || tc.app == "" && st != 200 {
				t.Errorf("hal's login = %d (app %q)", st, tc.app)
			}
		})
	}
}
