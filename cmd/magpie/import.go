package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/magpie-im/magpie/internal/push"
)

const importUsage = `Usage: magpie import --server URL --key KEYID [--app NAME] [flags] FILE
       magpie import --generate N --password PW > FILE

Imports users, then friendships, then groups with their members and roles
from FILE (a JSON object {"users":[…],"friendships":[…],"groups":[…]}, each
entry as POST /v1/admin/users/import, /friendships/import and
/groups/import take it, docs/api.md; "-" reads stdin) through the signed
admin API, in batches. The secret of KEYID is MAGPIE_ADMIN_SECRET (or
--secret). Every import is idempotent: a run that stopped halfway runs
again from the start. It prints each step's counts and time, every entry
that failed (on stderr), and exits 1 if any did.

--check N then logs N pairs of imported friends in (their password:
--check-password or MAGPIE_CHECK_PASSWORD) and has each write to the
other, and N imported groups' owners write to their group, each read back
by the receiver: the import is usable, not only stored.

--generate N writes a synthetic export instead: N local users (user00001…)
with the bcrypt hash of --password, each the friend of the next three,
and a group of twenty for every twenty users (owner, an admin, members).
`

// Import batch limits: the admin API's (docs/api.md), and a body size
// well inside its 4 MiB.
const (
	importMaxUsers       = 5000
	importMaxFriendships = 10000
	importMaxGroups      = 1000
	importMaxMembers     = 100000
	importMaxBody        = 3 << 20
	importAttempts       = 4 // a batch is retried on a 5xx or a network error (imports are idempotent)
)

// importFile is the export a migration brings. Entries stay raw, so every
// field the admin API takes passes through; the few fields the command
// itself reads are decoded beside them.
type importFile struct {
	Users       []json.RawMessage `json:"users"`
	Friendships []json.RawMessage `json:"friendships"`
	Groups      []json.RawMessage `json:"groups"`
}

type importUser struct {
	Username     string `json:"username"`
	AuthSource   string `json:"auth_source"`
	PasswordHash string `json:"password_hash"`
}

type importPair struct {
	User   string `json:"user"`
	Friend string `json:"friend"`
}

type importGroup struct {
	ID      string `json:"id"`
	Owner   string `json:"owner"`
	Members []struct {
		Username string `json:"username"`
	} `json:"members"`
}

// importAnswer is an import call's answer.
type importAnswer struct {
	Created  int               `json:"created"`
	Existing int               `json:"existing"`
	Failed   int               `json:"failed"`
	Results  []json.RawMessage `json:"results"`
}

type importer struct {
	base, key, app string
	secret         []byte
	hc             *http.Client
	stdout, stderr io.Writer
	failed         int // entries that failed, over every step
	shown          int // failures printed
}

