package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
)

// Limits of a webhook body (docs/architecture.md §4.3, issue 5).
const (
	maxUpdateGroups    = 100
	maxUpdateGroupLen  = 256 // characters, SCCM's LocalizedDisplayName
	maxDevices         = 5000
	maxDetails         = 100 // field errors shown in one 400 answer
	snowTimeLayout     = "2006-01-02 15:04:05"
	netbiosMaxLen      = 15
	dnsNameMaxLen      = 253
	dnsLabelMaxLen     = 63
	validationFailed   = "validation_failed"
	badJSON            = "bad_json"
	minYear, maxYear   = 1970, 9999
	tierMessage        = "must be one of backend, middle, frontend"
	sysIDMessage       = "must be a ServiceNow sys_id: 32 lowercase hexadecimal characters"
	timeMessage        = "must be a date and time like 2026-12-12 20:00:00 (UTC, as ServiceNow sends it) or RFC 3339 like 2026-12-12T20:00:00Z"
	graphicMessage     = "must contain only printable characters (no control or formatting characters)"
	updateGroupMessage = "must be the name of a software update group: 1 to 256 printable characters, not starting or ending with a space"
	deviceNameMessage  = "must be a device name as SCCM knows it: a NetBIOS name (1 to 15 letters, digits, '-' or '_', not all digits, not starting with '-') or a DNS name (up to 253 characters; dot-separated labels of 1 to 63 letters, digits or '-', not starting or ending with '-')"
)

var (
	changeNumberRE = regexp.MustCompile(`^CHG[0-9]{7,}$`)
	ritmNumberRE   = regexp.MustCompile(`^RITM[0-9]{7,}$`)
	sysIDRE        = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// validate is the validator of webhook bodies. Field names in its errors
// are the JSON names, so a path reads as the client wrote it:
// devices[3].name.
var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	for tag, fn := range map[string]func(string) bool{
		"change_number": changeNumberRE.MatchString,
		"ritm_number":   ritmNumberRE.MatchString,
		"sys_id":        sysIDRE.MatchString,
		"snow_time":     func(s string) bool { _, err := parseTime(s); return err == nil },
		"graphic":       isGraphic,
		"multiline":     isMultiline,
		"update_group":  validUpdateGroup,
		"device_name":   validDeviceName,
	} {
		if err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool { return fn(fl.Field().String()) }); err != nil {
			panic(err)
		}
	}
	return v
}

// parseTime reads a ServiceNow date-time: "YYYY-MM-DD HH:MM:SS" in UTC (as
// GlideRecord.getValue returns it) or RFC 3339. The result has microsecond
// precision, as PostgreSQL stores it, so that versions compare equal after a
// round trip through the database.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(snowTimeLayout, s)
	if err != nil {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, err
	}
	if y := t.UTC().Year(); y < minYear || y > maxYear {
		return time.Time{}, fmt.Errorf("year %d out of range", y)
	}
	return t.UTC().Truncate(time.Microsecond), nil
}

// isGraphic reports whether s has only printable characters: letters,
// marks, numbers, punctuation, symbols and spaces; no control or format
// characters (which hide text, or break SCCM and PostgreSQL text).
func isGraphic(s string) bool {
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}

