package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/magpie-im/magpie/proto/wire"
)

// Files are uploaded over HTTP (POST /v1/files, multipart) and sent as
// messages that reference them: SendRequest{FileID: ref.ID}. A download
// needs the token of a user who can see a message carrying the file (or
// who uploaded it).

// UploadFile uploads the file at path. Its content type comes from the
// file name's extension, or from the first bytes when the extension is
// unknown; the server may refuse types it does not accept (wire.CodeBadRequest)
// and files over its size limit (wire.CodeTooLarge).
func (c *Client) UploadFile(ctx context.Context, path string) (FileRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileRef{}, err
	}
	defer f.Close()
	ct := mime.TypeByExtension(filepath.Ext(path))
	if ct == "" {
		var head [512]byte
		n, err := io.ReadFull(f, head[:])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return FileRef{}, err
		}
		ct = http.DetectContentType(head[:n])
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return FileRef{}, err
		}
	}
	return c.UploadReader(ctx, f, filepath.Base(path), ct)
}

// UploadReader uploads what r yields as a file named name with the given
// content type (application/octet-stream if empty). The body is streamed,
// not buffered. If the server refuses the session token, the upload is
// repeated after a new login only when r is an io.Seeker.
func (c *Client) UploadReader(ctx context.Context, r io.Reader, name, contentType string) (FileRef, error) {
	if name == "" {
		return FileRef{}, badRequest("a file needs a name")
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	for attempt := 0; ; attempt++ {
		li, err := c.credentials(ctx)
		if err != nil {
			return FileRef{}, err
		}
		ref, err := c.upload(ctx, li.Token, r, name, contentType)
		var e *Error
		if errors.As(err, &e) && e.Code.Action() == wire.Relogin && attempt == 0 {
			if s, ok := r.(io.Seeker); ok {
				if _, serr := s.Seek(0, io.SeekStart); serr == nil {
					c.dropToken(li)
					continue
				}
			}
		}
		return ref, err
	}
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")

// upload makes one multipart request, writing the body from a goroutine
// that ends before upload returns.
func (c *Client) upload(ctx context.Context, token string, r io.Reader, name, contentType string) (FileRef, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(name)))
		h.Set("Content-Type", contentType)
		part, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(part, r)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	defer func() {
		pr.Close() // unblocks the writer if the request ended early
		<-done
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/files"), pr)
	if err != nil {
		return FileRef{}, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return FileRef{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return FileRef{}, err
	}
	if resp.StatusCode >= 300 {
		return FileRef{}, httpError(resp, data)
	}
	var ref FileRef
	if err := json.Unmarshal(data, &ref); err != nil {
		return FileRef{}, fmt.Errorf("magpie: decoding POST /v1/files: %w", err)
	}
	return ref, nil
}

// DownloadFile writes file id's bytes to w and returns what the server said
// about it (Size is the number of bytes written). Nothing is written to w
// unless the server answered 200.
func (c *Client) DownloadFile(ctx context.Context, id string, w io.Writer) (FileRef, error) {
	for attempt := 0; ; attempt++ {
		li, err := c.credentials(ctx)
		if err != nil {
			return FileRef{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/files/"+url.PathEscape(id)), nil)
		if err != nil {
			return FileRef{}, err
		}
		req.Header.Set("Authorization", "Bearer "+li.Token)
		resp, err := c.hc.Do(req)
		if err != nil {
			return FileRef{}, err
		}
		if resp.StatusCode >= 300 {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			e := httpError(resp, data)
			if e.Code.Action() == wire.Relogin && attempt == 0 {
				c.dropToken(li)
				continue
			}
			return FileRef{}, e
		}
		ref := FileRef{ID: id, ContentType: resp.Header.Get("Content-Type")}
		if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
			ref.Name = params["filename"]
		}
		ref.Size, err = io.Copy(w, resp.Body)
		resp.Body.Close()
		return ref, err
	}
}
