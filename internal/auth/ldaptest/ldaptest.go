// Package ldaptest runs a real OpenLDAP server (Debian's slapd) for tests:
// a throwaway configuration and database in a temp dir, a seeded
// directory (slapadd of an LDIF), plain LDAP (with StartTLS) and LDAPS on
// free loopback ports, with a certificate from a CA made in the test.
//
// Without slapd the tests that need it skip, loudly, unless
// MAGPIE_TEST_LDAP=1 (as .ci/run sets it), where a missing slapd fails
// them: CI never passes by skipping.
package ldaptest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/magpie-im/magpie/internal/tlsconf/tlstest"
)

// The seeded directory.
const (
	BaseDN       = "dc=example,dc=org"
	PeopleDN     = "ou=people," + BaseDN
	GroupsDN     = "ou=groups," + BaseDN
	AdminDN      = "cn=admin," + BaseDN // the rootdn: may write
	AdminPass    = "admin-secret-1"
	ServiceDN    = "cn=magpie,ou=services," + BaseDN // Magpie's service account: may read
	ServicePass  = "service-secret-1"
	ChatGroupDN  = "cn=chat," + GroupsDN // carol and dave are members, erin is not
	CarolPass    = "carol-pass-1"
	DavePass     = "dave-pass-1"
	ErinPass     = "erin-pass-1"
	slapdEnv     = "MAGPIE_TEST_LDAP"
	startTimeout = 20 * time.Second
)

// Seed is the directory every Server starts with.
const Seed = `dn: ` + BaseDN + `
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,` + BaseDN + `
objectClass: organizationalUnit
ou: people

dn: ou=groups,` + BaseDN + `
objectClass: organizationalUnit
ou: groups

dn: ou=services,` + BaseDN + `
objectClass: organizationalUnit
ou: services

dn: ` + ServiceDN + `
objectClass: person
cn: magpie
sn: service
userPassword: ` + ServicePass + `

dn: uid=carol,` + PeopleDN + `
objectClass: inetOrgPerson
uid: carol
cn: Carol Cole
sn: Cole
displayName: Carol Cole
mail: carol@example.org
userPassword: ` + CarolPass + `

dn: uid=dave,` + PeopleDN + `
objectClass: inetOrgPerson
uid: dave
cn: Dave Doe
sn: Doe
mail: dave@example.org
userPassword: ` + DavePass + `

dn: uid=erin,` + PeopleDN + `
objectClass: inetOrgPerson
uid: erin
cn: Erin Ek
sn: Ek
userPassword: ` + ErinPass + `

dn: ` + ChatGroupDN + `
objectClass: groupOfNames
cn: chat
member: uid=carol,` + PeopleDN + `
member: uid=dave,` + PeopleDN + `
`

// Server is a running slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:PORT (StartTLS offered)
	LDAPSURL string // ldaps://127.0.0.1:PORT
	CA       *tlstest.CA
	CAFile   string // the CA certificate, PEM
	Host     string // the name the certificate is for

	stop func() // kills slapd and waits for it
}

// Stop kills slapd now (the directory is down: its ports refuse
// connections); the test's end does nothing more.
func (s *Server) Stop() { s.stop() }

// Delete removes the entry dn, bound as the rootdn (a user leaving the
// directory).
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("ldaptest: dial: %v", err)
	}
	defer c.Close()
	if err := c.Bind(AdminDN, AdminPass); err != nil {
		t.Fatalf("ldaptest: bind as the rootdn: %v", err)
	}
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("ldaptest: delete %s: %v", dn, err)
	}
}

// Start runs slapd with the Seed directory until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	slapd, err := exec.LookPath("slapd")
	if err != nil {
		slapd = "/usr/sbin/slapd"
	}
	slapadd := filepath.Join(filepath.Dir(slapd), "slapadd")
	if _, err := os.Stat(slapd); err != nil {
		if os.Getenv(slapdEnv) == "1" {
			t.Fatalf("slapd not found but %s=1: install slapd and ldap-utils (Debian)", slapdEnv)
		}
		t.Skipf("!!! slapd not found: LDAP tests SKIPPED. Install Debian's slapd and ldap-utils (or set %s=1 to fail instead).", slapdEnv)
	}
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ldaptest CA")
	leaf := ca.Issue(t, "127.0.0.1", "localhost").Write(t, dir)
	caFile := ca.WriteCA(t, dir)
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(config(dir, db, caFile, leaf)), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.ldif")
	if err := os.WriteFile(seed, []byte(Seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(slapadd, "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	plain, ldaps := freePort(t), freePort(t)
	s := &Server{
		URL: fmt.Sprintf("ldap://127.0.0.1:%d", plain), LDAPSURL: fmt.Sprintf("ldaps://127.0.0.1:%d", ldaps),
		CA: ca, CAFile: caFile, Host: "127.0.0.1",
	}
	var log bytes.Buffer
	// -d 0: stay in the foreground (so the test owns the process) and log
	// nothing but errors.
	cmd := exec.Command(slapd, "-f", conf, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			exited <- <-exited // keep the exit for the start loop's check
		})
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("slapd exited: %v\n%s", err, log.String())
		default:
		}
		if up(plain) && upTLS(ldaps, ca) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not listen within %v\n%s", startTimeout, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// config is a slapd.conf: one mdb database, the standard schemas, TLS,
// and ACLs that let the service account read, users bind, and nobody else
// read a password.
func config(dir, db, caFile string, leaf *tlstest.Leaf) string {
	modules := "/usr/lib/ldap"
	if _, err := os.Stat(modules); err != nil {
		modules = "/usr/lib/openldap"
	}
	var b strings.Builder
	for _, s := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&b, "include /etc/ldap/schema/%s.schema\n", s)
	}
	fmt.Fprintf(&b, `modulepath %s
moduleload back_mdb
pidfile %s/slapd.pid
TLSCACertificateFile %s
TLSCertificateFile %s
TLSCertificateKeyFile %s
database mdb
suffix "%s"
rootdn "%s"
rootpw %s
directory %s
maxsize 104857600
access to attrs=userPassword
	by self write
	by anonymous auth
	by * none
access to *
	by dn.exact="%s" read
	by self read
	by users read
	by * none
`, modules, dir, caFile, leaf.CertFile, leaf.KeyFile, BaseDN, AdminDN, AdminPass, db, ServiceDN)
	return b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func up(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func upTLS(port int, ca *tlstest.CA) bool {
	d := &net.Dialer{Timeout: time.Second}
	c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), ca.ClientConfig())
	if err != nil {
		return false
	}
	c.Close()
	return true
}
