package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/magpie-im/magpie/internal/jsoncheck"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/proto/wire"
)

// Every JSON request body of the API, the push API's included, is read
// here: at most MaxBody bytes, then jsoncheck (valid UTF-8 without lone
// surrogates, no duplicate keys, nested at most wire.MaxJSONDepth),
// then encoding/json. Without the check encoding/json would store U+FFFD in
// place of bad bytes and let the last of two keys win.

// decode reads one JSON object of at most MaxBody bytes from r.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if err := jsonContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return readError(err)
	}
	return decodeBody(body, v, false)
}

func jsonContentType(ct string) error {
	if ct != "" && !strings.HasPrefix(ct, "application/json") {
		return badRequest("Content-Type must be application/json")
	}
	return nil
}

// readError is the answer to a body that could not be read.
func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &logic.Error{Kind: logic.KindTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", MaxBody), Err: logic.ErrBadRequest}
	}
	return badRequest("reading body: " + err.Error())
}

// decodeBody checks body strictly and decodes it into v; strict also
// refuses fields v does not have.
func decodeBody(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty body, expected a JSON object")
	}
	// FoldKeys: encoding/json matches keys to fields regardless of case,
	// so "to_user" and "TO_USER" are the same field.
	if err := jsoncheck.Check(body, jsoncheck.Options{MaxDepth: wire.MaxJSONDepth, FoldKeys: true}); err != nil {
		return badRequest(err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON: " + err.Error())
	}
	return nil
}
