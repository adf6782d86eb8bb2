package contractcheck

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// generator makes values from schemas: valid ones for the requests the
// checker expects to succeed, and wrong ones (mutations) for the requests
// the document refuses. Values are JSON-shaped: string, float64, bool,
// []any, map[string]any.
type generator struct {
	// real gives a real value by field or parameter name (--set, or one
	// the service answered earlier), to use instead of a made-up one.
	real func(name string) (string, bool)
	now  time.Time
	run  string // a random tag of this run, in every made-up name
	seq  atomic.Int64
	year int
}

func newGenerator(real func(string) (string, bool)) *generator {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	now := time.Now()
	return &generator{real: real, now: now, run: hex.EncodeToString(b), year: now.Year()}
}

// uniq is a fresh token made of letters, digits and dashes.
func (g *generator) uniq() string {
	return fmt.Sprintf("%s-%d", g.run, g.seq.Add(1))
}

// flat merges allOf into one schema (properties, required, type), which
// is all the request and response schemas of the documents use allOf for.
func flat(s *openapi3.Schema) *openapi3.Schema {
	if s == nil || len(s.AllOf) == 0 {
		return s
	}
	m := *s
	m.AllOf = nil
	m.Properties = openapi3.Schemas{}
	for k, v := range s.Properties {
		m.Properties[k] = v
	}
	m.Required = append([]string(nil), s.Required...)
	for _, ref := range s.AllOf {
		if ref == nil || ref.Value == nil {
			continue
		}
		sub := flat(ref.Value)
		if m.Type == nil || len(*m.Type) == 0 {
			m.Type = sub.Type
		}
		for k, v := range sub.Properties {
			if _, ok := m.Properties[k]; !ok {
				m.Properties[k] = v
			}
		}
		m.Required = append(m.Required, sub.Required...)
	}
	return &m
}

// typeOf names a schema's JSON type: object, array, string, integer,
// number, boolean, or "" when the schema does not say.
func typeOf(s *openapi3.Schema) string {
	if s == nil {
		return ""
	}
	if s.Type != nil {
		for _, t := range s.Type.Slice() {
			if t != "null" {
				return t
			}
		}
	}
	switch {
	case len(s.Properties) > 0:
		return "object"
	case s.Items != nil:
		return "array"
	}
	return ""
}

// accepts says whether s accepts the JSON value v.
func accepts(s *openapi3.Schema, v any) bool {
	return s.VisitJSON(v, openapi3.MultiErrors()) == nil
}

