// Package openapi serves a service's OpenAPI 3 document and checks real
// traffic against it, so the document cannot drift from the code.
package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
)

// Document is a loaded and validated OpenAPI document.
type Document struct {
	T    *openapi3.T
	json []byte
}

// Load parses and validates a YAML or JSON OpenAPI document.
func Load(src []byte) (*Document, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(src)
	if err != nil {
		return nil, fmt.Errorf("loading openapi document: %w", err)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("invalid openapi document: %w", err)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encoding openapi document: %w", err)
	}
	return &Document{T: t, json: b}, nil
}

// MustLoad is Load for documents embedded in the binary, where an invalid
// document is a programming error caught by every test run.
func MustLoad(src []byte) *Document {
	d, err := Load(src)
	if err != nil {
		panic(err)
	}
	return d
}

// ServeHTTP serves the document as JSON at /openapi.json.
func (d *Document) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(d.json)
}
