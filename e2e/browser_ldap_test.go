//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/auth/ldaptest"
)

// TestBrowserLoginFromLDAP: with `magpie serve --auth local,ldap` against a
// real slapd, carol, who exists only in the directory, signs in from the
// web client's form (e2e/browser/ldap.mjs in headless Chromium) with the
// directory's password and chats both ways with bob, a local user; the
// same form refuses her with a wrong password. Its dependencies are
// TestBrowser's and TestChatLoginFromLDAP's, and skip (or fail, with
// MAGPIE_E2E_BROWSER=1 or MAGPIE_TEST_LDAP=1) as theirs do.
func TestBrowserLoginFromLDAP(t *testing.T) {
	chromium, node, artifacts := browserTools(t, "LDAP test")

	dir := ldaptest.Start(t)
	s := startServer(t, t.TempDir(), "--auth", "local,ldap",
		"--auth-ldap-url", dir.URL, "--auth-ldap-starttls", "--auth-ldap-ca", dir.CAFile,
		"--auth-ldap-bind-dn", ldaptest.ServiceDN, "--auth-ldap-bind-password", ldaptest.ServicePass,
		"--auth-ldap-base-dn", ldaptest.BaseDN,
		"--auth-ldap-group-filter", "(&(objectClass=groupOfNames)(cn=chat)(member={dn}))")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ldap.mjs")
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), "MAGPIE_URL=http://"+s.http, "ARTIFACTS="+artifacts, "CHROMIUM="+chromium,
		"CAROL_PASS="+ldaptest.CarolPass)
	out, err := cmd.CombinedOutput()
	t.Logf("node ldap.mjs:\n%s", out)
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("node ldap.mjs: %v (screenshots: %s)", err, artifacts)
	}
}