// value makes a valid value for a field or parameter called name.
func (g *generator) value(name string, s *openapi3.Schema) any {
	s = flat(s)
	if s == nil {
		return "contract-check"
	}
	if g.real != nil {
		if v, ok := g.real(name); ok {
			if c, ok := convert(v, typeOf(s)); ok && accepts(s, c) {
				return c
			}
		}
	}
	if s.Example != nil && accepts(s, s.Example) {
		return s.Example
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch typeOf(s) {
	case "object":
		obj := map[string]any{}
		required := slices.Clone(s.Required)
		// anyOf or oneOf of required lists: the first branch's members.
		for _, alts := range [][]*openapi3.SchemaRef{s.AnyOf, s.OneOf} {
			if len(alts) > 0 && alts[0].Value != nil {
				required = append(required, alts[0].Value.Required...)
			}
		}
		for _, req := range required {
			if p := s.Properties[req]; p != nil && p.Value != nil {
				obj[req] = g.value(req, p.Value)
			}
		}
		// minProperties: add optional ones, in name order, until enough.
		for _, k := range slices.Sorted(maps.Keys(s.Properties)) {
			if uint64(len(obj)) >= s.MinProps {
				break
			}
			if _, ok := obj[k]; !ok && s.Properties[k].Value != nil {
				obj[k] = g.value(k, s.Properties[k].Value)
			}
		}
		return obj
	case "array":
		n := max(1, int(s.MinItems))
		var item *openapi3.Schema
		if s.Items != nil {
			item = s.Items.Value
		}
		arr := make([]any, n)
		for i := range arr {
			arr[i] = g.value(singular(name), item)
		}
		return arr
	case "integer", "number":
		return g.number(name, s)
	case "boolean":
		return false
	default:
		return g.str(name, s)
	}
}

// convert reads a --set value as the schema's type.
func convert(v, typ string) (any, bool) {
	switch typ {
	case "integer", "number":
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	case "boolean":
		b, err := strconv.ParseBool(v)
		return b, err == nil
	case "object", "array":
		var out any
		return out, json.Unmarshal([]byte(v), &out) == nil
	}
	return v, true
}

func singular(name string) string {
	if strings.HasSuffix(name, "s") && len(name) > 1 {
		return strings.TrimSuffix(name, "s")
	}
	return name
}

// str makes a valid string: a guess from the field's name and format,
// checked against the schema, else the first of some shapes it accepts.
func (g *generator) str(name string, s *openapi3.Schema) string {
	n := strings.ToLower(name)
	u := g.uniq()
	var guess string
	switch {
	case s.Format == "date-time":
		guess = g.now.UTC().Format(time.RFC3339)
	case s.Format == "date":
		guess = g.now.UTC().Format(time.DateOnly)
	case s.Format == "email" || strings.Contains(n, "email"):
		guess = "contract-check-" + u + "@example.com"
	case strings.Contains(n, "password"):
		guess = "contract check password " + u
	case n == "currency":
		guess = "USD"
	case n == "country":
		guess = "US"
	case n == "postal_code" || n == "zip":
		guess = "10115"
	case n == "city":
		guess = "Springfield"
	case n == "street":
		guess = "1 Contract Street"
	case n == "cvc":
		guess = "123"
	case n == "number":
		guess = "4242 4242 4242 4242" // a card number: the test card that succeeds
	case n == "url" || strings.HasSuffix(n, "_url"):
		guess = "https://203.0.113.7/microshop-contract-check" // TEST-NET-3: public, and nobody's
	case n == "sku":
		guess = "CC-" + u
	case n == "id" || strings.HasSuffix(n, "_id") || strings.HasSuffix(n, "-key"):
		guess = "cc-" + u
	case n == "name":
		guess = "Contract Check " + u
	case n == "description":
		guess = "Made by microshop contract"
	case n == "q":
		guess = "a"
	default:
		guess = "contract-check-" + u
	}
	for _, c := range []string{guess, "cc-" + u, "CC" + strings.ReplaceAll(u, "-", ""), "USD", "123", "abc", "A", "1", strings.Repeat("a", int(s.MinLength))} {
		if s.MaxLength != nil && uint64(len(c)) > *s.MaxLength {
			c = c[:*s.MaxLength]
		}
		if uint64(len(c)) < s.MinLength {
			c += strings.Repeat("x", int(s.MinLength)-len(c))
		}
		if accepts(s, c) {
			return c
		}
	}
	return guess
}

// number makes a valid number for a field called name.
func (g *generator) number(name string, s *openapi3.Schema) float64 {
	n := strings.ToLower(name)
	v := 1.0
	switch {
	case n == "exp_month":
		v = 12
	case n == "exp_year":
		v = float64(g.year + 3)
	case strings.Contains(n, "cents") || strings.Contains(n, "amount") || strings.Contains(n, "price"):
		v = 1500
	case n == "stock":
		v = 10
	}
	lo, hi := math.Inf(-1), math.Inf(1)
	if s.Min != nil {
		lo = *s.Min
		if s.ExclusiveMin.IsTrue() {
			lo++
		}
	}
	if s.Max != nil {
		hi = *s.Max
		if s.ExclusiveMax.IsTrue() {
			hi--
		}
	}
	return math.Max(lo, math.Min(hi, v))
}

// mutation is one way of making a valid value wrong.
type mutation struct {
	what  string // e.g. "missing email", "lines[0].quantity below its minimum"
	apply func(v any) any
}

// wrongType is a JSON value of another type than s wants.
func wrongType(s *openapi3.Schema) any {
	switch typeOf(s) {
	case "string":
		return 12345.0
	case "integer", "number":
		return "not-a-number"
	case "boolean":
		return "yes"
	case "array":
		return "not-an-array"
	case "object":
		return "not-an-object"
	}
	return nil
}

// mutations lists the ways to make valid (a value s accepts) wrong, down
// the whole tree: missing required members, wrong types, broken bounds,
// lengths, patterns and enums, unknown members where s forbids them.
func (g *generator) mutations(s *openapi3.Schema, valid any) []mutation {
	var out []mutation
	g.walk(flat(s), valid, nil, &out)
	return out
}

func (g *generator) walk(s *openapi3.Schema, v any, path []any, out *[]mutation) {
	if s == nil {
		return
	}
	add := func(what string, p []any, f func(any) any) {
		p = append([]any(nil), p...)
		*out = append(*out, mutation{what: what, apply: func(root any) any {
			return edit(root, p, f)
		}})
	}
	switch typeOf(s) {
	case "object":
		obj, _ := v.(map[string]any)
		for _, req := range s.Required {
			p := append(append([]any(nil), path...), req)
			add("missing "+pathString(p), p, func(any) any { return deleted{} })
		}
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			ref := s.Properties[name]
			if ref == nil || ref.Value == nil {
				continue
			}
			ps := flat(ref.Value)
			p := append(append([]any(nil), path...), name)
			if w := wrongType(ps); w != nil {
				add(pathString(p)+" of the wrong type", p, func(any) any { return w })
			}
			for _, c := range g.broken(ps) {
				c := c
				add(pathString(p)+" "+c.what, p, func(any) any { return c.value })
			}
			if child, ok := obj[name]; ok {
				g.walk(ps, child, p, out)
			}
		}
		if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
			p := append(append([]any(nil), path...), "contract_check_unknown")
			add("unknown member "+pathString(p), p, func(any) any { return "x" })
		}
		if s.MinProps > 0 && len(s.Required) == 0 {
			add(fmt.Sprintf("%s with fewer than %d members", orBody(pathString(path)), s.MinProps), path,
				func(any) any { return map[string]any{} })
		}
	case "array":
		arr, _ := v.([]any)
		if s.Items != nil && s.Items.Value != nil && len(arr) > 0 {
			g.walk(flat(s.Items.Value), arr[0], append(append([]any(nil), path...), 0), out)
		}
	}
}

