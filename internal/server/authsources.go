package server

import (
	"fmt"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/logic"
)

// authSources builds --auth's chain for the logic role, in order.
func authSources(c config.Login) ([]logic.AuthSource, error) {
	var out []logic.AuthSource
	for _, name := range c.Auth {
		switch name {
		case auth.Local:
			out = append(out, logic.AuthSource{Name: auth.Local})
		case auth.HTTP:
			h, err := auth.NewHTTP(auth.HTTPConfig{URL: c.AuthURL, Secret: []byte(c.AuthSecret), Timeout: c.AuthHTTPTimeout})
			if err != nil {
				return nil, err
			}
			out = append(out, logic.AuthSource{Name: auth.HTTP, Password: h, Token: h})
		case auth.LDAP:
			l, err := auth.NewLDAP(auth.LDAPConfig{
				URL: c.AuthLDAPURL, StartTLS: c.AuthLDAPStartTLS, CAFile: c.AuthLDAPCA,
				BindDN: c.AuthLDAPBindDN, BindPassword: c.AuthLDAPBindPassword, BaseDN: c.AuthLDAPBaseDN,
				Filter: c.AuthLDAPFilter, GroupFilter: c.AuthLDAPGroupFilter,
				UsernameAttr: c.AuthLDAPUsernameAttr, NameAttr: c.AuthLDAPNameAttr, EmailAttr: c.AuthLDAPEmailAttr,
				Timeout: c.AuthLDAPTimeout,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, logic.AuthSource{Name: auth.LDAP, Password: l, Directory: l})
		case auth.OIDC:
			o, err := auth.NewOIDC(auth.OIDCConfig{
				Issuer: c.AuthOIDCIssuer, Audience: c.AuthOIDCAudience, JWKSURL: c.AuthOIDCJWKSURL,
				UsernameClaim: c.AuthOIDCUsernameClaim, NameClaim: c.AuthOIDCNameClaim, EmailClaim: c.AuthOIDCEmailClaim,
				Timeout: c.AuthOIDCTimeout,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, logic.AuthSource{Name: auth.OIDC, Token: o})
		default:
			return nil, fmt.Errorf("--auth: unknown source %q", name)
		}
	}
	return out, nil
}
