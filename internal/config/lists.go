package config

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// PushKeys are the signed push API's keys: key id → secret (--push-keys,
// KEYID:SECRET pairs).
type PushKeys map[string][]byte

// listFlags declares comma-separated flags as plain strings and parses
// them into their typed fields once the flag set is final.
type listFlags struct {
	parsers []func() error
}

func (l *listFlags) parse() error {
	var errs []error
	for _, p := range l.parsers {
		errs = append(errs, p())
	}
	return errors.Join(errs...)
}

func (l *listFlags) declare(fs *flag.FlagSet, name, def, usage string, parse func(string) error) {
	raw := fs.String(name, def, usage)
	l.parsers = append(l.parsers, func() error {
		if err := parse(*raw); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		return nil
	})
}

func (l *listFlags) strings(fs *flag.FlagSet, dst *[]string, name, usage string) {
	l.declare(fs, name, strings.Join(*dst, ","), usage, func(s string) error {
		*dst = splitList(s)
		return nil
	})
}

func (l *listFlags) prefixes(fs *flag.FlagSet, dst *[]netip.Prefix, name, usage string) {
	l.declare(fs, name, formatPrefixes(*dst), usage, func(s string) error {
		p, err := Prefixes(s)
		*dst = p
		return err
	})
}

func (l *listFlags) pushKeys(fs *flag.FlagSet, dst *PushKeys, name, usage string) {
	l.declare(fs, name, formatPushKeys(*dst), usage, func(s string) error {
		k, err := ParsePushKeys(s)
		*dst = k
		return err
	})
}

// splitList splits a comma-separated setting, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// formatPrefixes writes prefixes back as Prefixes reads them: a
// single-address prefix as its address.
func formatPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p.Bits() == p.Addr().BitLen() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	return strings.Join(out, ",")
}

func formatPushKeys(k PushKeys) string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(k)) {
		out = append(out, id+":"+string(k[id]))
	}
	return strings.Join(out, ",")
}

// ParsePushKeys parses comma-separated KEYID:SECRET pairs; a secret is at
// least 16 characters and a key id is given once.
func ParsePushKeys(s string) (PushKeys, error) {
	keys := PushKeys{}
	for _, kv := range splitList(s) {
		id, secret, ok := strings.Cut(kv, ":")
		if !ok || id == "" || len(secret) < 16 {
			return nil, fmt.Errorf("push keys: each entry must be KEYID:SECRET with a secret of at least 16 characters")
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("push keys: key %q given twice", id)
		}
		keys[id] = []byte(secret)
	}
	return keys, nil
}
