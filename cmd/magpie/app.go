package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
)

const appUsage = `Usage: magpie app <create|set|list|keys> [flags] [NAME]

  magpie app create NAME [settings flags]   make an app and print its push and admin keys
  magpie app set NAME [settings flags]      change the settings named by the flags, keep the others
  magpie app list                           list the apps
  magpie app keys NAME [--rotate]           print an app's keys; --rotate replaces them

The command works on the database directly (--data or --store, as for
serve; MAGPIE_DATA and MAGPIE_STORE work too). Running servers see a new
app, new settings or rotated keys within 5 seconds. The HTTP equivalent,
signed with --admin-keys, is /v1/admin/apps (docs/api.md).
`

// runApp is `magpie app`.
func runApp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, appUsage)
		return errors.New("app: name a subcommand: create, set, list or keys")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("app "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, appUsage); fs.PrintDefaults() }
	data := fs.String("data", envOr("MAGPIE_DATA", "magpie-data"), "data directory (its magpie.db)")
	dsn := fs.String("store", os.Getenv("MAGPIE_STORE"), "database: a SQLite file path or a postgres:// URL (default DATA/magpie.db)")
	var st store.AppSettings
	var authList, hosts, hooks string
	var requireFriend bool
	rotate := fs.Bool("rotate", false, "keys: replace the app's keys (the old ones stop working)")
	if sub == "create" || sub == "set" {
		fs.StringVar(&st.DevicePolicy, "device-policy", "", "the app's device policy: unlimited, single or per-platform (default: the server's)")
		fs.BoolVar(&requireFriend, "require-friendship", false, "private messages between friends only (default: the server's)")
		fs.IntVar(&st.MaxGroupSize, "max-group-size", 0, "members per group (default: the server's)")
		fs.StringVar(&authList, "auth", "", "the app's login sources in order, a subset of the server's --auth (default: the server's)")
		fs.StringVar(&hosts, "hosts", "", "comma-separated host names whose register and login are this app's")
		fs.StringVar(&hooks, "webhook-urls", "", "comma-separated URLs that get the app's events")
		fs.StringVar(&st.WebhookSecret, "webhook-secret", "", "signs the app's webhook events and veto calls (at least 16 characters)")
		fs.StringVar(&st.BeforeSendURL, "before-send-url", "", "URL asked to allow or veto each message of the app")
		fs.StringVar(&st.BeforeAddURL, "before-add-url", "", "URL asked to allow or veto each friend add and group member add of the app")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name != "" { // flags may follow the name too
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("app %s: unexpected %q", sub, fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if f.Name == "require-friendship" {
			st.RequireFriendship = &requireFriend
		}
	})
	st.Auth, st.Hosts, st.WebhookURLs = splitList(authList), splitList(hosts), splitList(hooks)
	if *dsn == "" {
		*dsn = filepath.Join(*data, "magpie.db")
	}
	switch sub {
	case "create", "set", "keys":
		if name == "" {
			return fmt.Errorf("app %s: name the app", sub)
		}
	case "list":
	default:
		fmt.Fprint(stderr, appUsage)
		return fmt.Errorf("app: unknown subcommand %q", sub)
	}
	if sub == "create" {
		if err := logic.ValidAppName(name); err != nil {
			return fmt.Errorf("app create: %s", logic.Message(err))
		}
		if err := logic.ValidAppSettings(st, []string{auth.Local, auth.LDAP, auth.HTTP, auth.OIDC}); err != nil {
			return fmt.Errorf("app create: %s", logic.Message(err))
		}
	}
	s, err := sqlstore.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer s.Close()
	switch sub {
	case "set":
		return setApp(ctx, s, name, st, given, stdout)
	case "create":
		a, err := s.CreateApp(ctx, store.App{Name: name, Settings: st, Keys: logic.NewAppKeys(name)})
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("app create: an app named %s exists", name)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "app %s created (id %d)\n", a.Name, a.ID)
		printKeys(stdout, a)
		return nil
	case "list":
		apps, err := s.AppList(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPUSH KEY\tADMIN KEY\tSETTINGS")
		for _, a := range apps {
			push, admin := a.Keys.PushKeyID, a.Keys.AdminKeyID
			if a.ID == store.DefaultApp {
				push, admin = "(--push-keys)", "(--admin-keys)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", a.ID, a.Name, push, admin, settingsText(a.Settings))
		}
		return tw.Flush()
	default: // keys
		apps, err := s.AppList(ctx)
		if err != nil {
			return err
		}
		for _, a := range apps {
			if a.Name != name {
				continue
			}
			if a.ID == store.DefaultApp {
				return errors.New("app keys: the default app's keys are the server's --push-keys and --admin-keys")
			}
			if *rotate {
				a.Keys = logic.NewAppKeys(name)
				if err := s.SetAppKeys(ctx, a.ID, a.Keys); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "app %s: new keys (the old ones stop working within 5 seconds)\n", a.Name)
			}
			printKeys(stdout, a)
			return nil
		}
		return fmt.Errorf("app keys: no such app: %s", name)
	}
}

