package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an application error. The set is small on purpose.
type Code string

// The codes an application error can carry.
const (
	Invalid      Code = "invalid"
	Unauthorized Code = "unauthorized"
	Forbidden    Code = "forbidden"
	NotFound     Code = "not_found"
	Conflict     Code = "conflict"
	// PreconditionFailed: a conditional write (If-Match) whose condition
	// no longer holds.
	PreconditionFailed Code = "precondition_failed"
	RateLimited        Code = "rate_limited"
	Unavailable        Code = "unavailable"
	Internal           Code = "internal"
)

// FieldError names one input field that is wrong and why, in a machine code
// ("required", "too_long", ...) and a sentence for people.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Error is an error meant to be shown to the caller.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	// RetryAfter, for rate_limited and unavailable, is when the caller may
	// try again (HTTP Retry-After); 0 says nothing.
	RetryAfter time.Duration
}

// Error returns the message, prefixed by the code.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithFields returns an Invalid error listing every broken field.
func WithFields(message string, fields ...FieldError) *Error {
	return &Error{Code: Invalid, Message: message, Fields: fields}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal
// when there is none. A nil error has no code: CodeOf(nil) is "".
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// MessageOf returns the caller-safe message of err: the message of its
// *Error, or "internal error" when err is not an application error.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// RetryAfterOf returns the RetryAfter of err's *Error, if any.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// FieldsOf returns the field errors of err's *Error, if any.
func FieldsOf(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
