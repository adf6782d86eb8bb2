package contracts

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// generator makes values from a document's schemas: valid ones that
// honour every constraint the schema states (the schema's example first,
// else the shortest value that fits), and, from a valid value, wrong
// ones that each break one constraint. It is seeded, so a run is
// repeatable; seq makes the made-up values of one run distinct.
type generator struct {
	rnd *rand.Rand
	seq int
}

func newGenerator(seed uint64) *generator {
	return &generator{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// valid makes a value s accepts, or an error naming what the document
// should add (an example) for a generator to find one.
func (g *generator) valid(path string, s *openapi3.Schema) (any, error) {
	if s == nil {
		return nil, fmt.Errorf("%s: no schema", path)
	}
	if s.Example != nil {
		if err := visit(s, s.Example); err != nil {
			return nil, fmt.Errorf("%s: the example %v breaks its own schema: %v", path, s.Example, err)
		}
		return s.Example, nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0], nil
	}
	switch typeOf(s) {
	case "object":
		obj := map[string]any{}
		required := slices.Clone(s.Required)
		// anyOf and oneOf of required lists: the first branch's members.
		for _, alts := range [][]*openapi3.SchemaRef{s.AnyOf, s.OneOf} {
			if len(alts) > 0 && alts[0].Value != nil {
				required = append(required, alts[0].Value.Required...)
			}
		}
		for _, name := range required {
			p := s.Properties[name]
			if p == nil || p.Value == nil {
				return nil, fmt.Errorf("%s: required member %s has no schema", path, name)
			}
			v, err := g.valid(path+"."+name, p.Value)
			if err != nil {
				return nil, err
			}
			obj[name] = v
		}
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			if uint64(len(obj)) >= s.MinProps {
				break
			}
			if _, ok := obj[name]; !ok {
				v, err := g.valid(path+"."+name, s.Properties[name].Value)
				if err != nil {
					return nil, err
				}
				obj[name] = v
			}
		}
		return obj, visitErr(path, s, obj)
	case "array":
		n := max(1, int(s.MinItems))
		arr := make([]any, n)
		for i := range arr {
			v, err := g.valid(fmt.Sprintf("%s[%d]", path, i), s.Items.Value)
			if err != nil {
				return nil, err
			}
			arr[i] = v
		}
		return arr, visitErr(path, s, arr)
	case "integer", "number":
		lo, hi := -1000.0, 1000.0
		if s.Min != nil {
			lo = *s.Min
		}
		if s.Max != nil {
			hi = *s.Max
		}
		if hi < lo {
			return nil, fmt.Errorf("%s: maximum below minimum", path)
		}
		v := lo + float64(g.rnd.IntN(int(min(hi-lo, 1000))+1))
		return v, visitErr(path, s, v)
	case "boolean":
		return g.rnd.IntN(2) == 1, nil
	case "string":
		g.seq++
		for _, c := range g.candidates(s) {
			if visit(s, c) == nil {
				return c, nil
			}
		}
		return nil, fmt.Errorf("%s: no made-up string fits %s; give it an example", path, describe(s))
	}
	return nil, fmt.Errorf("%s: schema without a type", path)
}

// candidates are strings to try for s, shortest first.
func (g *generator) candidates(s *openapi3.Schema) []string {
	lo, hi := max(int(s.MinLength), 1), 24
	if s.MaxLength != nil {
		hi = min(hi, int(*s.MaxLength))
	}
	switch s.Format {
	case "email":
		return []string{fmt.Sprintf("%s%d@example.com", g.letters(6, "abcdefghijklmnopqrstuvwxyz"), g.seq)}
	case "date-time":
		return []string{"2026-01-02T03:04:05Z"}
	case "date":
		return []string{"2026-01-02"}
	case "uri", "url":
		return []string{"https://example.com/" + g.letters(6, "abcdefghijklmnopqrstuvwxyz")}
	case "uuid":
		return []string{"5f2b8c1e-6a3d-4c7b-9e0f-1a2b3c4d5e6f"}
	}
	// Eight characters where the schema allows, else the nearest length.
	lengths := []int{min(max(8, lo), hi)}
	for n := lo; n <= hi; n++ {
		lengths = append(lengths, n)
	}
	var out []string
	for _, n := range lengths {
		for _, alphabet := range []string{"abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", "abcdefghijklmnopqrstuvwxyz0123456789"} {
			out = append(out, g.letters(n, alphabet))
		}
	}
	return out
}

func (g *generator) letters(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rnd.IntN(len(alphabet))]
	}
	return string(b)
}

// A mutation is one constraint broken: what, and the wrong value.
type mutation struct {
	what  string
	value any
	// absent: the member or parameter is left out.
	absent bool
}