func printKeys(w io.Writer, a store.App) {
	fmt.Fprintf(w, "push key:  %s:%s\n", a.Keys.PushKeyID, a.Keys.PushSecret)
	fmt.Fprintf(w, "admin key: %s:%s\n", a.Keys.AdminKeyID, a.Keys.AdminSecret)
}

func settingsText(st store.AppSettings) string {
	var parts []string
	if st.DevicePolicy != "" {
		parts = append(parts, "device-policy="+st.DevicePolicy)
	}
	if st.RequireFriendship != nil {
		parts = append(parts, fmt.Sprintf("require-friendship=%t", *st.RequireFriendship))
	}
	if st.MaxGroupSize > 0 {
		parts = append(parts, fmt.Sprintf("max-group-size=%d", st.MaxGroupSize))
	}
	if len(st.Auth) > 0 {
		parts = append(parts, "auth="+strings.Join(st.Auth, ","))
	}
	if len(st.Hosts) > 0 {
		parts = append(parts, "hosts="+strings.Join(st.Hosts, ","))
	}
	if len(st.WebhookURLs) > 0 {
		parts = append(parts, "webhook-urls="+strings.Join(st.WebhookURLs, ","))
	}
	if st.BeforeSendURL != "" {
		parts = append(parts, "before-send-url="+st.BeforeSendURL)
	}
	if st.BeforeAddURL != "" {
		parts = append(parts, "before-add-url="+st.BeforeAddURL)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// setApp is `magpie app set`: the settings whose flags were given replace
// the app's, the others stay.
func setApp(ctx context.Context, s *sqlstore.Store, name string, flags store.AppSettings, given map[string]bool, stdout io.Writer) error {
	apps, err := s.AppList(ctx)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if a.Name != name {
			continue
		}
		if a.ID == store.DefaultApp {
			return errors.New("app set: the default app's settings are the server's flags")
		}
		st := a.Settings
		for f, set := range map[string]func(){
			"device-policy": func() { st.DevicePolicy = flags.DevicePolicy }, "require-friendship": func() { st.RequireFriendship = flags.RequireFriendship },
			"max-group-size": func() { st.MaxGroupSize = flags.MaxGroupSize }, "auth": func() { st.Auth = flags.Auth },
			"hosts": func() { st.Hosts = flags.Hosts }, "webhook-urls": func() { st.WebhookURLs = flags.WebhookURLs },
			"webhook-secret":  func() { st.WebhookSecret = flags.WebhookSecret },
			"before-send-url": func() { st.BeforeSendURL = flags.BeforeSendURL }, "before-add-url": func() { st.BeforeAddURL = flags.BeforeAddURL },
		} {
			if given[f] {
				set()
			}
		}
		if err := logic.ValidAppSettings(st, []string{auth.Local, auth.LDAP, auth.HTTP, auth.OIDC}); err != nil {
			return fmt.Errorf("app set: %s", logic.Message(err))
		}
		if err := s.SetAppSettings(ctx, a.ID, st); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "app %s: settings %s (running servers use them within 5 seconds)\n", a.Name, settingsText(st))
		return nil
	}
	return fmt.Errorf("app set: no such app: %s", name)
}
