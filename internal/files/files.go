// Package files keeps uploaded files: a small blob interface (Blobs) with a
// local-disk implementation (Disk), and Uploads, which checks an upload's
// size and content type while streaming it to the blobs.
//
// Nothing a client sends ever names a path: ids are random and validated
// before use, display names are sanitized and only kept as metadata.
//
// Uploads and Disk are safe for concurrent use.
package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/magpie-im/magpie/internal/logic"
)

// Meta describes a stored file. It is kept beside the bytes.
type Meta struct {
	ID          string    `json:"id"`
	OwnerID     int64     `json:"owner_id"`
	Name        string    `json:"name"`         // sanitized display name, never a path
	ContentType string    `json:"content_type"` // sniffed from the bytes
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"` // hex
	Created     time.Time `json:"created"`
}

// Blobs stores bytes with their metadata under an id. Implementations:
// Disk; an object store can be added behind the same contract.
//
// Ids passed in have been checked with ValidID. Every method returns an
// error matching ErrNotFound for an id that is not stored.
type Blobs interface {
	// Put reads r to EOF and stores its bytes and m under m.ID, filling in
	// m.Size and m.SHA256 from the bytes actually stored. It is atomic:
	// after an error (including one returned by r) nothing is visible
	// and nothing is left behind.
	Put(ctx context.Context, m Meta, r io.Reader) (Meta, error)
	// Open returns the bytes and metadata of a stored file. The caller
	// closes the reader.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, Meta, error)
	// Stat returns the metadata of a stored file.
	Stat(ctx context.Context, id string) (Meta, error)
	// Delete removes a file; deleting a missing file returns ErrNotFound.
	Delete(ctx context.Context, id string) error
}

// Limits used by Uploads.
const (
	MaxNameBytes = 255 // longest display name kept, in bytes
	sniffLen     = 512 // what http.DetectContentType looks at
	idPrefix     = "f_"
	idHexLen     = 32 // 128 random bits
)

// NewID returns a random file id: "f_" and 32 lowercase hex digits.
func NewID() string {
	b := make([]byte, idHexLen/2)
	_, _ = rand.Read(b)
	return idPrefix + hex.EncodeToString(b)
}

