// Package docs checks the project's Markdown: every relative link names a
// file that exists (and, with a #fragment into a Markdown file, a heading
// that exists), and no page or comment points at a file outside the
// repository, so a newcomer who follows the docs never lands nowhere.
package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"
)

// link matches an inline Markdown link or image: [text](target "title").
var link = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// inlineCode matches `code` within a line.
var inlineCode = regexp.MustCompile("`[^`]*`")

// outsideRefs match references to notes the project was planned from,
// which a clone of the repository does not hold. They are patterns, not
// the names themselves, so this file does not match them.
var outsideRefs = []*regexp.Regexp{
	regexp.MustCompile(`\bDESIGN\.md\b`),
	regexp.MustCompile(`\bSTYLE\.md\b`),
	regexp.MustCompile(`\.\./shared\b`),
	regexp.MustCompile(`shared\s+folder`),
}

// problems walks root and returns one line per broken link or reference
// matching one of outside, sorted.
func problems(root string, outside []*regexp.Regexp) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		isMD := strings.HasSuffix(path, ".md")
		if !isMD && !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		for _, re := range outside {
			if m := re.FindString(text); m != "" {
				out = append(out, fmt.Sprintf("%s names %q, which is not in this repository", rel, m))
			}
		}
		if !isMD {
			return nil
		}
		for _, m := range link.FindAllStringSubmatch(stripCode(text), -1) {
			if why := checkLink(root, path, m[1]); why != "" {
				out = append(out, fmt.Sprintf("%s: link %s: %s", rel, m[1], why))
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// stripCode blanks fenced and indented code blocks and inline code, where
// brackets and parentheses are code, not links.
func stripCode(s string) string {
	var b strings.Builder
	fenced := false
	for line := range strings.Lines(s) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			fenced = !fenced
			b.WriteString("\n")
			continue
		}
		if fenced || strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t") {
			b.WriteString("\n")
			continue
		}
		b.WriteString(inlineCode.ReplaceAllString(line, ""))
	}
	return b.String()
}

// checkLink says what is wrong with target as written in file, or "".
func checkLink(root, file, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return "" // the web is not checked here: this machine has no internet
	}
	name, fragment, _ := strings.Cut(target, "#")
	dest := file
	if name != "" {
		dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(name))
		if strings.HasPrefix(name, "/") {
			dest = filepath.Join(root, filepath.FromSlash(name))
		}
		rel, err := filepath.Rel(root, dest)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "points outside the repository"
		}
		if _, err := os.Stat(dest); err != nil {
			return "no such file"
		}
	}
	if fragment == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	b, err := os.ReadFile(dest)
	if err != nil {
		return err.Error()
	}
	if !headings(string(b))[fragment] {
		return fmt.Sprintf("no heading #%s in %s", fragment, filepath.Base(dest))
	}
	return ""
}

// headings returns the anchors GitHub makes for a page's headings:
// lower case, spaces to hyphens, punctuation dropped, repeats numbered.
func headings(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for line := range strings.Lines(md) {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteRune('-')
			}
		}
		s := slug.String()
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func TestDocsLinksResolve(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := problems(root, outsideRefs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		t.Error(p)
	}
}

// TestCheckerFindsBrokenLinks proves the checker can fail: a small tree
// with one link of each kind, good and bad.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/a.md", "# A page\n\n## Where it runs\n\nSee [b](b.md#the-saga), [gone](missing.md), [bad anchor](b.md#nope),\n"+
		"[here](#where-it-runs), [up](../README.md), [out](../../etc/passwd), [web](https://example.com/x).\n"+
		"`[not a link](nowhere.md)`\n\n    [indented code](nowhere.md)\n")
	write("docs/b.md", "# B\n\n## The saga\n")
	write("README.md", "Read [docs](docs/a.md) and ELSEWHERE.md.\n")
	write("x/y.go", "package y // see ../notes for why\n")
	got, err := problems(root, []*regexp.Regexp{regexp.MustCompile(`ELSEWHERE\.md`), regexp.MustCompile(`\.\./notes\b`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`README.md names "ELSEWHERE.md", which is not in this repository`,
		"docs/a.md: link ../../etc/passwd: points outside the repository",
		"docs/a.md: link b.md#nope: no heading #nope in b.md",
		"docs/a.md: link missing.md: no such file",
		`x/y.go names "../notes", which is not in this repository`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
