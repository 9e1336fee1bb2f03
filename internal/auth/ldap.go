package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPConfig is the LDAP source (--auth-ldap-*).
type LDAPConfig struct {
	URL      string // ldap://host:port or ldaps://host:port
	StartTLS bool   // ldap:// upgraded with StartTLS before anything is sent
	CAFile   string // PEM CAs the server's certificate must chain to ("": the system's)

	BindDN, BindPassword string // the service account that searches ("": anonymous search)
	BaseDN               string // where users (and groups) are searched
	// Filter finds the user; {username} is replaced by the typed name,
	// escaped. Default (uid={username}).
	Filter string
	// GroupFilter, if set, must match at least one entry under BaseDN for
	// the user to log in; {dn} (the user's DN) and {username} are replaced,
	// escaped. E.g. (&(objectClass=groupOfNames)(cn=chat)(member={dn})).
	GroupFilter string

	UsernameAttr string // the Magpie username, default uid
	NameAttr     string // the display name, default cn
	EmailAttr    string // default mail

	Timeout time.Duration // dial and each request, default 5s
}

// LDAPSource checks passwords against a directory: it binds as the
// service account, searches the user with Filter (exactly one entry, or
// the user is unknown), binds as that entry with the password, and, with
// GroupFilter, searches the group as the service account again. A new
// connection serves each login. An entry that binds is the user; the
// attributes it has are the profile.
type LDAPSource struct {
	cfg LDAPConfig
	tls *tls.Config
}

// NewLDAP validates cfg and loads its CA file.
func NewLDAP(cfg LDAPConfig) (*LDAPSource, error) {
	u, err := url.Parse(cfg.URL)
	if cfg.URL == "" || err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, fmt.Errorf("--auth-ldap-url %q: want ldap://host:port or ldaps://host:port", cfg.URL)
	}
	if cfg.StartTLS && u.Scheme == "ldaps" {
		return nil, errors.New("--auth-ldap-starttls is for ldap:// URLs (ldaps:// is TLS from the start)")
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("--auth-ldap-base-dn is required")
	}
	if (cfg.BindDN == "") != (cfg.BindPassword == "") {
		return nil, errors.New("--auth-ldap-bind-dn and --auth-ldap-bind-password go together")
	}
	if cfg.Filter == "" {
		cfg.Filter = "(uid={username})"
	}
	if !strings.Contains(cfg.Filter, "{username}") {
		return nil, fmt.Errorf("--auth-ldap-filter %q: must contain {username}", cfg.Filter)
	}
	for _, f := range []string{cfg.Filter, cfg.GroupFilter} {
		if f == "" {
			continue
		}
		probe := strings.NewReplacer("{username}", "x", "{dn}", "x").Replace(f)
		if _, err := ldap.CompileFilter(probe); err != nil {
			return nil, fmt.Errorf("LDAP filter %q: %v", f, err)
		}
	}
	cfg.UsernameAttr = cmpOr(cfg.UsernameAttr, "uid")
	cfg.NameAttr = cmpOr(cfg.NameAttr, "cn")
	cfg.EmailAttr = cmpOr(cfg.EmailAttr, "mail")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-ldap-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--auth-ldap-ca %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	return &LDAPSource{cfg: cfg, tls: tc}, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (l *LDAPSource) Name() string { return LDAP }

// Password checks username and password with two binds.
func (l *LDAPSource) Password(ctx context.Context, username, password string) (Profile, error) {
	if password == "" {
		// An empty password is an unauthenticated bind, which succeeds
		// (RFC 4513, 5.1.2): never let it stand for a user's.
		return Profile{}, ErrRejected
	}
	conn, err := l.connect(ctx)
	if err != nil {
		return Profile{}, err
	}
	defer conn.Close()
	entry, err := l.find(conn, username)
	if err != nil {
		return Profile{}, err
	}
	if err := conn.Bind(entry.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return Profile{}, ErrRejected
		}
		return Profile{}, fmt.Errorf("auth: ldap: bind as the user: %w", err)
	}
	if l.cfg.GroupFilter != "" {
		if err := l.serviceBind(conn); err != nil {
			return Profile{}, err
		}
		in, err := l.inGroup(conn, entry.DN, username)
		if err != nil {
			return Profile{}, err
		}
		if !in {
			return Profile{}, ErrRejected
		}
	}
	p := Profile{
		Username:    entry.GetAttributeValue(l.cfg.UsernameAttr),
		DisplayName: entry.GetAttributeValue(l.cfg.NameAttr),
		Email:       entry.GetAttributeValue(l.cfg.EmailAttr),
	}
	if p.Username == "" {
		return Profile{}, fmt.Errorf("auth: ldap: %s has no %s attribute (--auth-ldap-username-attr)", entry.DN, l.cfg.UsernameAttr)
	}
	return p, nil
}

