package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// A minimal PNG header is enough for http.DetectContentType.
var pngBytes = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{7}, 600)...)

func newUploads(t *testing.T, max int64, types ...string) (*Uploads, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(types) == 0 {
		types = []string{"image/png", "text/plain", "application/pdf"}
	}
	u, err := NewUploads(d, max, types)
	if err != nil {
		t.Fatal(err)
	}
	return u, dir
}

// leftovers lists temporary files an upload left behind.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestSaveAndOpen(t *testing.T) {
	u, _ := newUploads(t, 1<<20)
	ctx := context.Background()
	m, err := u.Save(ctx, 7, "../../etc/cat.png", "image/png", bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pngBytes)
	if !ValidID(m.ID) || m.OwnerID != 7 || m.Name != "cat.png" || m.ContentType != "image/png" ||
		m.Size != int64(len(pngBytes)) || m.SHA256 != hex.EncodeToString(sum[:]) || m.Created.IsZero() {
		t.Fatalf("got meta %+v", m)
	}
	f, got, err := u.Open(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if !bytes.Equal(b, pngBytes) || got != m {
		t.Fatalf("got %d bytes, meta %+v; want %d bytes, %+v", len(b), got, len(pngBytes), m)
	}
	fm, err := u.Stat(ctx, m.ID)
	if err != nil || fm != (logic.FileMeta{ID: m.ID, OwnerID: 7, Name: "cat.png", ContentType: "image/png", Size: m.Size}) {
		t.Fatalf("Stat = %+v, %v", fm, err)
	}
	if err := u.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Stat(ctx, m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat after delete: got %v, want ErrNotFound", err)
	}
}

func TestSaveRefuses(t *testing.T) {
	const max = 2048
	tests := []struct {
		name, declared string
		body           []byte
		wantErr        error
		wantCode       wire.Code
		wantMsg        string
	}{
		{"one byte over the limit", "text/plain", bytes.Repeat([]byte("a"), max+1), ErrTooLarge, wire.CodeTooLarge, "file larger than 2048 bytes"},
		{"far over the limit", "", bytes.Repeat([]byte("a"), 10*max), ErrTooLarge, wire.CodeTooLarge, "file larger than 2048 bytes"},
		{"claims png, is text", "image/png", []byte("hello, not a picture"), ErrTypeNotAllowed, wire.CodeBadRequest, "content type not allowed: declared image/png, content is text/plain"},
		{"claims pdf, is png", "application/pdf", pngBytes[:100], ErrTypeNotAllowed, wire.CodeBadRequest, "content type not allowed: declared application/pdf, content is image/png"},
		{"html is not allowed", "", []byte("<!DOCTYPE html><script>alert(1)</script>"), ErrTypeNotAllowed, wire.CodeBadRequest, "content type not allowed: text/html"},
		{"gif is not allowed here", "image/gif", []byte("GIF89a......"), ErrTypeNotAllowed, wire.CodeBadRequest, "content type not allowed: image/gif"},
		{"empty", "text/plain", nil, ErrEmpty, wire.CodeBadRequest, "empty file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, dir := newUploads(t, max)
			_, err := u.Save(context.Background(), 1, "x", tt.declared, bytes.NewReader(tt.body))
			if !errors.Is(err, tt.wantErr) || logic.Code(err) != tt.wantCode || logic.Message(err) != tt.wantMsg {
				t.Fatalf("got %v (code %v, %q), want %v (code %v, %q)", err, logic.Code(err), logic.Message(err), tt.wantErr, tt.wantCode, tt.wantMsg)
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Fatalf("left behind %v", l)
			}
		})
	}
}

func TestSaveAccepts(t *testing.T) {
	tests := []struct {
		name, declared, wantType string
		body                     []byte
	}{
		{"exactly the limit", "text/plain", "text/plain; charset=utf-8", bytes.Repeat([]byte("a"), 2048)},
		{"no declared type", "", "image/png", pngBytes[:100]},
		{"octet-stream declared", "application/octet-stream", "image/png", pngBytes[:100]},
		{"unverifiable declared type", "text/csv", "text/plain; charset=utf-8", []byte("a,b\n1,2\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := newUploads(t, 2048)
			m, err := u.Save(context.Background(), 1, "x", tt.declared, bytes.NewReader(tt.body))
			if err != nil || m.ContentType != tt.wantType || m.Size != int64(len(tt.body)) {
				t.Fatalf("got %+v, %v; want type %q size %d", m, err, tt.wantType, len(tt.body))
			}
		})
	}
}

func TestWildcardType(t *testing.T) {
	u, _ := newUploads(t, 4096, "image/*")
	if _, err := u.Save(context.Background(), 1, "a.gif", "image/gif", strings.NewReader("GIF89a......")); err != nil {
		t.Fatalf("image/* should allow a GIF: %v", err)
	}
}

// A reader that fails mid-stream (a client that disconnects) leaves nothing.
type brokenReader struct{ n int }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), b.n)
	for i := range p[:n] {
		p[i] = 'a'
	}
	b.n -= n
	return n, nil
}

func TestBrokenUploadLeavesNothing(t *testing.T) {
	u, dir := newUploads(t, 1<<20)
	if _, err := u.Save(context.Background(), 1, "x", "", &brokenReader{n: 5000}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind %v", l)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "??", "*"))
	if len(shards) != 0 {
		t.Fatalf("stored %v", shards)
	}
}

func TestBadIDs(t *testing.T) {
	u, _ := newUploads(t, 4096)
	for _, id := range []string{"", "f_", "../../etc/passwd", "f_../../../../etc/passwd", "f_0123456789abcdef0123456789abcdeF",
		"f_0123456789abcdef0123456789abcdef0", "g_0123456789abcdef0123456789abcdef", "f_0123456789abcdef0123456789abcde/"} {
		if _, _, err := u.Open(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if id := NewID(); !ValidID(id) {
		t.Fatalf("NewID made %q", id)
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\bob\evil.exe`, "evil.exe"},
		{"", "file"},
		{"..", "file"},
		{"a\"b;c'd.txt", "a_b_c_d.txt"},
		{"line\r\nbreak.txt", "line  break.txt"},
		{"tab\there.txt", "tab here.txt"},
		{"bad\xffutf8.txt", "badutf8.txt"},
		{"rtl\u202eexe.txt", "rtlexe.txt"},
		{"héllo wörld.png", "héllo wörld.png"},
		{strings.Repeat("é", 200), strings.Repeat("é", 127)},
		{"  .hidden  ", "hidden"},
	}
	for _, tt := range tests {
		if got := SanitizeName(tt.in); got != tt.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewDiskCleansUnfinished(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp", "up-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDisk(dir); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left %v", l)
	}
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "\x00", "é", `a\b/c`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := SanitizeName(s)
		if n == "" || len(n) > MaxNameBytes || strings.ContainsAny(n, "/\\\"\r\n\x00") || n == "." || n == ".." {
			t.Fatalf("SanitizeName(%q) = %q", s, n)
		}
	})
}
