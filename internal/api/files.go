package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/files"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/store"
)

// Upload limits beyond --files-max-size.
const (
	// multipartSlack is what a multipart body may carry beyond the file
	// itself (boundaries, part headers, small extra fields).
	multipartSlack = 64 << 10
	// uploadTimeout replaces the server's read timeout for an upload body.
	uploadTimeout = 5 * time.Minute
)

// extensions are the optional parts of the API, switched on by the node
// after New (UseFiles, UsePush); until then they answer 404.
type extensions struct {
	files atomic.Pointer[files.Uploads]
	push  atomic.Pointer[push.Verifier]
	admin atomic.Pointer[push.Verifier] // admin.go
}

func (h *Handler) registerExtensions(mux *http.ServeMux) {
	h.handle(mux, "POST /v1/files", h.auth(h.upload))
	h.handle(mux, "GET /v1/files/{id}", h.download)
	h.handle(mux, "POST /v1/push", h.push)
	h.registerAdmin(mux)
}

// UseFiles enables uploads and downloads.
func (h *Handler) UseFiles(u *files.Uploads) { h.ext.files.Store(u) }

// UsePush enables the signed push API: v's keys are the default app's,
// and the other apps' keys are looked up (apps.go).
func (h *Handler) UsePush(v *push.Verifier) {
	v.SetLookup(h.keyLookup(false))
	h.ext.push.Store(v)
}

var (
	errFilesDisabled = &logic.Error{Kind: logic.KindNotFound, Msg: "file uploads disabled", Err: store.ErrNotFound}
	// The same answer for a file that does not exist and one the caller
	// may not see, so ids cannot be probed.
	errNoSuchFile = &logic.Error{Kind: logic.KindNotFound, Msg: "no such file", Err: store.ErrNotFound}
)

// failUpload is fail, except that refused content types get 415.
func (h *Handler) failUpload(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, files.ErrTypeNotAllowed) {
		h.fail(w, r, err)
		return
	}
	var body errorBody
	body.Error.Code = logic.Code(err).String()
	body.Error.Message = logic.Message(err)
	writeJSON(w, http.StatusUnsupportedMediaType, body)
}

// upload is POST /v1/files: one multipart part named "file", streamed to
// storage; other parts before it are skipped within the body limit.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	up := h.ext.files.Load()
	if up == nil {
		h.fail(w, r, errFilesDisabled)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		h.fail(w, r, badRequest("Content-Type must be multipart/form-data with a part named \"file\""))
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadTimeout))
	r.Body = http.MaxBytesReader(w, r.Body, up.MaxSize()+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		h.fail(w, r, badRequest("invalid multipart body: "+err.Error()))
		return
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = &bodyError{err}
			}
			h.failUpload(w, r, uploadError(err, up.MaxSize(), "multipart field \"file\" is required"))
			return
		}
		if part.FormName() != "file" {
			_ = part.Close()
			continue
		}
		m, err := up.Save(r.Context(), id.UserID, part.FileName(), part.Header.Get("Content-Type"), bodyReader{part})
		if err != nil {
			h.failUpload(w, r, uploadError(err, up.MaxSize(), ""))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": m.ID, "name": m.Name, "content_type": m.ContentType, "size": m.Size})
		return
	}
}

// bodyError marks a failure to read the request body, as opposed to a
// failure to store it.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyReader wraps the errors of the upload's part reader in bodyError.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// uploadError turns what an upload can fail with into a client-visible
// error: the body too large (413), a broken body (400), or eofMsg for a
// body that ended without a file. Storage failures stay internal.
func uploadError(err error, max int64, eofMsg string) error {
	var le *logic.Error
	var mbe *http.MaxBytesError
	var be *bodyError
	switch {
	case errors.As(err, &le):
		return err
	case errors.As(err, &mbe):
		return &logic.Error{Kind: logic.KindTooLarge, Msg: fmt.Sprintf("file larger than %d bytes", max), Err: files.ErrTooLarge}
	case errors.Is(err, io.EOF) && eofMsg != "":
		return badRequest(eofMsg)
	case errors.As(err, &be):
		return badRequest("invalid multipart body: " + be.err.Error())
	}
	return err
}

// download is GET /v1/files/{id}, with the Bearer token like every other
// call (not h.auth: a disabled store answers 404 before the token is read).
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	up := h.ext.files.Load()
	if up == nil {
		h.fail(w, r, errFilesDisabled)
		return
	}
	who, err := h.identify(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	fileID := r.PathValue("id")
	if !files.ValidID(fileID) {
		h.fail(w, r, errNoSuchFile)
		return
	}
	visible, err := h.svc.CanSeeFile(r.Context(), who, fileID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible) {
		h.fail(w, r, errNoSuchFile)
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	f, m, err := up.Open(r.Context(), fileID)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, errNoSuchFile)
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", m.ContentType)
	disposition := "attachment"
	if strings.HasPrefix(m.ContentType, "image/") {
		disposition = "inline" // sniffed raster images only: the sniffer never says SVG
	}
	if cd := mime.FormatMediaType(disposition, map[string]string{"filename": m.Name}); cd != "" {
		hd.Set("Content-Disposition", cd)
	} else {
		hd.Set("Content-Disposition", disposition)
	}
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "private, max-age=300")
	cw := h.cutSlowReader(w, m.Size)
	http.ServeContent(cw, r, "", m.Created, f) // Content-Length, Range, HEAD
	if cw.timedOut {
		h.stats.downloadsCut.Add(1)
	}
}

// cutSlowReader bounds how long the download of size bytes may take:
// DownloadGrace plus the time it takes at DownloadMinRate. A reader that
// stops reading would otherwise hold the connection, its goroutine and an
// open file until the TCP keepalive gives up (the server has no
// WriteTimeout, which could not fit both a small and a 10 MB file).
func (h *Handler) cutSlowReader(w http.ResponseWriter, size int64) *deadlineWriter {
	dw := &deadlineWriter{ResponseWriter: w}
	if rate := h.limits.DownloadMinRate; rate > 0 {
		d := h.limits.DownloadGrace + time.Duration(float64(size)/float64(rate)*float64(time.Second))
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
	}
	return dw
}

// deadlineWriter notes that a write failed on its deadline.
type deadlineWriter struct {
	http.ResponseWriter
	timedOut bool
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	n, err := d.ResponseWriter.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		d.timedOut = true
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