// runImport is `magpie import`.
func runImport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage); fs.PrintDefaults() }
	serverURL := fs.String("server", envOr("MAGPIE_SERVER", "http://127.0.0.1:8080"), "the HTTP API's base URL")
	key := fs.String("key", os.Getenv("MAGPIE_ADMIN_KEY"), "admin key id: one of the server's --admin-keys, or an app's admin key")
	secret := fs.String("secret", os.Getenv("MAGPIE_ADMIN_SECRET"), "the key's secret (prefer MAGPIE_ADMIN_SECRET: flags show in ps)")
	app := fs.String("app", "", `the app to import into (with --admin-keys; an app's own key names its app). Empty: the key's, or "default"`)
	batchUsers := fs.Int("batch-users", importMaxUsers, "users per request (1-5000)")
	batchPairs := fs.Int("batch-friendships", importMaxFriendships, "friendships per request (1-10000)")
	batchGroups := fs.Int("batch-groups", importMaxGroups, "groups per request (1-1000)")
	check := fs.Int("check", 0, "after the import, log in and chat as this many pairs of friends and groups (0: no check)")
	checkPassword := fs.String("check-password", os.Getenv("MAGPIE_CHECK_PASSWORD"), "the checked users' password")
	generate := fs.Int("generate", 0, "write a synthetic export of this many users to stdout instead of importing")
	password := fs.String("password", "", "--generate: every generated user's password (its bcrypt hash is exported)")
	timeout := fs.Duration("timeout", 2*time.Minute, "per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *generate != 0 {
		if fs.NArg() > 0 {
			return fmt.Errorf("import --generate writes to stdout: unexpected %q", fs.Arg(0))
		}
		return generateImport(stdout, *generate, *password)
	}
	switch {
	case fs.NArg() != 1:
		fs.Usage()
		return errors.New("import: name one FILE (or -)")
	case *key == "" || *secret == "":
		return errors.New("import: --key and its secret (MAGPIE_ADMIN_SECRET) are required")
	case *batchUsers < 1 || *batchUsers > importMaxUsers:
		return fmt.Errorf("import: --batch-users %d: want 1-%d", *batchUsers, importMaxUsers)
	case *batchPairs < 1 || *batchPairs > importMaxFriendships:
		return fmt.Errorf("import: --batch-friendships %d: want 1-%d", *batchPairs, importMaxFriendships)
	case *batchGroups < 1 || *batchGroups > importMaxGroups:
		return fmt.Errorf("import: --batch-groups %d: want 1-%d", *batchGroups, importMaxGroups)
	case *check < 0:
		return fmt.Errorf("import: --check %d: want 0 or more", *check)
	case *check > 0 && *checkPassword == "":
		return errors.New("import: --check needs the users' password (--check-password or MAGPIE_CHECK_PASSWORD)")
	}
	if u, err := url.Parse(*serverURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("import: --server %q: want http://HOST:PORT or https://…", *serverURL)
	}
	var in io.Reader = stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		in = f
	}
	var file importFile
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return fmt.Errorf("import: %s: not an export ({\"users\",\"friendships\",\"groups\"}): %w", fs.Arg(0), err)
	}
	im := &importer{base: strings.TrimRight(*serverURL, "/"), key: *key, app: *app, secret: []byte(*secret),
		hc: &http.Client{Timeout: *timeout}, stdout: stdout, stderr: stderr}

	groupIDs := map[string]string{} // the export's group id → Magpie's
	if err := im.step(ctx, "users", "/v1/admin/users/import", file.Users, *batchUsers, 0, nil); err != nil {
		return err
	}
	if err := im.step(ctx, "friendships", "/v1/admin/friendships/import", file.Friendships, *batchPairs, 0, nil); err != nil {
		return err
	}
	err := im.step(ctx, "groups", "/v1/admin/groups/import", file.Groups, *batchGroups, importMaxMembers, func(entry, result json.RawMessage) {
		var g importGroup
		var r struct {
			GroupID string `json:"group_id"`
		}
		if json.Unmarshal(entry, &g) == nil && json.Unmarshal(result, &r) == nil && r.GroupID != "" {
			groupIDs[g.ID] = r.GroupID
		}
	})
	if err != nil {
		return err
	}
	if im.failed > 0 {
		return fmt.Errorf("import: %d entries failed (listed above); fix them and run again: what was imported stays", im.failed)
	}
	if *check > 0 {
		return im.check(ctx, file, groupIDs, *check, *checkPassword)
	}
	return nil
}

// step imports entries in batches of at most per (and of at most members
// group members, when not 0) through path, printing the counts. each, if
// set, sees every entry with its result.
func (im *importer) step(ctx context.Context, what, path string, entries []json.RawMessage, per, members int, each func(entry, result json.RawMessage)) error {
	if len(entries) == 0 {
		return nil
	}
	start := time.Now()
	var total importAnswer
	batches := 0
	for i := 0; i < len(entries); {
		j, size, n := i, 0, 0
		for j < len(entries) && j-i < per {
			m := 0
			if members > 0 {
				var g importGroup
				_ = json.Unmarshal(entries[j], &g)
				m = len(g.Members)
			}
			if j > i && (size+len(entries[j]) > importMaxBody || members > 0 && n+m > members) {
				break
			}
			size, n = size+len(entries[j])+1, n+m
			j++
		}
		ans, err := im.call(ctx, path, what, entries[i:j])
		if err != nil {
			return fmt.Errorf("import: %s %d-%d of %d: %w", what, i+1, j, len(entries), err)
		}
		if len(ans.Results) != j-i {
			return fmt.Errorf("import: %s %d-%d: %d results for %d entries", what, i+1, j, len(ans.Results), j-i)
		}
		for k, r := range ans.Results {
			if bytes.Contains(r, []byte(`"error"`)) {
				im.fail(what, i+k, r)
			} else if each != nil {
				each(entries[i+k], r)
			}
		}
		total.Created += ans.Created
		total.Existing += ans.Existing
		total.Failed += ans.Failed
		batches++
		i = j
	}
	el := time.Since(start)
	fmt.Fprintf(im.stdout, "%s: %d (created %d, existing %d, failed %d) in %d requests, %.1fs, %.0f/s\n",
		what, len(entries), total.Created, total.Existing, total.Failed, batches, el.Seconds(), float64(len(entries))/el.Seconds())
	return nil
}

