package server

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/auth/ldaptest"
	"github.com/magpie-im/magpie/internal/auth/oidctest"
	"github.com/magpie-im/magpie/internal/config"
)

// What each login source does on failure (docs/operations.md, 4.3, the
// table of failures), through POST /v1/login or /v1/login/token of a real
// node: a wrong password is 401; a user the source no longer has (after
// a first login made the Magpie user) is 401 at the next login while the
// session it had keeps working; a source that is down or too slow is 503
// with retry_after_ms, and local users keep logging in meanwhile; a user
// disabled through the admin API is 403 whatever its source.
func TestAuthSourceFailureModes(t *testing.T) {
	t.Run("local", testAuthFailLocal)
	t.Run("ldap", testAuthFailLDAP)
	t.Run("http", testAuthFailHTTP)
	t.Run("oidc", testAuthFailOIDC)
}

// authFailNode starts a node with the admin API and local alice (unless
// noAlice: a registration asks the directory, which may hang).
func authFailNode(t *testing.T, tweak func(*config.Config), noAlice ...bool) *Node {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	tweak(&cfg)
	n := startNode(t, cfg)
	if len(noAlice) > 0 {
		return n
	}
	if st, m := apiCall(t, n, "POST", "/v1/users", "", `{"username":"alice","password":"password-alice"}`); st != 201 {
		t.Fatalf("register alice = %d %v", st, m)
	}
	return n
}

// login posts a password login and returns the status and answer.
func authLogin(t *testing.T, n *Node, user, password string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	return apiCall(t, n, "POST", "/v1/login", "", string(b))
}

// want503 checks an unavailable answer: 503 with a retry hint.
func want503(t *testing.T, what string, st int, m map[string]any) {
	t.Helper()
	e, _ := m["error"].(map[string]any)
	if st != 503 || e["code"] != "unavailable" || e["retry_after_ms"] == nil {
		t.Errorf("%s = %d %v, want 503 with retry_after_ms", what, st, m)
	}
}

// sessionWorks checks that a token still reads the user's profile.
func sessionWorks(t *testing.T, n *Node, what, token string) {
	t.Helper()
	if st, m := apiCall(t, n, "GET", "/v1/profile", token, ""); st != 200 {
		t.Errorf("%s: the earlier session = %d %v, want 200 (sessions outlive the source's answer)", what, st, m)
	}
}

func disableUser(t *testing.T, n *Node, user string) {
	t.Helper()
	if st, m := signedAdmin(t, n, "/v1/admin/users/disable", []byte(`{"username":"`+user+`"}`), adminSecret); st != 200 {
		t.Fatalf("disable %s = %d %v", user, st, m)
	}
}

// blackHole accepts connections and never answers: a source that hangs.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func testAuthFailLocal(t *testing.T) {
	n := authFailNode(t, func(*config.Config) {})
	if st, m := apiCall(t, n, "POST", "/v1/users", "", `{"username":"bob","password":"password-bob"}`); st != 201 {
		t.Fatalf("register bob = %d %v", st, m)
	}
	if st, m := authLogin(t, n, "alice", "wrong-password"); st != 401 {
		t.Errorf("wrong password = %d %v, want 401", st, m)
	}
	_, m := authLogin(t, n, "bob", "password-bob")
	bob, _ := m["token"].(string)
	if st, m := signedAdmin(t, n, "/v1/admin/users/delete", []byte(`{"username":"bob"}`), adminSecret); st != 200 {
		t.Fatalf("delete bob = %d %v", st, m)
	}
	if st, m := authLogin(t, n, "bob", "password-bob"); st != 401 {
		t.Errorf("a deleted user = %d %v, want 401", st, m)
	}
	if st, _ := apiCall(t, n, "GET", "/v1/profile", bob, ""); st != 401 {
		t.Errorf("a deleted user's session = %d, want 401 (deletion ends it)", st)
	}
	disableUser(t, n, "alice")
	if st, m := authLogin(t, n, "alice", "password-alice"); st != 403 {
		t.Errorf("a disabled user = %d %v, want 403", st, m)
	}
}