// isMultiline is isGraphic that also allows tabs and line breaks, for free
// text such as a short description.
func isMultiline(s string) bool {
	for _, r := range s {
		if !unicode.IsGraphic(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

// validUpdateGroup: a software update group name travels to SCCM as data
// (never as script text), so any printable characters are allowed, up to
// SCCM's 256. Leading and trailing spaces are refused: SCCM's console trims
// them, so such a name would never match.
func validUpdateGroup(s string) bool {
	n := utf8.RuneCountInString(s)
	return n >= 1 && n <= maxUpdateGroupLen && isGraphic(s) && strings.TrimSpace(s) == s
}

// validDeviceName accepts what SCCM names a device by: its NetBIOS name, or
// a DNS name that the worker resolves to it.
//
//   - NetBIOS (no dot): 1 to 15 ASCII letters, digits, '-' or '_', not
//     starting with '-', and not all digits (Windows refuses those).
//   - DNS (with dots): at most 253 characters of dot-separated labels, each
//     1 to 63 ASCII letters, digits or '-', not starting or ending with '-';
//     no trailing dot, no underscore (host names do not have them).
func validDeviceName(s string) bool {
	if s == "" {
		return false
	}
	if !strings.Contains(s, ".") {
		if len(s) > netbiosMaxLen || s[0] == '-' {
			return false
		}
		digits := true
		for _, r := range s {
			switch {
			case r >= '0' && r <= '9':
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_':
				digits = false
			default:
				return false
			}
		}
		return !digits
	}
	if len(s) > dnsNameMaxLen {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > dnsLabelMaxLen || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
				return false
			}
		}
	}
	return true
}

// problems collects the field errors of one request.
type problems []FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns the 400 answer for the problems, or nil when there are none.
// Very long lists are cut: a client that sent 5,000 bad devices learns what
// is wrong from the first hundred.
func (p problems) err() *APIError {
	if len(p) == 0 {
		return nil
	}
	details := []FieldError(p)
	if len(details) > maxDetails {
		more := len(details) - maxDetails
		details = append(details[:maxDetails:maxDetails], FieldError{Field: "", Message: fmt.Sprintf("%d more problems not shown", more)})
	}
	return &APIError{Status: http.StatusBadRequest, Code: validationFailed, Message: "the request is invalid; see details", Details: details}
}

// check runs the validator on v and turns its errors into problems.
func (p *problems) check(v any) {
	err := validate.Struct(v)
	var verrs validator.ValidationErrors
	if err == nil || !errors.As(err, &verrs) {
		if err != nil {
			p.add("", "%v", err)
		}
		return
	}
	for _, fe := range verrs {
		p.add(fieldPath(fe), "%s", fieldMessage(fe))
	}
}

// fieldPath is the JSON path of fe: the namespace without the root type.
func fieldPath(fe validator.FieldError) string {
	ns := fe.Namespace()
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return ns
}

// fieldMessage says in words what is wrong with a field.
func fieldMessage(fe validator.FieldError) string {
	collection := fe.Kind() == reflect.Slice || fe.Kind() == reflect.Array
	switch fe.Tag() {
	case "required":
		return "is required"
	case "change_number":
		return "must be a ServiceNow change number like CHG0031234"
	case "ritm_number":
		return "must be a ServiceNow request item number like RITM0010001"
	case "sys_id":
		return sysIDMessage
	case "snow_time":
		return timeMessage
	case "graphic", "multiline":
		return graphicMessage
	case "update_group":
		return updateGroupMessage
	case "device_name":
		return deviceNameMessage
	case "oneof":
		return "must be one of " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "min":
		if collection {
			return "must have at least " + fe.Param() + " " + plural(fe.Param(), "item")
		}
		return "must be at least " + fe.Param() + " " + plural(fe.Param(), "character") + " long"
	case "max":
		if collection {
			return "must have at most " + fe.Param() + " " + plural(fe.Param(), "item")
		}
		return "must be at most " + fe.Param() + " " + plural(fe.Param(), "character") + " long"
	}
	return "is invalid (" + fe.Tag() + ")"
}

func plural(n, word string) string {
	if n == "1" {
		return word
	}
	return word + "s"
}

// decodeJSON decodes a JSON object from raw into v. A body that is not JSON
// is a 400 bad_json saying where (line, column, byte offset); a value of the
// wrong type is a 400 validation_failed naming the field. Unknown fields are
// ignored (docs/architecture.md §4.3).
func decodeJSON(raw []byte, v any) *APIError {
	if len(bytes.TrimSpace(raw)) == 0 {
		return jsonError(raw, 0, "the body is empty; want a JSON object")
	}
	if !utf8.Valid(raw) {
		return jsonError(raw, int64(invalidUTF8At(raw)), "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		var (
			syntax *json.SyntaxError
			typ    *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &syntax):
			// Offset counts the bytes read, the offending one included.
			return jsonError(raw, syntax.Offset-1, syntax.Error())
		case errors.As(err, &typ):
			path := pathAt(raw, typ.Offset)
			if path == "" {
				return jsonError(raw, 0, "the body must be a JSON object, not "+jsonKind(typ.Value))
			}
			var p problems
			p.add(path, "must be %s, not %s", goTypeInJSON(typ.Type), jsonKind(typ.Value))
			return p.err()
		case errors.Is(err, io.ErrUnexpectedEOF):
			return jsonError(raw, int64(len(raw)), "the body ends in the middle of a JSON value")
		default:
			return jsonError(raw, dec.InputOffset(), err.Error())
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return jsonError(raw, dec.InputOffset(), "unexpected data after the JSON object")
	}
	if path := nulField(reflect.ValueOf(v), ""); path != "" {
		// JSON's \u0000 decodes to NUL, which PostgreSQL text refuses: the
		// delivery would be accepted and then fail for ever.
		var p problems
		p.add(path, "must hold only printable characters: it contains a NUL character (\\u0000), which cannot be stored")
		return p.err()
	}
	return nil
}

// jsonError is a bad_json answer that locates the problem.
func jsonError(raw []byte, offset int64, msg string) *APIError {
	offset = min(max(offset, 0), int64(len(raw)))
	line := 1 + bytes.Count(raw[:offset], []byte("\n"))
	col := 1 + utf8.RuneCount(raw[bytes.LastIndexByte(raw[:offset], '\n')+1:offset])
	where := fmt.Sprintf("line %d, column %d (byte offset %d)", line, col, offset)
	return &APIError{
		Status:  http.StatusBadRequest,
		Code:    badJSON,
		Message: "the body is not valid JSON: " + msg + " at " + where,
		Details: []FieldError{{Field: "", Message: msg + " at " + where}},
	}
}

func invalidUTF8At(raw []byte) int {
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(raw)
}

func jsonKind(v string) string {
	switch v {
	case "object", "array":
		return "an " + v
	case "null":
		return v
	}
	if strings.HasPrefix(v, "number") {
		return "a number"
	}
	return "a " + v
}

func goTypeInJSON(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "true or false"
	}
	return "a number"
}