func (im *importer) fail(what string, i int, result json.RawMessage) {
	im.failed++
	im.shown++
	if im.shown <= 50 {
		fmt.Fprintf(im.stderr, "%s #%d: %s\n", what, i+1, result)
	} else if im.shown == 51 {
		fmt.Fprintln(im.stderr, "(more failures not shown)")
	}
}

// call sends one signed import request, retried on a 5xx or a network
// error (a new nonce each time).
func (im *importer) call(ctx context.Context, path, field string, entries []json.RawMessage) (importAnswer, error) {
	body := map[string]any{field: entries}
	if im.app != "" {
		body["app"] = im.app
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return importAnswer{}, err
	}
	var last error
	for attempt := range importAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return importAnswer{}, ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		var ans importAnswer
		status, msg, err := im.post(ctx, path, raw, &ans)
		switch {
		case err != nil:
			last = err
		case status == http.StatusOK:
			return ans, nil
		case status >= 500:
			last = fmt.Errorf("HTTP %d: %s", status, msg)
		default:
			return importAnswer{}, fmt.Errorf("HTTP %d: %s", status, msg)
		}
	}
	return importAnswer{}, fmt.Errorf("%w (after %d attempts)", last, importAttempts)
}

// post signs and sends body to path, decoding a 200 answer into out.
func (im *importer) post(ctx context.Context, path string, body []byte, out any) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, im.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	n := hex.EncodeToString(nonce)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(push.HeaderKey, im.key)
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, n)
	req.Header.Set(push.HeaderSignature, push.Sign(im.secret, http.MethodPost, path, ts, n, body))
	resp, err := im.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, "", fmt.Errorf("answer is not JSON: %w", err)
		}
	}
	return resp.StatusCode, strings.TrimSpace(string(raw)), nil
}