func testAuthFailLDAP(t *testing.T) {
	s := ldaptest.Start(t)
	hang := blackHole(t)
	ldapCfg := func(c *config.Config, url string, startTLS bool) {
		c.Auth = []string{"local", "ldap"}
		c.AuthLDAPURL, c.AuthLDAPStartTLS, c.AuthLDAPCA = url, startTLS, s.CAFile
		c.AuthLDAPBindDN, c.AuthLDAPBindPassword, c.AuthLDAPBaseDN = ldaptest.ServiceDN, ldaptest.ServicePass, ldaptest.BaseDN
		c.AuthLDAPTimeout = 500 * time.Millisecond
	}
	n := authFailNode(t, func(c *config.Config) { ldapCfg(c, s.URL, true) })

	if st, m := authLogin(t, n, "carol", "wrong-password"); st != 401 {
		t.Errorf("wrong password = %d %v, want 401", st, m)
	}
	st, m := authLogin(t, n, "dave", ldaptest.DavePass)
	if st != 200 {
		t.Fatalf("dave's first login = %d %v", st, m)
	}
	dave := m["token"].(string)
	s.Delete(t, "uid=dave,"+ldaptest.PeopleDN)
	if st, m := authLogin(t, n, "dave", ldaptest.DavePass); st != 401 {
		t.Errorf("dave removed from the directory = %d %v, want 401", st, m)
	}
	sessionWorks(t, n, "dave removed from the directory", dave)

	if st, m := authLogin(t, n, "carol", ldaptest.CarolPass); st != 200 {
		t.Fatalf("carol's first login = %d %v", st, m)
	}
	disableUser(t, n, "carol")
	if st, m := authLogin(t, n, "carol", ldaptest.CarolPass); st != 403 {
		t.Errorf("carol disabled = %d %v, want 403", st, m)
	}

	// A directory that hangs: every step has --auth-ldap-timeout.
	slow := authFailNode(t, func(c *config.Config) { ldapCfg(c, "ldap://"+hang, false) }, true)
	st, m = authLogin(t, slow, "erin", ldaptest.ErinPass)
	want503(t, "a directory that does not answer", st, m)
	st, m = apiCall(t, slow, "POST", "/v1/users", "", `{"username":"frank","password":"password-frank"}`)
	want503(t, "a registration while the directory hangs", st, m)

	// The directory down: erin (never logged in) and an existing user.
	s.Stop()
	st, m = authLogin(t, n, "erin", ldaptest.ErinPass)
	want503(t, "the directory down, a new user", st, m)
	if st, m := authLogin(t, n, "alice", "password-alice"); st != 200 {
		t.Errorf("a local login while the directory is down = %d %v, want 200", st, m)
	}
	st, m = apiCall(t, n, "POST", "/v1/users", "", `{"username":"frank","password":"password-frank"}`)
	want503(t, "a registration while the directory is down (it might hold the name)", st, m)
}