// ValidID reports whether id has the shape NewID makes, so it is safe to
// use as a file name.
func ValidID(id string) bool {
	if len(id) != len(idPrefix)+idHexLen || !strings.HasPrefix(id, idPrefix) {
		return false
	}
	for _, c := range id[len(idPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Uploads accepts and serves files. It implements logic.Files.
type Uploads struct {
	blobs   Blobs
	maxSize int64
	allowed []string // media types, or "type/*"
	now     func() time.Time
	quota   quota // per owner, see SetQuota
}

var _ logic.Files = (*Uploads)(nil)

// NewUploads checks uploads against maxSize bytes and the allowed media
// types (entries like "image/png", or "image/*" for a whole family).
func NewUploads(blobs Blobs, maxSize int64, allowed []string) (*Uploads, error) {
	if maxSize <= 0 {
		return nil, errors.New("files: max size must be positive")
	}
	if len(allowed) == 0 {
		return nil, errors.New("files: no content types allowed")
	}
	var norm []string
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		if !strings.Contains(a, "/") {
			return nil, fmt.Errorf("files: %q is not a media type", a)
		}
		norm = append(norm, a)
	}
	return &Uploads{blobs: blobs, maxSize: maxSize, allowed: norm, now: time.Now}, nil
}

// MaxSize is the largest upload accepted, in bytes.
func (u *Uploads) MaxSize() int64 { return u.maxSize }

// Save streams r into storage for owner. name is the client's file name
// (sanitized here), declared the client's Content-Type ("" if none). The
// type kept is the one sniffed from the first 512 bytes; it must be
// allowed, and a declared type that can be recognized from bytes (image,
// audio, video, PDF, ZIP) must match it. At most MaxSize bytes are read
// beyond what is needed to notice an oversized upload; nothing is buffered
// beyond 512 bytes, and a refused or broken upload leaves nothing behind.
func (u *Uploads) Save(ctx context.Context, owner int64, name, declared string, r io.Reader) (Meta, error) {
	head, err := readHead(r)
	if err != nil {
		return Meta{}, err
	}
	n := len(head)
	if n == 0 {
		return Meta{}, empty()
	}
	if int64(n) > u.maxSize {
		return Meta{}, tooLarge(u.maxSize)
	}
	sniffed := http.DetectContentType(head)
	if err := u.checkType(declared, sniffed); err != nil {
		return Meta{}, err
	}
	room, release, err := u.reserve(ctx, owner, u.maxSize)
	if err != nil {
		return Meta{}, err
	}
	body := &limitReader{r: io.MultiReader(bytes.NewReader(head), r), left: room, max: u.maxSize}
	if room < u.maxSize {
		body.over = func() error {
			u.quota.mu.Lock()
			defer u.quota.mu.Unlock()
			return u.quota.exceeded(owner)
		}
	}
	m := Meta{ID: NewID(), OwnerID: owner, Name: SanitizeName(name), ContentType: sniffed, Created: u.now().UTC()}
	m, err = u.blobs.Put(ctx, m, body)
	if err != nil {
		release(0)
		return Meta{}, err
	}
	release(m.Size)
	return m, nil
}

// readHead reads up to sniffLen bytes; only a clean io.EOF ends it early,
// so a broken body is never mistaken for a short file.
func readHead(r io.Reader) ([]byte, error) {
	head := make([]byte, sniffLen)
	n := 0
	for n < len(head) {
		m, err := r.Read(head[n:])
		n += m
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
	}
	return head[:n], nil
}

// checkType applies the allowlist to the sniffed type and compares a
// declared type the sniffer could have recognized.
func (u *Uploads) checkType(declared, sniffed string) error {
	base := mediaType(sniffed)
	if !u.allowedType(base) {
		return typeNotAllowed(fmt.Sprintf("content type not allowed: %s", base))
	}
	d := mediaType(declared)
	if d == "" || d == base || !recognizable(d) {
		return nil
	}
	return typeNotAllowed(fmt.Sprintf("content type not allowed: declared %s, content is %s", d, base))
}

func (u *Uploads) allowedType(t string) bool {
	for _, a := range u.allowed {
		if a == t || (strings.HasSuffix(a, "/*") && strings.HasPrefix(t, a[:len(a)-1])) {
			return true
		}
	}
	return false
}

// recognizable reports whether http.DetectContentType knows the magic
// numbers of a declared type's family, so a mismatch means the bytes are
// not what the client claims. Other declared types (text/csv,
// application/json, office documents) cannot be checked and only the
// sniffed type is judged.
func recognizable(t string) bool {
	switch {
	case strings.HasPrefix(t, "image/"), strings.HasPrefix(t, "audio/"), strings.HasPrefix(t, "video/"):
		return true
	}
	switch t {
	case "application/pdf", "application/zip", "application/x-gzip", "application/gzip", "application/wasm":
		return true
	}
	return false
}

func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	t, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return t
}

// Open returns a stored file.
func (u *Uploads) Open(ctx context.Context, id string) (io.ReadSeekCloser, Meta, error) {
	if !ValidID(id) {
		return nil, Meta{}, ErrNotFound
	}
	return u.blobs.Open(ctx, id)
}

// Meta returns a stored file's metadata.
func (u *Uploads) Meta(ctx context.Context, id string) (Meta, error) {
	if !ValidID(id) {
		return Meta{}, ErrNotFound
	}
	return u.blobs.Stat(ctx, id)
}

// Stat implements logic.Files.
func (u *Uploads) Stat(ctx context.Context, id string) (logic.FileMeta, error) {
	m, err := u.Meta(ctx, id)
	if err != nil {
		return logic.FileMeta{}, err
	}
	return logic.FileMeta{ID: m.ID, OwnerID: m.OwnerID, Name: m.Name, ContentType: m.ContentType, Size: m.Size}, nil
}

// Delete removes a stored file.
func (u *Uploads) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	m, err := u.blobs.Stat(ctx, id)
	if err != nil {
		return err
	}
	if err := u.blobs.Delete(ctx, id); err != nil {
		return err
	}
	u.forget(m)
	return nil
}

// SanitizeName turns a client's file name into a display name: the last
// path element, valid UTF-8, no control or format characters, no quotes,
// slashes or backslashes, at most MaxNameBytes bytes; "file" if nothing
// is left.
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, c := range name {
		switch {
		case c == '"' || c == '\'' || c == '`' || c == ';' || c == '<' || c == '>':
			b.WriteRune('_')
		case unicode.IsSpace(c):
			b.WriteRune(' ')
		case unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == utf8.RuneError:
		default:
			b.WriteRune(c)
		}
	}
	name = strings.TrimSpace(b.String())
	for len(name) > MaxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.Trim(name, ". ")
	if name == "" || filepath.Base(name) != name {
		return "file"
	}
	return name
}

// limitReader fails with tooLarge once more than max bytes were read,
// so an oversized upload is refused while streaming.
type limitReader struct {
	r         io.Reader
	left, max int64
	over      func() error // the error past left, if not tooLarge (the quota's)
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.err()
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, l.err()
	}
	return n, err
}

func (l *limitReader) err() error {
	if l.over != nil {
		return l.over()
	}
	return tooLarge(l.max)
}
