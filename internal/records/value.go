package records

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"bulwark/internal/apperr"
)

// A record's fields travel as a JSON object. Values are checked against
// the collection and kept in a canonical form: text as given (valid
// UTF-8), numbers as finite float64, bools, times as RFC 3339 UTC with
// nanoseconds, json values compacted.

// values are a record's fields in canonical form (json.RawMessage each).
type values map[string]json.RawMessage

// parseBody reads a JSON object of fields for c. With partial (PATCH),
// required fields may be missing and a null removes a value; otherwise
// every required field must be present and not null. It returns invalid
// naming the first bad field, in name order.
func parseBody(c Collection, body []byte, partial bool) (values, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, apperr.WithFields("the record must be a JSON object of its fields", apperr.FieldError{Field: "", Code: "not_an_object"})
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, apperr.WithFields("the record must be one JSON object", apperr.FieldError{Field: "", Code: "not_an_object"})
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(values, len(raw))
	for _, name := range names {
		f, ok := c.field(name)
		if !ok {
			return nil, fieldErr(clipName(name), "unknown", "the collection has no field %q", clipName(name))
		}
		v := raw[name]
		if string(v) == "null" {
			if f.Required && !partial {
				return nil, fieldErr(name, "required", "field %q is required", name)
			}
			if f.Required {
				return nil, fieldErr(name, "required", "field %q is required and cannot be removed", name)
			}
			out[name] = nil // removal (PATCH); absent otherwise
			continue
		}
		cv, err := canonical(f, v)
		if err != nil {
			return nil, err
		}
		out[name] = cv
	}
	if !partial {
		for _, f := range c.Fields {
			if f.Required && out[f.Name] == nil {
				return nil, fieldErr(f.Name, "required", "field %q is required", f.Name)
			}
		}
		for name, v := range out {
			if v == nil {
				delete(out, name)
			}
		}
	}
	return out, nil
}

// clipName keeps an unknown field's name short in an error.
func clipName(name string) string {
	if len(name) > 64 {
		name = name[:64]
	}
	return string(bytes.ToValidUTF8([]byte(name), []byte("?")))
}

// canonical checks v against f's type and returns its canonical JSON.
func canonical(f Field, v json.RawMessage) (json.RawMessage, error) {
	wrong := func() error {
		return fieldErr(f.Name, "wrong_type", "field %q must be of type %s", f.Name, f.Type)
	}
	switch f.Type {
	case TypeText:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, wrong()
		}
		if !utf8.ValidString(s) {
			return nil, fieldErr(f.Name, "invalid", "field %q is not valid UTF-8", f.Name)
		}
		if f.Indexed && len(s) > MaxIndexedText {
			return nil, fieldErr(f.Name, "too_large", "an indexed text field holds at most %d bytes", MaxIndexedText)
		}
		return json.Marshal(s)
	case TypeNumber:
		var n json.Number
		if json.Unmarshal(v, &n) != nil {
			return nil, wrong()
		}
		x, err := strconv.ParseFloat(n.String(), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fieldErr(f.Name, "out_of_range", "field %q is not a finite 64-bit number", f.Name)
		}
		return json.Marshal(x)
	case TypeBool:
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return nil, wrong()
		}
		return json.Marshal(b)
	case TypeTime:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, wrong()
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.Year() < 1 || t.Year() > 9999 {
			return nil, fieldErr(f.Name, "wrong_type", "field %q must be an RFC 3339 time", f.Name)
		}
		return json.Marshal(t.UTC().Format(time.RFC3339Nano))
	case TypeJSON:
		if depth(v) > MaxJSONDepth {
			return nil, fieldErr(f.Name, "too_deep", "a json field nests at most %d levels", MaxJSONDepth)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return nil, wrong()
		}
		return buf.Bytes(), nil
	}
	return nil, wrong()
}

// depth is how deeply v nests arrays and objects (v is valid JSON).
func depth(v []byte) int {
	d, most, inString, escaped := 0, 0, false, false
	for _, c := range v {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			d++
			most = max(most, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return most
}

// The key of an indexed value sorts as the values do, compared as bytes:
// 0x00 for no value (it sorts first), else 0x01 and the value's encoding:
// text as its UTF-8 bytes, numbers as IEEE 754 bits made to sort as
// unsigned integers, bools as 0 or 1, times as microseconds since the
// Unix epoch offset to unsigned. A sensitive field's key is the blind
// index of that encoding instead.
var absentKey = []byte{0x00}

// encodeKey returns the sort key of canonical value v of field f.
func encodeKey(f Field, v json.RawMessage) ([]byte, error) {
	if v == nil {
		return absentKey, nil
	}
	switch f.Type {
	case TypeText:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		return append([]byte{0x01}, s...), nil
	case TypeNumber:
		var x float64
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, err
		}
		return numberKey(x), nil
	case TypeBool:
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, err
		}
		if b {
			return []byte{0x01, 0x01}, nil
		}
		return []byte{0x01, 0x00}, nil
	case TypeTime:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, err
		}
		return timeKey(t), nil
	}
	return nil, errors.New("records: field type cannot be indexed")
}

func numberKey(x float64) []byte {
	if x == 0 {
		x = 0 // -0 and +0 are one value
	}
	bits := math.Float64bits(x)
	if bits&(1<<63) != 0 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	return binary.BigEndian.AppendUint64([]byte{0x01}, bits)
}

func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte{0x01}, uint64(t.UnixMicro())^(1<<63))
}

// parseFilterValue reads a where.FIELD value of a query string as a
// value of f, in canonical JSON.
func parseFilterValue(f Field, s string) (json.RawMessage, error) {
	bad := func() error {
		return fieldErr("where."+f.Name, "wrong_type", "where.%s must be a %s value", f.Name, f.Type)
	}
	var v json.RawMessage
	switch f.Type {
	case TypeText:
		if !utf8.ValidString(s) {
			return nil, bad()
		}
		v, _ = json.Marshal(s)
	case TypeNumber:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, bad()
		}
		v, _ = json.Marshal(x)
	case TypeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, bad()
		}
		v, _ = json.Marshal(b)
	case TypeTime:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, bad()
		}
		v, _ = json.Marshal(t.UTC().Format(time.RFC3339Nano))
	default:
		return nil, bad()
	}
	return canonical(f, v)
}
