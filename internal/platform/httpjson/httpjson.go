// Package httpjson is the one pair of helpers that read and write JSON
// bodies. Decoding is strict: unknown fields, trailing data, wrong types and
// oversized bodies are all answered as problem+json, never as a 500.
package httpjson

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/microshop/microshop/internal/platform/problem"
)

// MaxBody is the default limit on a request body. The server's middleware
// applies its own limit too; this one guards handlers used without it.
const MaxBody = 1 << 20

// Validator is implemented by request types that can check themselves.
// Valid returns one FieldError per problem, or none.
type Validator interface {
	Valid() []problem.FieldError
}

// Decode reads r's JSON body into v. It returns a *problem.Problem
// describing what is wrong with the body, or nil. When v is a Validator
// and decoding succeeded, its problems are returned as a 422.
func Decode(w http.ResponseWriter, r *http.Request, v any) *problem.Problem {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); ct != "" && (err != nil || mt != "application/json") {
		p := problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			fmt.Sprintf("the body must be application/json, not %q", ct))
		return p
	}
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	if p := DecodeBytes(body, v); p != nil {
		if p.Status == http.StatusRequestTimeout {
			// The rest of the body will never be read: the connection
			// cannot carry another request.
			w.Header().Set("Connection", "close")
		}
		return p
	}
	if val, ok := v.(Validator); ok {
		if errs := val.Valid(); len(errs) > 0 {
			return problem.Invalid(errs)
		}
	}
	return nil
}

// DecodeBytes decodes one JSON value from rd into v, strictly. It is
// separate from Decode so fuzz tests can drive it without HTTP.
func DecodeBytes(rd io.Reader, v any) *problem.Problem {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	// One value only: "{}{}" or "{} x" is a malformed body.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, os.ErrDeadlineExceeded) {
			return decodeProblem(err)
		}
		return problem.BadRequest("the body must hold a single JSON value, with nothing after it")
	}
	return nil
}

func decodeProblem(err error) *problem.Problem {
	var (
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The server's read deadline passed while the body trickled in.
		return problem.SlowBody()
	case errors.As(err, &tooLarge):
		return problem.New(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large",
			fmt.Sprintf("the body must be at most %d bytes", tooLarge.Limit))
	case errors.As(err, &syntax):
		return problem.BadRequest(fmt.Sprintf("malformed JSON at byte %d", syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.BadRequest("malformed JSON: the body ends too early")
	case errors.Is(err, io.EOF):
		return problem.BadRequest("the body is empty; a JSON object is required")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return problem.BadRequest(fmt.Sprintf("the body must be a JSON object, not %s", typeErr.Value))
		}
		return problem.Invalid([]problem.FieldError{{
			Field: field, Reason: fmt.Sprintf("must be %s, not %s", kind(typeErr.Type.String()), typeErr.Value),
		}})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return problem.Invalid([]problem.FieldError{{Field: strings.Trim(name, `"`), Reason: "unknown field"}})
	default:
		return problem.BadRequest("malformed JSON: " + err.Error())
	}
}

// kind names a Go type the way a JSON client thinks of it.
func kind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	default:
		return "an object"
	}
}

// Write sends v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteCached writes v as JSON with status 200 for a read that anyone may
// keep but must check again before each use (Cache-Control: no-cache): a
// weak ETag of the body goes with it, and when r's If-None-Match names that
// ETag the answer is a 304 with no body. The tag is weak because the
// server's compression changes the bytes but not the meaning (RFC 9110,
// 8.8.1), and it is made from the body, so any change to what the read
// returns, stock included, makes a new one.
func WriteCached(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, r, problem.Internal())
		return
	}
	body = append(body, '\n') // as Write's encoder ends it
	sum := sha256.Sum256(body)
	etag := `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if NoneMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// NoneMatch reports whether the If-None-Match header value ifNoneMatch
// names etag, by the weak comparison RFC 9110 (13.1.2) asks for: "*",
// or one of its comma-separated tags equal to etag but for W/.
func NoneMatch(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}

// List is the shape of every list response.
type List[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"next_page_token,omitempty"`
}
