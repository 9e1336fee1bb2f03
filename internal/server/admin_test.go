package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/push"
	"golang.org/x/crypto/bcrypt"
)

const adminSecret = "admin-secret-0123456789"

// signedAdmin POSTs body to path signed with the admin key.
func signedAdmin(t *testing.T, n *Node, path string, body []byte, secret string) (int, map[string]any) {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nb := make([]byte, 16)
	_, _ = rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(push.HeaderKey, "migrate")
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, nonce)
	req.Header.Set(push.HeaderSignature, push.Sign([]byte(secret), "POST", path, ts, nonce, body))
	return doJSON(t, req)
}

// A migration imports 3,000 users with bcrypt hashes (one signed request)
// and they log in and chat; the same import again creates nothing; a
// request signed with another secret, or with the push key, is refused.
func TestAdminImportUsers(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.PushKeys = map[string][]byte{"crm": []byte("push-secret-0123456789")}
	n := startNode(t, cfg)
	ctx := context.Background()

	hash, err := bcrypt.GenerateFromPassword([]byte("password-u0"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	type user struct {
		Username     string `json:"username"`
		PasswordHash string `json:"password_hash,omitempty"`
		DisplayName  string `json:"display_name,omitempty"`
	}
	var users []user
	for i := range 3000 {
		users = append(users, user{Username: fmt.Sprintf("u%d", i), PasswordHash: string(hash), DisplayName: fmt.Sprintf("User %d", i)})
	}
	last, err := bcrypt.GenerateFromPassword([]byte("password-u2999"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users[2999].PasswordHash = string(last)
	users = append(users, user{Username: "broken"}) // no hash: refused alone
	body, _ := json.Marshal(map[string]any{"users": users})
	start := time.Now()
	st, m := signedAdmin(t, n, "/v1/admin/users/import", body, adminSecret)
	if st != 200 || m["created"] != float64(3000) || m["existing"] != float64(0) || m["failed"] != float64(1) {
		t.Fatalf("import = %d created %v existing %v failed %v", st, m["created"], m["existing"], m["failed"])
	}
	t.Logf("3,000 users imported in %v", time.Since(start))
	results := m["results"].([]any)
	if r := results[3000].(map[string]any); r["username"] != "broken" || r["error"].(map[string]any)["code"] != "bad_request" {
		t.Errorf("the user without a hash: %v", r)
	}

	// The first and the last imported user log in with their old
	// passwords and chat.
	_, u0Box := newClient(t, n, "u0", "laptop", "tcp", false)
	u2999, _ := newClient(t, n, "u2999", "phone", "ws", false)
	if _, err := u2999.SendText(ctx, "u0", "imported and chatting"); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitFor(t, "u0's message", func() bool { return strings.Join(u0Box.texts(), ",") == "imported and chatting" })

	st, m = signedAdmin(t, n, "/v1/admin/users/import", body, adminSecret)
	if st != 200 || m["created"] != float64(0) || m["existing"] != float64(3000) {
		t.Errorf("import again = %d created %v existing %v, want all existing", st, m["created"], m["existing"])
	}
	if st, m := signedAdmin(t, n, "/v1/admin/users/import", body, "push-secret-0123456789"); st != 401 {
		t.Errorf("signed with another secret = %d %v, want 401", st, m)
	}
	resp, err := http.Post("http://"+n.HTTPAddr()+"/v1/admin/users/import", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unsigned import = %d, want 401", resp.StatusCode)
	}
}

// Without --admin-keys the admin API is off.
func TestAdminAPIOff(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	if st, m := signedAdmin(t, n, "/v1/admin/users/import", []byte(`{"users":[]}`), adminSecret); st != 404 {
		t.Errorf("admin API off = %d %v, want 404", st, m)
	}
}