// generateImport writes a synthetic export of n users.
func generateImport(w io.Writer, n int, password string) error {
	switch {
	case n < 2 || n > 1_000_000:
		return fmt.Errorf("import --generate %d: want 2-1000000 users", n)
	case len(password) < 8:
		return errors.New("import --generate: --password of at least 8 characters is required (the users log in with it)")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	name := func(i int) string { return fmt.Sprintf("user%05d", i) }
	var file struct {
		Users       []map[string]string `json:"users"`
		Friendships []importPair        `json:"friendships"`
		Groups      []map[string]any    `json:"groups"`
	}
	for i := 1; i <= n; i++ {
		file.Users = append(file.Users, map[string]string{"username": name(i), "password_hash": string(hash), "display_name": fmt.Sprintf("User %d", i)})
		for j := i + 1; j <= i+3 && j <= n; j++ {
			file.Friendships = append(file.Friendships, importPair{User: name(i), Friend: name(j)})
		}
	}
	for g := 0; g*20+2 <= n; g++ {
		var members []map[string]string
		for i := g*20 + 2; i <= g*20+20 && i <= n; i++ {
			m := map[string]string{"username": name(i)}
			if i == g*20+2 {
				m["role"] = "admin"
			}
			members = append(members, m)
		}
		file.Groups = append(file.Groups, map[string]any{"id": fmt.Sprintf("G%05d", g+1), "name": fmt.Sprintf("group %d", g+1),
			"owner": name(g*20 + 1), "members": members})
	}
	enc := json.NewEncoder(w)
	return enc.Encode(file)
}

// check logs imported users in and has them chat: n pairs of friends
// (spread over the friendships) write to each other, and n groups' owners
// (spread over the groups) write to their group, each message read back
// by the other side. Users of an outside source are skipped (their
// password is not the check's).
func (im *importer) check(ctx context.Context, file importFile, groupIDs map[string]string, n int, password string) error {
	local := map[string]bool{}
	for _, raw := range file.Users {
		var u importUser
		if json.Unmarshal(raw, &u) == nil && (u.AuthSource == "" || u.AuthSource == "local") && u.PasswordHash != "" {
			local[strings.ToLower(u.Username)] = true
		}
	}
	var pairs []importPair
	for _, raw := range file.Friendships {
		var p importPair
		if json.Unmarshal(raw, &p) == nil && local[strings.ToLower(p.User)] && local[strings.ToLower(p.Friend)] {
			pairs = append(pairs, p)
		}
	}
	var groups []importGroup
	for _, raw := range file.Groups {
		var g importGroup
		if json.Unmarshal(raw, &g) == nil && groupIDs[g.ID] != "" && len(g.Members) > 0 && local[strings.ToLower(g.Owner)] && local[strings.ToLower(g.Members[0].Username)] {
			groups = append(groups, g)
		}
	}
	start := time.Now()
	tokens := map[string]string{}
	login := func(user string) (string, error) {
		if tok, ok := tokens[user]; ok {
			return tok, nil
		}
		var out struct {
			Token string `json:"token"`
		}
		body := map[string]string{"username": user, "password": password, "device": "import-check"}
		if im.app != "" {
			body["app"] = im.app
		}
		if err := im.user(ctx, "POST", "/v1/login", "", body, &out); err != nil {
			return "", fmt.Errorf("%s logs in: %w", user, err)
		}
		tokens[user] = out.Token
		return out.Token, nil
	}
	// say sends text from one user (to_user or to_group) and reads it back
	// as reader.
	say := func(from, reader string, to map[string]string, text string) error {
		ft, err := login(from)
		if err != nil {
			return err
		}
		rt, err := login(reader)
		if err != nil {
			return err
		}
		to["text"] = text
		var sent struct {
			ConversationID string `json:"conversation_id"`
			Seq            int64  `json:"seq"`
		}
		if err := im.user(ctx, "POST", "/v1/messages", ft, to, &sent); err != nil {
			return fmt.Errorf("%s sends %v: %w", from, to, err)
		}
		var page struct {
			Messages []struct {
				Sender string `json:"sender"`
				Text   string `json:"text"`
			} `json:"messages"`
		}
		path := fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d", url.PathEscape(sent.ConversationID), sent.Seq-1)
		if err := im.user(ctx, "GET", path, rt, nil, &page); err != nil {
			return fmt.Errorf("%s reads %s: %w", reader, sent.ConversationID, err)
		}
		for _, m := range page.Messages {
			if m.Text == text && strings.EqualFold(m.Sender, from) {
				return nil
			}
		}
		return fmt.Errorf("%s's %q is not in %s's history of %s", from, text, reader, sent.ConversationID)
	}
	checked, checkedGroups := 0, 0
	for _, i := range spread(len(pairs), n) {
		p := pairs[i]
		if err := say(p.User, p.Friend, map[string]string{"to_user": p.Friend}, "import check: hello "+p.Friend); err != nil {
			return fmt.Errorf("import check: %w", err)
		}
		if err := say(p.Friend, p.User, map[string]string{"to_user": p.User}, "import check: hello "+p.User); err != nil {
			return fmt.Errorf("import check: %w", err)
		}
		checked++
	}
	for _, i := range spread(len(groups), n) {
		g := groups[i]
		if err := say(g.Owner, g.Members[0].Username, map[string]string{"to_group": groupIDs[g.ID]}, "import check: hello group "+g.ID); err != nil {
			return fmt.Errorf("import check: %w", err)
		}
		checkedGroups++
	}
	if checked == 0 && checkedGroups == 0 {
		return errors.New("import check: no imported local friends or groups to check")
	}
	fmt.Fprintf(im.stdout, "check: %d users logged in, %d pairs of friends and %d groups chatted, in %.1fs\n",
		len(tokens), checked, checkedGroups, time.Since(start).Seconds())
	return nil
}

// spread picks up to n indexes of 0..total-1, evenly apart.
func spread(total, n int) []int {
	if n >= total {
		n = total
	}
	out := make([]int, 0, n)
	for k := range n {
		out = append(out, k*total/n)
	}
	return out
}

// user makes one call of the user API (token: Bearer, if set) and decodes
// a 2xx answer into out.
func (im *importer) user(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, im.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := im.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return json.Unmarshal(raw, out)
}