// pathAt returns the JSON path (change.sys_id, devices[3].name) of the value
// that ends at or after byte offset of raw: where encoding/json reports a
// type error. encoding/json's own UnmarshalTypeError.Field drops array
// indexes, which a client with 5,000 devices needs.
func pathAt(raw []byte, offset int64) string {
	type frame struct {
		array   bool
		key     string
		index   int
		wantKey bool
	}
	var stack []*frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		return b.String()
	}
	advance := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.array {
			top.index++
		} else {
			top.wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return path()
		}
		end := dec.InputOffset()
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; !top.array && top.wantKey {
				if key, ok := tok.(string); ok {
					top.key, top.wantKey = key, false
					continue
				}
			}
		}
		switch tok {
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			advance()
			continue
		}
		if end >= offset {
			return path()
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{array: true})
		default:
			advance()
		}
	}
}

// nulField is the JSON path of the first string in v that holds a NUL
// character, or "".
func nulField(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		return nulField(v.Elem(), path)
	case reflect.String:
		if strings.ContainsRune(v.String(), 0) {
			return path
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p := nulField(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			key := fmt.Sprint(iter.Key().Interface())
			if strings.ContainsRune(key, 0) {
				return join(path, key)
			}
			if p := nulField(iter.Value(), join(path, key)); p != "" {
				return p
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if p := nulField(v.Field(i), join(path, name)); p != "" {
				return p
			}
		}
	}
	return ""
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