// Exists reports whether the directory holds username (the search
// alone, as the service account).
func (l *LDAPSource) Exists(ctx context.Context, username string) (bool, error) {
	conn, err := l.connect(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_, err = l.find(conn, username)
	if errors.Is(err, ErrUnknownUser) {
		return false, nil
	}
	return err == nil, err
}

// connect dials, upgrades with StartTLS if asked, and binds as the
// service account. ctx's end closes the connection, ending any request.
func (l *LDAPSource) connect(ctx context.Context) (*ldap.Conn, error) {
	conn, err := ldap.DialURL(l.cfg.URL, ldap.DialWithTLSConfig(l.tls), ldap.DialWithDialer(&net.Dialer{Timeout: l.cfg.Timeout}))
	if err != nil {
		return nil, fmt.Errorf("auth: ldap: %w", err)
	}
	conn.SetTimeout(l.cfg.Timeout)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	ok := false
	defer func() {
		if !ok {
			stop()
			conn.Close()
		}
	}()
	if l.cfg.StartTLS {
		if err := conn.StartTLS(l.tls); err != nil {
			return nil, fmt.Errorf("auth: ldap: StartTLS: %w", err)
		}
	}
	if err := l.serviceBind(conn); err != nil {
		return nil, err
	}
	ok = true
	return conn, nil
}

func (l *LDAPSource) serviceBind(conn *ldap.Conn) error {
	if l.cfg.BindDN == "" {
		return nil
	}
	if err := conn.Bind(l.cfg.BindDN, l.cfg.BindPassword); err != nil {
		return fmt.Errorf("auth: ldap: bind as %s (--auth-ldap-bind-dn): %w", l.cfg.BindDN, err)
	}
	return nil
}

// find searches the one entry of username: none is ErrUnknownUser, more
// than one an error (the filter does not name a single user).
func (l *LDAPSource) find(conn *ldap.Conn, username string) (*ldap.Entry, error) {
	filter := strings.ReplaceAll(l.cfg.Filter, "{username}", ldap.EscapeFilter(username))
	res, err := conn.Search(ldap.NewSearchRequest(l.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, l.timeLimit(), false, filter, []string{l.cfg.UsernameAttr, l.cfg.NameAttr, l.cfg.EmailAttr}, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return nil, fmt.Errorf("auth: ldap: %s matches more than one entry", filter)
		}
		return nil, fmt.Errorf("auth: ldap: search %s: %w", filter, err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, ErrUnknownUser
	case 1:
		return res.Entries[0], nil
	}
	return nil, fmt.Errorf("auth: ldap: %s matches %d entries", filter, len(res.Entries))
}

func (l *LDAPSource) inGroup(conn *ldap.Conn, dn, username string) (bool, error) {
	filter := strings.NewReplacer("{dn}", ldap.EscapeFilter(dn), "{username}", ldap.EscapeFilter(username)).Replace(l.cfg.GroupFilter)
	res, err := conn.Search(ldap.NewSearchRequest(l.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		1, l.timeLimit(), false, filter, []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return false, fmt.Errorf("auth: ldap: group search %s: %w", filter, err)
	}
	return err != nil || len(res.Entries) > 0, nil
}

// timeLimit is the server-side limit of a search, in whole seconds.
func (l *LDAPSource) timeLimit() int {
	return max(1, int(l.cfg.Timeout/time.Second))
}