func orBody(s string) string {
	if s == "" {
		return "the body"
	}
	return s
}

// broken lists values that break one of s's own constraints (not its
// type): bounds, lengths, patterns, enums, item counts.
type brokenValue struct {
	what  string
	value any
}

func (g *generator) broken(s *openapi3.Schema) []brokenValue {
	var out []brokenValue
	switch typeOf(s) {
	case "string":
		if len(s.Enum) > 0 {
			out = append(out, brokenValue{"not one of the listed values", "contract-check-not-listed"})
		}
		if s.MinLength > 0 {
			out = append(out, brokenValue{fmt.Sprintf("shorter than %d", s.MinLength), strings.Repeat("x", int(s.MinLength)-1)})
		}
		if s.MaxLength != nil && *s.MaxLength < 1<<16 {
			out = append(out, brokenValue{fmt.Sprintf("longer than %d", *s.MaxLength), strings.Repeat("x", int(*s.MaxLength)+1)})
		}
		if s.Pattern != "" {
			for _, c := range []string{"contract check!", "!", "a b", "lower", "1"} {
				if !accepts(s, c) && (s.MaxLength == nil || uint64(len(c)) <= *s.MaxLength) && uint64(len(c)) >= s.MinLength {
					out = append(out, brokenValue{"not matching " + s.Pattern, c})
					break
				}
			}
		}
	case "integer", "number":
		if s.Min != nil {
			v := *s.Min - 1
			if s.ExclusiveMin.IsTrue() {
				v = *s.Min
			}
			out = append(out, brokenValue{"below its minimum", v})
		}
		if s.Max != nil {
			v := *s.Max + 1
			if s.ExclusiveMax.IsTrue() {
				v = *s.Max
			}
			out = append(out, brokenValue{"above its maximum", v})
		}
		if typeOf(s) == "integer" {
			out = append(out, brokenValue{"not a whole number", 1.5})
		}
	case "array":
		if s.MinItems > 0 {
			out = append(out, brokenValue{fmt.Sprintf("with fewer than %d items", s.MinItems), []any{}})
		}
		if s.MaxItems != nil && *s.MaxItems < 10000 && s.Items != nil && s.Items.Value != nil {
			item := g.value("item", s.Items.Value)
			arr := make([]any, *s.MaxItems+1)
			for i := range arr {
				arr[i] = item
			}
			out = append(out, brokenValue{fmt.Sprintf("with more than %d items", *s.MaxItems), arr})
		}
	}
	return out
}

// paramValues lists wrong values for a query, header or path parameter,
// as the strings that go on the wire.
func (g *generator) paramValues(s *openapi3.Schema) []brokenValue {
	s = flat(s)
	if s == nil {
		return nil
	}
	var out []brokenValue
	switch typeOf(s) {
	case "integer", "number":
		out = append(out, brokenValue{"not a number", "not-a-number"})
	case "boolean":
		out = append(out, brokenValue{"not true or false", "maybe"})
	}
	for _, b := range g.broken(s) {
		switch v := b.value.(type) {
		case string:
			out = append(out, brokenValue{b.what, v})
		case float64:
			out = append(out, brokenValue{b.what, strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return out
}

// paramString writes a valid parameter value as it goes on the wire.
func paramString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// deleted marks a member to remove in edit.
type deleted struct{}

// edit returns a deep copy of root with the value at path replaced by
// f(old), or removed when f returns deleted{}.
func edit(root any, path []any, f func(any) any) any {
	root = deepCopy(root)
	if len(path) == 0 {
		return f(root)
	}
	parent := root
	for _, step := range path[:len(path)-1] {
		switch c := parent.(type) {
		case map[string]any:
			parent = c[step.(string)]
		case []any:
			parent = c[step.(int)]
		}
	}
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		k := last.(string)
		nv := f(c[k])
		if _, del := nv.(deleted); del {
			delete(c, k)
		} else {
			c[k] = nv
		}
	case []any:
		i := last.(int)
		if i < len(c) {
			c[i] = f(c[i])
		}
	}
	return root
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

// pathString writes a path the way problem+json field errors do:
// card.number, lines[0].sku.
func pathString(path []any) string {
	var b strings.Builder
	for _, step := range path {
		switch s := step.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		}
	}
	return b.String()
}
