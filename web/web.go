// Package web is the browser client: plain HTML, CSS and ES modules,
// embedded into the binary and served at / by nodes with the logic role.
// There is no build step; edit the files and rebuild the binary.
//
// magpie.js is the protocol module (login, connect, send with acks,
// sync and gap filling, receipts); app.js and the files it imports are the
// user interface. See docs/web.md.
//
// magpie.js is also the JavaScript SDK (package.json, magpie.d.ts,
// README-sdk.md, tests in sdk_test/). Those files are not embedded or
// served: the embed patterns match only the top-level .html, .css, .js and
// .svg files.
//
// Handler is safe for concurrent use.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed *.html *.css *.js *.svg
var files embed.FS

// csp keeps user content inert even if a bug put it into markup: scripts
// and styles only from this origin, no inline code, no plugins. WebSocket
// connections may go to another host (a gateway on another node).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

type file struct {
	body  []byte
	etag  string
	ctype string
}

// Handler serves the embedded client. Unknown paths are 404; the files are
// revalidated on every load (ETag) so a new binary is picked up at once.
func Handler() http.Handler {
	byPath := map[string]file{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if path.Ext(p) == ".js" {
			ct = "text/javascript; charset=utf-8" // some systems map .js to something else
		}
		byPath["/"+p] = file{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ct}
		return nil
	})
	if err != nil {
		panic("web: reading embedded files: " + err.Error()) // cannot happen: the files are compiled in
	}
	byPath["/"] = byPath["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(f.ctype, "text/html") {
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Frame-Options", "DENY")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}