func testAuthFailHTTP(t *testing.T) {
	const secret = "auth-endpoint-secret-1"
	var mode atomic.Value // "", "removed", "down", "slow", "garbage"
	mode.Store("")
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Magpie-Signature") != auth.Signature([]byte(secret), body) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ask map[string]string
		_ = json.Unmarshal(body, &ask)
		switch mode.Load().(string) {
		case "down":
			w.WriteHeader(http.StatusBadGateway)
			return
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		case "garbage":
			io.WriteString(w, `<html>maintenance</html>`)
			return
		case "removed":
			io.WriteString(w, `{"allow":false,"unknown":true}`)
			return
		}
		if ask["password"] == "password-"+ask["username"] {
			io.WriteString(w, `{"allow":true}`)
		} else {
			io.WriteString(w, `{"allow":false}`)
		}
	}))
	defer ep.Close()
	n := authFailNode(t, func(c *config.Config) {
		c.Auth, c.AuthURL, c.AuthSecret = []string{"local", "http"}, ep.URL, secret
		c.AuthHTTPTimeout = 300 * time.Millisecond
	})
	if st, m := authLogin(t, n, "hal", "wrong-password"); st != 401 {
		t.Errorf("wrong password = %d %v, want 401", st, m)
	}
	st, m := authLogin(t, n, "hal", "password-hal")
	if st != 200 {
		t.Fatalf("hal's first login = %d %v", st, m)
	}
	hal := m["token"].(string)
	for _, tc := range []struct{ mode, what string }{
		{"down", "the endpoint answering 502"},
		{"slow", "the endpoint slower than --auth-http-timeout"},
		{"garbage", "an answer that is not JSON"},
	} {
		mode.Store(tc.mode)
		st, m := authLogin(t, n, "hal", "password-hal")
		want503(t, tc.what, st, m)
		if st, m := authLogin(t, n, "alice", "password-alice"); st != 200 {
			t.Errorf("%s: a local login = %d %v, want 200", tc.what, st, m)
		}
	}
	mode.Store("removed")
	if st, m := authLogin(t, n, "hal", "password-hal"); st != 401 {
		t.Errorf("hal no longer the endpoint's = %d %v, want 401", st, m)
	}
	sessionWorks(t, n, "hal no longer the endpoint's", hal)
	mode.Store("")
	ep.Close() // down: connection refused
	st, m = authLogin(t, n, "hal", "password-hal")
	want503(t, "the endpoint not listening", st, m)
}

func testAuthFailOIDC(t *testing.T) {
	is := oidctest.Start(t)
	n := authFailNode(t, func(c *config.Config) {
		c.Auth, c.AuthOIDCIssuer, c.AuthOIDCAudience = []string{"local", "oidc"}, is.URL, "chat-app"
		c.AuthOIDCTimeout = 300 * time.Millisecond
	})
	exchange := func(tok string) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"token": tok})
		return apiCall(t, n, "POST", "/v1/login/token", "", string(b))
	}
	ivan := func() string { return is.Token(t, oidctest.Claims{"aud": "chat-app", "preferred_username": "ivan"}) }
	if st, m := exchange(ivan()); st != 200 {
		t.Fatalf("ivan's first token = %d %v", st, m)
	}
	forged := oidctest.Sign(t, oidctest.NewKey(t, "RS256"), oidctest.Claims{"iss": is.URL, "aud": "chat-app", "preferred_username": "ivan",
		"exp": time.Now().Add(time.Hour).Unix()})
	if st, m := exchange(forged); st != 401 {
		t.Errorf("a token signed by another key = %d %v, want 401", st, m)
	}
	expired := is.Token(t, oidctest.Claims{"aud": "chat-app", "preferred_username": "ivan", "exp": time.Now().Add(-time.Hour).Unix()})
	if st, m := exchange(expired); st != 401 {
		t.Errorf("an expired token = %d %v, want 401", st, m)
	}
	// The issuer is asked for keys only: a token it signed before removing
	// its user is accepted until it expires. Disabling ends that at once.
	if st, m := exchange(ivan()); st != 200 {
		t.Errorf("a still valid token of a user the issuer may have removed = %d %v, want 200", st, m)
	}
	disableUser(t, n, "ivan")
	if st, m := exchange(ivan()); st != 403 {
		t.Errorf("ivan disabled = %d %v, want 403", st, m)
	}

	// An issuer that hangs, on a node that has not discovered it yet.
	hang := blackHole(t)
	slow := authFailNode(t, func(c *config.Config) {
		c.Auth, c.AuthOIDCIssuer, c.AuthOIDCAudience = []string{"local", "oidc"}, "http://"+hang, "chat-app"
		c.AuthOIDCTimeout = 300 * time.Millisecond
	})
	b, _ := json.Marshal(map[string]string{"token": ivan()})
	st, m := apiCall(t, slow, "POST", "/v1/login/token", "", string(b))
	want503(t, "an issuer that does not answer", st, m)
	if st, m := authLogin(t, slow, "alice", "password-alice"); st != 200 {
		t.Errorf("a local login while the issuer hangs = %d %v, want 200", st, m)
	}
	// The issuer down, with a key the node has not fetched.
	is.AddKey(t, "ES256")
	is.SetDown(true)
	st, m = exchange(ivan())
	want503(t, "the issuer down", st, m)
}
