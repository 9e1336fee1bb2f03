package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/files"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
)

const testMaxFile = 4096

var pngBytes = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{7}, 600)...)

// extAPI is the API with uploads and the push API switched on.
type extAPI struct {
	mux *http.ServeMux
	svc *logic.Service
}

func newExtAPI(t testing.TB, keys map[string][]byte, now func() time.Time) extAPI {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	disk, err := files.NewDisk(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	up, err := files.NewUploads(disk, testMaxFile, []string{"image/png", "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := logic.New(logic.Config{TokenSecret: []byte("0123456789abcdef0123456789abcdef"), LoginRate: 1e6, Encoder: envelope.Encoder{}, Files: up},
		st, nobody{}, nobody{}, nobody{}, log)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()); _ = st.Close() })
	mux := http.NewServeMux()
	h := New(mux, svc, log)
	h.UseFiles(up)
	h.UsePush(push.NewVerifier(keys, 0, now))
	return extAPI{mux, svc}
}

// user registers and logs in, returning a token.
func (a extAPI) user(t testing.TB, name string) string {
	t.Helper()
	do(a.mux, "POST", "/v1/users", "", fmt.Sprintf(`{"username":%q,"password":"password-1"}`, name))
	code, out := do(a.mux, "POST", "/v1/login", "", fmt.Sprintf(`{"username":%q,"password":"password-1"}`, name))
	if code != 200 {
		t.Fatalf("login %s: %d %v", name, code, out)
	}
	return out["token"].(string)
}

// multipartBody builds an upload with one "file" part.
func multipartBody(name, contentType string, data []byte) (string, *bytes.Buffer) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("comment", "ignored")
	hd := textproto.MIMEHeader{}
	hd.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	if contentType != "" {
		hd.Set("Content-Type", contentType)
	}
	w, _ := mw.CreatePart(hd)
	_, _ = w.Write(data)
	_ = mw.Close()
	return mw.FormDataContentType(), &buf
}

func (a extAPI) upload(token, contentType string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/v1/files", body)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	a.mux.ServeHTTP(rec, req)
	return rec
}

func (a extAPI) download(token, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	a.mux.ServeHTTP(rec, req)
	return rec
}

// errorOf decodes an error answer into "status code message".
func errorOf(rec *httptest.ResponseRecorder) string {
	var body errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return fmt.Sprintf("%d %s %s", rec.Code, body.Error.Code, body.Error.Message)
}

func TestUploadAndDownload(t *testing.T) {
	a := newExtAPI(t, nil, nil)
	alice := a.user(t, "alice")
	ct, body := multipartBody(`../../"cat".png`, "image/png", pngBytes)
	rec := a.upload(alice, ct, body)
	var raw map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	if rec.Code != 201 || raw["name"] != "_cat_.png" || raw["content_type"] != "image/png" || raw["size"] != float64(len(pngBytes)) {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	id := raw["id"].(string)

	for _, how := range []struct{ token, url string }{
		{alice, "/v1/files/" + id},
		{alice, "/v1/files/" + id + "?access_token=" + alice}, // ignored, not in the way
	} {
		rec = a.download(how.token, how.url)
		h := rec.Header()
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), pngBytes) || h.Get("Content-Type") != "image/png" ||
			h.Get("Content-Length") != fmt.Sprint(len(pngBytes)) || h.Get("Content-Disposition") != `inline; filename=_cat_.png` ||
			h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("download %s: %d %v", how.url, rec.Code, h)
		}
	}

	// Text is not an image: it is downloaded as an attachment.
	ct, body = multipartBody("notes é.txt", "text/plain", []byte("remember the milk"))
	rec = a.upload(alice, ct, body)
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	rec = a.download(alice, "/v1/files/"+raw["id"].(string))
	if rec.Code != 200 || rec.Header().Get("Content-Disposition") != `attachment; filename*=utf-8''notes%20%C3%A9.txt` ||
		rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("text download: %d %v", rec.Code, rec.Header())
	}
}