// wrong makes the mutations of a valid value v of s: one per constraint
// s states, each breaking only that one. Nested members are mutated in
// place by the caller through walk.
// A parameter's value is text on the wire: for one (param), a wrong
// type is a word where a number or boolean belongs, and a string has no
// wrong type.
func (g *generator) wrong(s *openapi3.Schema, v any, param bool) []mutation {
	var out []mutation
	add := func(what string, w any) {
		// Only what the document itself refuses is a case.
		if visit(s, w) != nil || s.Format != "" && strings.Contains(what, "format") {
			out = append(out, mutation{what: what, value: w})
		}
	}
	if len(s.Enum) > 0 {
		add("out of enum", fmt.Sprint(s.Enum[0])+"-not-listed")
	}
	switch typeOf(s) {
	case "string":
		str, _ := v.(string)
		if !param {
			add("a number for a string", 12345)
		}
		if s.MaxLength != nil {
			add(fmt.Sprintf("longer than %d", *s.MaxLength), pad(str, int(*s.MaxLength)+1))
		}
		if s.MinLength > 0 {
			r := []rune(str)
			add(fmt.Sprintf("shorter than %d", s.MinLength), string(r[:s.MinLength-1]))
		}
		if s.Pattern != "" {
			for _, bad := range []string{"\x01", "\x00", "\n", "\u009b", "\x7f", " ", "\u00a0", "!", "a", "A", "0"} {
				w := str + bad
				if s.MaxLength != nil && len([]rune(w)) > int(*s.MaxLength) {
					r := []rune(str)
					w = string(r[:len(r)-1]) + bad
				}
				if visit(s, w) != nil {
					add(fmt.Sprintf("pattern broken by %q", bad), w)
					break
				}
			}
			// Blank where the pattern asks for something visible.
			if visit(s, "   ") != nil && s.MinLength <= 3 && (s.MaxLength == nil || *s.MaxLength >= 3) {
				add("only spaces", "   ")
			}
		}
		switch s.Format {
		case "email":
			add("wrong format (email)", "not-an-email")
		case "date-time":
			add("wrong format (date-time)", "yesterday")
		case "date":
			add("wrong format (date)", "2026-13-45")
		case "uri", "url":
			add("wrong format (uri)", "not a url")
		}
	case "integer", "number":
		f, _ := v.(float64)
		if param {
			add("a word for a number", "x"+strconv.FormatFloat(f, 'f', -1, 64))
		} else {
			add("a string for a number", strconv.FormatFloat(f, 'f', -1, 64))
		}
		if typeOf(s) == "integer" {
			add("a fraction for an integer", f+0.5)
		}
		if s.Min != nil {
			add(fmt.Sprintf("below minimum %v", *s.Min), *s.Min-1)
		}
		if s.Max != nil {
			add(fmt.Sprintf("above maximum %v", *s.Max), *s.Max+1)
		}
	case "boolean":
		add("a string for a boolean", "maybe")
	case "array":
		arr, _ := v.([]any)
		add("an object for an array", map[string]any{})
		if s.MinItems > 0 {
			add(fmt.Sprintf("fewer than %d items", s.MinItems), []any{})
		}
		if s.MaxItems != nil && len(arr) > 0 {
			long := make([]any, *s.MaxItems+1)
			for i := range long {
				long[i] = arr[0]
			}
			add(fmt.Sprintf("more than %d items", *s.MaxItems), long)
		}
	case "object":
		obj, _ := v.(map[string]any)
		add("a string for an object", "x")
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			if slices.Contains(s.Required, name) || requiredByBranch(s, name) {
				w := maps.Clone(obj)
				delete(w, name)
				add("missing required "+name, w)
			}
		}
		if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
			w := maps.Clone(obj)
			w["not_a_member"] = "x"
			add("an unknown member", w)
		}
	}
	return out
}

// requiredByBranch says whether every anyOf/oneOf branch of s that the
// generator could pick needs name (the first one, which valid picks).
func requiredByBranch(s *openapi3.Schema, name string) bool {
	for _, alts := range [][]*openapi3.SchemaRef{s.AnyOf, s.OneOf} {
		if len(alts) > 0 && alts[0].Value != nil && slices.Contains(alts[0].Value.Required, name) {
			return true
		}
	}
	return false
}

// walk calls fn for every value in v with its schema and a function that
// returns the whole of v with that value replaced (or removed): the way
// to break one nested member and keep the rest valid.
func walk(s *openapi3.Schema, v any, path string, fn func(path string, s *openapi3.Schema, v any, with func(any, bool) any)) {
	var rec func(s *openapi3.Schema, v any, path string, with func(any, bool) any)
	rec = func(s *openapi3.Schema, v any, path string, with func(any, bool) any) {
		fn(path, s, v, with)
		switch x := v.(type) {
		case map[string]any:
			for _, name := range slices.Sorted(maps.Keys(x)) {
				p := s.Properties[name]
				if p == nil || p.Value == nil {
					continue
				}
				rec(p.Value, x[name], path+"."+name, func(nv any, absent bool) any {
					c := maps.Clone(x)
					if absent {
						delete(c, name)
					} else {
						c[name] = nv
					}
					return with(c, false)
				})
			}
		case []any:
			if len(x) > 0 && s.Items != nil && s.Items.Value != nil {
				rec(s.Items.Value, x[0], path+"[0]", func(nv any, absent bool) any {
					c := slices.Clone(x)
					c[0] = nv
					return with(c, false)
				})
			}
		}
	}
	rec(s, v, path, func(nv any, _ bool) any { return nv })
}

func pad(s string, n int) string {
	r := []rune(s)
	if len(r) == 0 {
		r = []rune{'a'}
	}
	for len(r) < n {
		r = append(r, r[len(r)-1])
	}
	return string(r[:n])
}

func typeOf(s *openapi3.Schema) string {
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

func visit(s *openapi3.Schema, v any) error {
	return s.VisitJSON(v, openapi3.MultiErrors(), openapi3.EnableFormatValidation())
}

func visitErr(path string, s *openapi3.Schema, v any) error {
	if err := visit(s, v); err != nil {
		return fmt.Errorf("%s: the made-up value %v breaks the schema (%v); give it an example", path, v, err)
	}
	return nil
}

func describe(s *openapi3.Schema) string {
	var parts []string
	if s.Pattern != "" {
		parts = append(parts, "pattern "+s.Pattern)
	}
	if s.Format != "" {
		parts = append(parts, "format "+s.Format)
	}
	if len(parts) == 0 {
		return "its schema"
	}
	return strings.Join(parts, ", ")
}
