package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 14: the docs said things the code did not do. Every shell block of README.md and
// docs/*.md whose fence says `sh runnable` (today: the README tour's four blocks) runs, in document order, as one bash script per
// file (blocks share variables and the server the first block starts), in a scratch directory,
// with `set -euo pipefail`: a command that fails or a changed flag fails this test. Comment lines
// of the form `# expect: TEXT` after a command assert that the output so far contains TEXT.
//
// The blocks use the documented default ports (7070, 8080, 8443): the test skips when one is
// taken rather than fail on a busy machine, and says so.
func TestRunnableDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the docs' shell blocks against a dev server")
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join("..", "..", "README.md")}, files...)
	ran := 0
	for _, f := range files {
		script, expects, err := runnableScript(f)
		if err != nil {
			t.Fatal(err)
		}
		if script == "" {
			continue
		}
		ran++
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, port := range []string{"7070", "8080", "8443"} {
				if l, err := net.Listen("tcp", "127.0.0.1:"+port); err != nil {
					t.Skipf("port %s is taken: the docs use the default ports", port)
				} else {
					l.Close()
				}
			}
			out := runDocScript(t, script)
			for _, e := range expects {
				if !strings.Contains(out, e) {
					t.Errorf("%s: the output lacks %q (a `# expect:` line)\n%s", f, e, out)
				}
			}
		})
	}
	if ran == 0 {
		t.Fatal("no `sh runnable` block in README.md or docs/*.md")
	}
}

var expectRE = regexp.MustCompile(`^\s*# expect: (.+)$`)

// runnableScript returns the `sh runnable` blocks of a Markdown file joined in order, and the
// texts of their `# expect:` lines.
func runnableScript(path string) (string, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	var script strings.Builder
	var expects []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```sh runnable":
			in = true
		case in && strings.TrimSpace(line) == "```":
			in = false
			script.WriteString("\n")
		case in:
			if m := expectRE.FindStringSubmatch(line); m != nil {
				expects = append(expects, m[1])
			}
			script.WriteString(line + "\n")
		}
	}
	return script.String(), expects, sc.Err()
}

// runDocScript runs script with bash in a scratch directory, with `tokenvault` and `go build
// -o tokenvault ./cmd/tokenvault` giving the binary under test, and kills anything it left in
// the background.
func runDocScript(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	prelude := fmt.Sprintf(`set -euo pipefail
export PATH=%q:"$PATH"
go() { if [ "$*" = "build -o tokenvault ./cmd/tokenvault" ]; then cp %q ./tokenvault; else command go "$@"; fi; }
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
`, filepath.Dir(binPath), binPath)
	// A background `serve` needs a moment: wait for its health check after the line that starts it.
	serveRE := regexp.MustCompile(`(?m)^(.*tokenvault serve .*&.*)$`)
	script = serveRE.ReplaceAllString(script, "$1\nfor _ in $(seq 600); do curl -sf localhost:8080/healthz >/dev/null && break; command sleep 0.1; done")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", prelude+script)
	cmd.Dir = dir
	cmd.Env = append(childEnv(), "HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the runnable blocks failed (%v):\n%s\n--- script ---\n%s", err, out.String(), script)
	}
	return out.String()
}
