package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/auth/ldaptest"
	"github.com/magpie-im/magpie/internal/tlsconf/tlstest"
)

func ldapConfig(s *ldaptest.Server) auth.LDAPConfig {
	return auth.LDAPConfig{
		URL: s.URL, StartTLS: true, CAFile: s.CAFile,
		BindDN: ldaptest.ServiceDN, BindPassword: ldaptest.ServicePass, BaseDN: ldaptest.BaseDN,
	}
}

func newLDAP(t *testing.T, c auth.LDAPConfig) *auth.LDAPSource {
	t.Helper()
	l, err := auth.NewLDAP(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The two binds against a real slapd, over StartTLS and LDAPS: the right
// password gives the mapped profile, a wrong one ErrRejected, an unknown
// name ErrUnknownUser, an empty password never binds.
func TestLDAPPassword(t *testing.T) {
	s := ldaptest.Start(t)
	ctx := context.Background()
	starttls := ldapConfig(s)
	ldaps := ldapConfig(s)
	ldaps.URL, ldaps.StartTLS = s.LDAPSURL, false
	for name, c := range map[string]auth.LDAPConfig{"starttls": starttls, "ldaps": ldaps} {
		t.Run(name, func(t *testing.T) {
			l := newLDAP(t, c)
			p, err := l.Password(ctx, "Carol", ldaptest.CarolPass)
			if err != nil || p != (auth.Profile{Username: "carol", DisplayName: "Carol Cole", Email: "carol@example.org"}) {
				t.Errorf("carol: %+v, %v", p, err)
			}
			if _, err := l.Password(ctx, "carol", "wrong-pass"); !errors.Is(err, auth.ErrRejected) {
				t.Errorf("wrong password: %v, want ErrRejected", err)
			}
			if _, err := l.Password(ctx, "carol", ""); !errors.Is(err, auth.ErrRejected) {
				t.Errorf("empty password: %v, want ErrRejected", err)
			}
			if _, err := l.Password(ctx, "nobody", "x-pass-1"); !errors.Is(err, auth.ErrUnknownUser) {
				t.Errorf("unknown: %v, want ErrUnknownUser", err)
			}
			// A name that tries to widen the filter is escaped: no match.
			if _, err := l.Password(ctx, "*", ldaptest.CarolPass); !errors.Is(err, auth.ErrUnknownUser) {
				t.Errorf("username *: %v, want ErrUnknownUser", err)
			}
			for name, want := range map[string]bool{"dave": true, "DAVE": true, "nobody": false} {
				if got, err := l.Exists(ctx, name); err != nil || got != want {
					t.Errorf("Exists(%s) = %v, %v; want %v", name, got, err, want)
				}
			}
		})
	}
}

// Attribute mapping and the group filter.
func TestLDAPMappingAndGroups(t *testing.T) {
	s := ldaptest.Start(t)
	ctx := context.Background()
	c := ldapConfig(s)
	c.Filter = "(|(uid={username})(mail={username}))"
	c.NameAttr, c.EmailAttr = "sn", "cn"
	c.GroupFilter = "(&(objectClass=groupOfNames)(cn=chat)(member={dn}))"
	l := newLDAP(t, c)
	p, err := l.Password(ctx, "dave@example.org", ldaptest.DavePass)
	if err != nil || p != (auth.Profile{Username: "dave", DisplayName: "Doe", Email: "Dave Doe"}) {
		t.Errorf("dave by mail, mapped: %+v, %v", p, err)
	}
	if _, err := l.Password(ctx, "erin", ldaptest.ErinPass); !errors.Is(err, auth.ErrRejected) {
		t.Errorf("erin is not in the group: %v, want ErrRejected", err)
	}
	// Erin joins the group: now she may.
	admin, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Bind(ldaptest.AdminDN, ldaptest.AdminPass); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest(ldaptest.ChatGroupDN, nil)
	m.Add("member", []string{"uid=erin," + ldaptest.PeopleDN})
	if err := admin.Modify(m); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Password(ctx, "erin", ldaptest.ErinPass); err != nil || p.Username != "erin" || p.Email != "Erin Ek" {
		t.Errorf("erin in the group: %+v, %v", p, err)
	}
}

// What cannot answer is an error, never a yes and never "unknown": a
// wrong service password, a server whose certificate is not trusted, a
// server that is not there.
func TestLDAPFailures(t *testing.T) {
	s := ldaptest.Start(t)
	ctx := context.Background()
	badBind := ldapConfig(s)
	badBind.BindPassword = "wrong-service-pass"
	untrusted := ldapConfig(s)
	untrusted.CAFile = tlstest.NewCA(t, "other CA").WriteCA(t, t.TempDir())
	gone := ldapConfig(s)
	gone.URL, gone.StartTLS = "ldap://127.0.0.1:1", false
	for name, c := range map[string]auth.LDAPConfig{"service bind": badBind, "untrusted certificate": untrusted, "no server": gone} {
		l := newLDAP(t, c)
		_, err := l.Password(ctx, "carol", ldaptest.CarolPass)
		if err == nil || errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("%s: Password = %v, want a failure", name, err)
		}
		if _, err := l.Exists(ctx, "carol"); err == nil {
			t.Errorf("%s: Exists: no error", name)
		}
	}
	// A filter that matches everyone names no single user.
	wide := ldapConfig(s)
	wide.Filter = "(|(uid={username})(objectClass=inetOrgPerson))"
	if _, err := newLDAP(t, wide).Password(ctx, "carol", ldaptest.CarolPass); err == nil || errors.Is(err, auth.ErrRejected) {
		t.Errorf("ambiguous filter: %v, want a failure", err)
	}
}

func TestNewLDAPErrors(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(ca, []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := auth.LDAPConfig{URL: "ldap://127.0.0.1:389", BaseDN: "dc=x"}
	for want, mut := range map[string]func(*auth.LDAPConfig){
		"--auth-ldap-url":         func(c *auth.LDAPConfig) { c.URL = "http://x" },
		"--auth-ldap-starttls":    func(c *auth.LDAPConfig) { c.URL, c.StartTLS = "ldaps://x:636", true },
		"--auth-ldap-base-dn":     func(c *auth.LDAPConfig) { c.BaseDN = "" },
		"go together":             func(c *auth.LDAPConfig) { c.BindDN = "cn=x" },
		"must contain {username}": func(c *auth.LDAPConfig) { c.Filter = "(uid=bob)" },
		"LDAP filter":             func(c *auth.LDAPConfig) { c.GroupFilter = "(member={dn}" },
		"no PEM certificate":      func(c *auth.LDAPConfig) { c.CAFile = ca },
	} {
		c := base
		mut(&c)
		if _, err := auth.NewLDAP(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v", want, err)
		}
	}
}
