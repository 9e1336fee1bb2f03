//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/auth/ldaptest"
)

// TestChatLoginFromLDAP: `magpie serve --auth local,ldap` against a real
// slapd (StartTLS, a group filter); a directory user logs in from `magpie
// chat` with the directory's password, no registration, and chats with a
// local user; a directory user outside the group, and a wrong password,
// are refused; a local registration of the directory's name is refused.
func TestChatLoginFromLDAP(t *testing.T) {
	dir := ldaptest.Start(t)
	s := startServer(t, t.TempDir(), "--auth", "local,ldap",
		"--auth-ldap-url", dir.URL, "--auth-ldap-starttls", "--auth-ldap-ca", dir.CAFile,
		"--auth-ldap-bind-dn", ldaptest.ServiceDN, "--auth-ldap-bind-password", ldaptest.ServicePass,
		"--auth-ldap-base-dn", ldaptest.BaseDN,
		"--auth-ldap-group-filter", "(&(objectClass=groupOfNames)(cn=chat)(member={dn}))")

	runChat(t, s, "bob", "bob-pw-1", ":q\n", "--register")
	bob := startChat(t, s, "bob", "bob-pw-1")
	carol := startChat(t, s, "carol", ldaptest.CarolPass)
	carol.send(t, "bob;;hello from the directory")
	waitOutput(t, carol.out, "carol's ACK", regexp.MustCompile(`✓ sent #1 → bob`))
	waitOutput(t, bob.out, "bob receives carol", regexp.MustCompile(`\] carol: hello from the directory`))
	bob.send(t, ":to carol", "welcome, carol")
	waitOutput(t, carol.out, "carol receives bob", regexp.MustCompile(`\] bob: welcome, carol`))
	carol.send(t, ":q")
	bob.send(t, ":q")
	<-carol.done
	<-bob.done

	for _, c := range []struct{ user, password, args, why, want string }{
		{"erin", ldaptest.ErinPass, "", "not in the chat group", "invalid username or password"},
		{"carol", "wrong-pass-1", "", "wrong directory password", "invalid username or password"},
		// --register takes a taken name as "exists already" and logs in:
		// the local password is not the directory's.
		{"dave", "local-pw-1", "--register", "registration of a directory name", "invalid username or password"},
	} {
		var args []string
		if c.args != "" {
			args = append(args, c.args)
		}
		out, err := runChatErr(s, c.user, c.password, ":q\n", args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: chat %s: %v, want a failure saying %q:\n%s", c.why, c.user, err, c.want, out)
		}
	}
}

// runChatErr is runChat for a chat expected to fail: its error and output.
func runChatErr(s *server, user, password, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"chat", "--user", user, "--server", "http://" + s.http}, args...)...)
	cmd.Env = append(os.Environ(), "MAGPIE_PASSWORD="+password)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
