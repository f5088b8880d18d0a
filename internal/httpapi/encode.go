package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"bulwark/internal/apperr"
)

// maxBodyBytes caps every JSON request body.
const maxBodyBytes = 1 << 20

// validator is implemented by request types that can say what is wrong with
// themselves: Valid returns field name → machine code ("required",
// "too_short", ...), empty when the value is fine.
type validator interface {
	Valid(ctx context.Context) map[string]string
}

// requestError is a request the server could not read at all: not JSON, too
// large, or of another media type. It is answered with 400, 413 or 415.
type requestError struct {
	status  int
	kind    string // problem type suffix
	message string
}

func (e *requestError) Error() string { return e.message }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, kind: string(apperr.Invalid), message: fmt.Sprintf(format, args...)}
}

// decode reads r's JSON body into a T: one JSON value of at most 1 MiB, no
// unknown fields, Content-Type application/json. When T (or *T) is a
// validator, a value it finds wrong is an apperr.Invalid error listing the
// fields. The error is ready for writeError.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	err := decodeInto(w, r, &v)
	return v, err
}

// decodeInto is decode into *pv, which may hold defaults for fields that
// the body leaves out.
func decodeInto[T any](w http.ResponseWriter, r *http.Request, pv *T) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &requestError{status: http.StatusUnsupportedMediaType, kind: "unsupported_media_type",
			message: "the request body must be JSON (Content-Type: application/json)"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(pv); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return badRequest("the request body must hold one JSON value")
	}
	val, ok := any(*pv).(validator)
	if !ok {
		val, ok = any(pv).(validator)
	}
	if ok {
		if problems := val.Valid(r.Context()); len(problems) > 0 {
			fields := make([]apperr.FieldError, 0, len(problems))
			for name, code := range problems {
				fields = append(fields, apperr.FieldError{Field: name, Code: code})
			}
			slices.SortFunc(fields, func(a, b apperr.FieldError) int { return strings.Compare(a.Field, b.Field) })
			return apperr.WithFields("the request has invalid fields", fields...)
		}
	}
	return nil
}

// decodeError describes a JSON decoding failure without echoing the body.
func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		fieldName string
	)
	switch {
	case errors.As(err, &tooLarge):
		return &requestError{status: http.StatusRequestEntityTooLarge, kind: "too_large",
			message: "the request body is larger than " + strconv.Itoa(maxBodyBytes) + " bytes"}
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is not valid JSON")
	case errors.Is(err, io.EOF):
		return badRequest("the request body is empty")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest("the request body has the wrong JSON type")
		}
		return badRequest("field %q has the wrong type", typeErr.Field)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if uq, err := strconv.Unquote(name); err == nil {
			fieldName = uq
		}
		if len(fieldName) > 64 {
			fieldName = fieldName[:64]
		}
		return badRequest("unknown field %q", fieldName)
	}
	return badRequest("the request body is not valid JSON")
}

// encode writes v as a JSON response with the given status. It marshals
// first, so a value that cannot be encoded yields an error (for writeError)
// rather than half a response.
func encode[T any](w http.ResponseWriter, r *http.Request, status int, v T) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, err = w.Write(body)
	return err
}
