package docs

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// codeSpan matches `code` in a line of Markdown.
var codeSpan = regexp.MustCompile("`([^`]+)`")

// staleCode checks a table of "where the code runs": in each cell, a
// `path/file.go` names a file, and the `Func` or `Type.Method` spans after
// it (up to the next file, or an arrow to another service) must be
// declared in that file. It returns one line per name it cannot find.
func staleCode(root, page, section string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, page))
	if err != nil {
		return nil, err
	}
	text := string(b)
	start := strings.Index(text, section)
	if start < 0 {
		return []string{fmt.Sprintf("%s has no section %q", page, section)}, nil
	}
	text = text[start+len(section):]
	if end := strings.Index(text, "\n#"); end >= 0 {
		text = text[:end]
	}
	var out []string
	rows := 0
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		rows++
		for _, cell := range strings.Split(line, "|") {
			file := ""
			for _, part := range strings.Split(cell, "→") {
				for _, m := range codeSpan.FindAllStringSubmatch(part, -1) {
					span := m[1]
					switch {
					case strings.HasSuffix(span, ".go"):
						file = span
						if _, err := os.Stat(filepath.Join(root, file)); err != nil {
							out = append(out, fmt.Sprintf("%s: %s does not exist", page, file))
							file = ""
						}
					case file != "":
						ok, err := declares(filepath.Join(root, file), span)
						if err != nil {
							return nil, err
						}
						if !ok {
							out = append(out, fmt.Sprintf("%s: %s declares no %s", page, file, span))
						}
					}
				}
				file = "" // past an arrow, the call is in another file
			}
		}
	}
	if rows < 2 {
		out = append(out, fmt.Sprintf("%s: the section %q has no table", page, section))
	}
	return out, nil
}

// declares reports whether the Go file declares name: a function, a type,
// or a method written Type.Method.
func declares(path, name string) (bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return false, err
	}
	recv, fn, isMethod := strings.Cut(name, ".")
	if !isMethod {
		fn = name
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Name.Name != fn {
				continue
			}
			if !isMethod && d.Recv == nil {
				return true, nil
			}
			if isMethod && d.Recv != nil && receiverName(d.Recv.List[0].Type) == recv {
				return true, nil
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && !isMethod && ts.Name.Name == name {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

func receiverName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return receiverName(e.X)
	case *ast.Ident:
		return e.Name
	case *ast.IndexExpr:
		return receiverName(e.X)
	}
	return ""
}

// The "where the checkout runs" table names code that exists.
func TestCheckoutTableNamesRealCode(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := staleCode(root, "docs/architecture.md", "### Where the checkout runs")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		t.Error(p)
	}
}

// TestStaleCodeIsFound proves the table check can fail.
func TestStaleCodeIsFound(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.go"), []byte("package a\n\ntype T struct{}\n\nfunc (t *T) Run() {}\n\nfunc Place() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	page := "# X\n\n### Where\n\n| step | where |\n|---|---|\n" +
		"| one | `a.go`: `Place`, `T.Run`, `T` |\n" +
		"| two | `a.go`: `T.Gone`, `Missing` → `other.Call` |\n" +
		"| three | `b.go`: `Place` |\n\n## Next\n"
	if err := os.WriteFile(filepath.Join(root, "p.md"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := staleCode(root, "p.md", "### Where")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p.md: a.go declares no T.Gone", "p.md: a.go declares no Missing", "p.md: b.go does not exist"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
