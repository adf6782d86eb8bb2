package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func parseDockerfile(content string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(content, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

var goDirective = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)

// checkDockerfile checks the image recipe: a multi-stage build of a static
// binary (CGO_ENABLED=0, -trimpath, stripped) on the Go version of go.mod,
// and a final stage that runs it as a non-root user from a minimal base
// with CA certificates, /data as the one volume, /microshop as the
// entrypoint and `serve gateway` as the default command.
func checkDockerfile(content, goMod string) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ins := parseDockerfile(content)
	var froms []int
	for i, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, i)
		}
	}
	if len(froms) < 2 {
		return []string{fmt.Sprintf("%d FROM instructions: not a multi-stage build", len(froms))}
	}
	fromImage := func(i int) (image, alias string) {
		f := strings.Fields(ins[i].args)
		f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
		if len(f) == 0 {
			return "", ""
		}
		if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
			alias = f[2]
		}
		return f[0], alias
	}
	builder, alias := fromImage(froms[0])
	if !strings.HasPrefix(builder, "golang:") {
		addf("the first stage builds FROM %q, want golang:<go version>", builder)
	} else if m := goDirective.FindStringSubmatch(goMod); m != nil {
		if v := strings.TrimPrefix(builder, "golang:"); v != m[1] && !strings.HasPrefix(v, m[1]+".") && !strings.HasPrefix(v, m[1]+"-") {
			addf("the builder is %s, but go.mod says go %s", builder, m[1])
		}
	}
	build := ins[froms[0]:froms[len(froms)-1]]
	var goBuild string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	switch {
	case goBuild == "":
		addf("no RUN ... go build in the build stage")
	default:
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/microshop"} {
			if !strings.Contains(goBuild, want) {
				addf("the go build does not have %s: %s", want, goBuild)
			}
		}
	}

	final, _ := fromImage(froms[len(froms)-1])
	run := ins[froms[len(froms)-1]+1:]
	distroless := strings.HasPrefix(final, "gcr.io/distroless/static")
	if !distroless && final != "scratch" {
		addf("the final stage is FROM %q, want gcr.io/distroless/static-* or scratch", final)
	}
	if distroless && !strings.HasSuffix(final, ":nonroot") {
		addf("the final stage is %q, want a :nonroot distroless tag", final)
	}
	find := func(cmd string) []instruction {
		var out []instruction
		for _, in := range run {
			if in.cmd == cmd {
				out = append(out, in)
			}
		}
		return out
	}
	users := find("USER")
	if len(users) == 0 {
		addf("the final stage has no USER: it would run as root")
	} else {
		u := users[len(users)-1].args
		uid, _, _ := strings.Cut(u, ":")
		if uid != "65532" && uid != "nonroot" {
			addf("the final stage runs as USER %q, want 65532 (non-root)", u)
		}
	}
	copies := find("COPY")
	if !slices.ContainsFunc(copies, func(in instruction) bool {
		return strings.Contains(in.args, "--from="+alias) && strings.Contains(in.args, " /microshop")
	}) {
		addf("the final stage does not COPY --from=%s the binary to /microshop", alias)
	}
	if final == "scratch" && !slices.ContainsFunc(copies, func(in instruction) bool { return strings.Contains(in.args, "/etc/ssl/certs") }) {
		addf("a scratch image needs the CA certificates copied to /etc/ssl/certs")
	}
	if v := find("VOLUME"); len(v) != 1 || !strings.Contains(v[0].args, "/data") || strings.Count(v[0].args, "/") != 1 {
		addf("want exactly one VOLUME, /data; got %v", v)
	}
	jsonArgs := func(cmd string) []string {
		in := find(cmd)
		if len(in) == 0 {
			return nil
		}
		var a []string
		if err := json.Unmarshal([]byte(in[len(in)-1].args), &a); err != nil {
			return []string{"(not exec form) " + in[len(in)-1].args}
		}
		return a
	}
	if got := jsonArgs("ENTRYPOINT"); !slices.Equal(got, []string{"/microshop"}) {
		addf(`ENTRYPOINT is %q, want ["/microshop"]`, got)
	}
	if got := jsonArgs("CMD"); !slices.Equal(got, []string{"serve", "gateway"}) {
		addf(`CMD is %q, want ["serve","gateway"]`, got)
	}
	for _, in := range run {
		if in.cmd == "RUN" {
			addf("line %d: RUN in the final stage (distroless has no shell): %s", in.line, in.args)
		}
	}
	return problems
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfile(t *testing.T) {
	for _, p := range checkDockerfile(readRepoFile(t, "deploy/Dockerfile"), readRepoFile(t, "go.mod")) {
		t.Error(p)
	}
}

func TestDockerIgnoreKeepsSecretsOut(t *testing.T) {
	ignore := readRepoFile(t, "deploy/Dockerfile.dockerignore")
	lines := strings.Split(ignore, "\n")
	for _, want := range []string{"deploy/.env", "data/"} {
		if !slices.Contains(lines, want) {
			t.Errorf("deploy/Dockerfile.dockerignore does not leave out %s", want)
		}
	}
}

// TestDockerfileCheckerFindsBreakage proves the Dockerfile checks can fail.
func TestDockerfileCheckerFindsBreakage(t *testing.T) {
	good := readRepoFile(t, "deploy/Dockerfile")
	goMod := readRepoFile(t, "go.mod")
	if p := checkDockerfile(good, goMod); len(p) > 0 {
		t.Fatalf("the real Dockerfile must pass first: %v", p)
	}
	tests := []struct{ name, old, new, want string }{
		{"root", "USER 65532:65532", "USER root", `runs as USER "root"`},
		{"no USER", "USER 65532:65532\n", "", "has no USER"},
		{"cgo", "CGO_ENABLED=0", "CGO_ENABLED=1", "does not have CGO_ENABLED=0"},
		{"not trimmed", "-trimpath ", "", "does not have -trimpath"},
		{"a fat final image", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM golang:1.26", "want gcr.io/distroless/static-* or scratch"},
		{"another Go", "FROM --platform=$BUILDPLATFORM golang:1.26 AS build", "FROM --platform=$BUILDPLATFORM golang:1.19 AS build", "but go.mod says go"},
		{"a shell-form entrypoint", `ENTRYPOINT ["/microshop"]`, `ENTRYPOINT /microshop`, "ENTRYPOINT is"},
		{"another default", `CMD ["serve", "gateway"]`, `CMD ["run"]`, "CMD is"},
		{"scratch without certificates", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM scratch", "CA certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("the Dockerfile does not contain %q", tt.old)
			}
			p := checkDockerfile(strings.Replace(good, tt.old, tt.new, 1), goMod)
			if !containsProblem(p, tt.want) {
				t.Errorf("want a problem containing %q; got %q", tt.want, p)
			}
		})
	}
	t.Run("single stage", func(t *testing.T) {
		p := checkDockerfile("FROM golang:1.26\nRUN CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\" ./cmd/microshop\nUSER 65532\n", goMod)
		if !containsProblem(p, "not a multi-stage build") {
			t.Errorf("got %q", p)
		}
	})
}