func TestUploadRefused(t *testing.T) {
	a := newExtAPI(t, nil, nil)
	alice := a.user(t, "alice")
	big := bytes.Repeat([]byte("a"), testMaxFile+1)
	tests := []struct {
		name        string
		token       string
		contentType string
		body        func() (string, io.Reader)
		want        string
	}{
		{"oversized file", alice, "", func() (string, io.Reader) { return multipartBody("big.txt", "text/plain", big) },
			"413 too_large file larger than 4096 bytes"},
		{"far oversized body", alice, "", func() (string, io.Reader) {
			return multipartBody("big.txt", "text/plain", bytes.Repeat([]byte("a"), 200<<10))
		}, "413 too_large file larger than 4096 bytes"},
		{"claims png, is text", alice, "", func() (string, io.Reader) { return multipartBody("x.png", "image/png", []byte("not a png")) },
			"415 bad_request content type not allowed: declared image/png, content is text/plain"},
		{"type not in the allowlist", alice, "", func() (string, io.Reader) {
			return multipartBody("x.html", "", []byte("<html><script>alert(1)</script>"))
		}, "415 bad_request content type not allowed: text/html"},
		{"empty file", alice, "", func() (string, io.Reader) { return multipartBody("x.txt", "text/plain", nil) },
			"400 bad_request empty file"},
		{"no file part", alice, "", func() (string, io.Reader) {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			_ = mw.WriteField("other", "x")
			_ = mw.Close()
			return mw.FormDataContentType(), &buf
		}, `400 bad_request multipart field "file" is required`},
		{"not multipart", alice, "", func() (string, io.Reader) { return "application/json", strings.NewReader(`{}`) },
			`400 bad_request Content-Type must be multipart/form-data with a part named "file"`},
		{"truncated multipart", alice, "", func() (string, io.Reader) {
			ct, b := multipartBody("x.txt", "text/plain", []byte("hello"))
			return ct, bytes.NewReader(b.Bytes()[:b.Len()-20])
		}, "400 bad_request invalid multipart body: unexpected EOF"},
		{"no token", "", "", func() (string, io.Reader) { return multipartBody("x.txt", "text/plain", []byte("hi")) },
			"401 unauthenticated missing Bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := tt.body()
			if got := errorOf(a.upload(tt.token, ct, body)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A file is visible to its owner (and to members who see a message with
// it); anyone else gets the same 404 as for an id that does not exist.
func TestDownloadRefused(t *testing.T) {
	a := newExtAPI(t, nil, nil)
	alice, mallory := a.user(t, "alice"), a.user(t, "mallory")
	ct, body := multipartBody("secret.png", "image/png", pngBytes)
	rec := a.upload(alice, ct, body)
	var raw map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	id := raw["id"].(string)
	tests := []struct {
		name, token, url, want string
	}{
		{"another user", mallory, "/v1/files/" + id, "404 not_found no such file"},
		{"token in the query", "", "/v1/files/" + id + "?access_token=" + alice, "401 unauthenticated missing Bearer token"},
		{"unknown id", alice, "/v1/files/f_00000000000000000000000000000000", "404 not_found no such file"},
		{"malformed id", alice, "/v1/files/..%2f..%2fapi.db", "404 not_found no such file"},
		{"no token", "", "/v1/files/" + id, "401 unauthenticated missing Bearer token"},
		{"bad token", "forged", "/v1/files/" + id, "401 unauthenticated invalid or expired token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorOf(a.download(tt.token, tt.url)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFilesDisabled(t *testing.T) {
	h := newTestAPI(t)
	if code, out := do(h, "GET", "/v1/files/f_00000000000000000000000000000000?access_token=x", "", ""); code != 404 ||
		out["error"].(map[string]any)["message"] != "file uploads disabled" {
		t.Fatalf("got %d %v", code, out)
	}
}

// FuzzUpload feeds arbitrary multipart bodies to the upload handler: no
// panic, no 5xx, and nothing accepted beyond the size limit.
func FuzzUpload(f *testing.F) {
	ct, body := multipartBody("a.png", "image/png", pngBytes)
	boundary := strings.TrimPrefix(ct, "multipart/form-data; boundary=")
	f.Add(boundary, body.Bytes())
	f.Add(boundary, body.Bytes()[:body.Len()/2])
	f.Add("x", []byte("--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhello\r\n--x--\r\n"))
	f.Add("x", []byte("--x\r\n\r\n--x--"))
	f.Add("", []byte{})
	f.Add("x", []byte("--x\n0")) // a malformed part header once answered 500
	a := newExtAPI(f, nil, nil)
	token := a.user(f, "fuzzer")
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		rec := a.upload(token, "multipart/form-data; boundary="+boundary, bytes.NewReader(body))
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Code == 201 {
			var out struct{ Size int64 }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Size <= 0 || out.Size > testMaxFile {
				t.Fatalf("accepted %s", rec.Body)
			}
		}
	})
}
