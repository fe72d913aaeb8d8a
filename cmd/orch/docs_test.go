package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/policies"
)

// codeBlock is a fenced code block of a Markdown page.
type codeBlock struct {
	file string
	line int // of the opening fence
	lang string
	text string
}

func (b codeBlock) String() string { return fmt.Sprintf("%s:%d (%s)", b.file, b.line, b.lang) }

func codeBlocks(t *testing.T, path string) []codeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []codeBlock
	var cur *codeBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &codeBlock{file: path, line: n, lang: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: unclosed code block", cur)
	}
	return out
}

// Every code block of docs/ is exercised: blueprints validated (against
// the real plugins and the example plugin of docs/plugins.md, compiled
// here), Go compiled, metric messages decoded and recordings read, and
// every shell line's orch command parsed by the real command tree, its
// make targets found in the Makefile.
func TestDocsCodeBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the documentation's Go")
	}
	pages, _ := filepath.Glob("../../docs/*.md")
	if len(pages) < 5 {
		t.Fatalf("found %d pages in docs/", len(pages))
	}
	// The validator: the orch plugins plus every Go block (a plugin), so a
	// blueprint using the documented plugin validates.
	dir, err := os.MkdirTemp("testdata", "docs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The README's shell lines too.
	for _, b := range codeBlocks(t, "../../README.md") {
		if b.lang == "sh" {
			checkShellBlock(t, b)
		}
	}
	var hcls []codeBlock
	counts := map[string]int{}
	goPkgs := []string{}
	for _, page := range pages {
		for _, b := range codeBlocks(t, page) {
			counts[b.lang]++
			switch b.lang {
			case "hcl":
				hcls = append(hcls, b)
			case "go":
				pkg := regexp.MustCompile(`(?m)^package (\w+)`).FindStringSubmatch(b.text)
				if pkg == nil {
					t.Errorf("%s: no package clause", b)
					continue
				}
				if err := os.MkdirAll(filepath.Join(dir, pkg[1]), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, pkg[1], pkg[1]+".go"), []byte(b.text), 0o644); err != nil {
					t.Fatal(err)
				}
				goPkgs = append(goPkgs, pkg[1])
			case "json":
				checkJSONBlock(t, b)
			case "sh":
				checkShellBlock(t, b)
			case "collectd":
				// collectd.conf: run by a real collectd in collectd_test.go.
			default:
				t.Errorf("%s: a code block of a kind no test exercises (hcl, go, json, sh, collectd)", b)
			}
		}
	}
	var imports, adds string
	for _, p := range goPkgs {
		imports += fmt.Sprintf("\t%q\n", "github.com/orchhq/orch/cmd/orch/"+filepath.ToSlash(filepath.Join(dir, p)))
		adds += ", " + p + ".Plugin{}"
	}
	main := `package main

import (
	"fmt"
	"os"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/kubernetes"
	"github.com/orchhq/orch/plugins/script"
` + imports + `)

// Validates each file given as a blueprint of its own.
func main() {
	r := plugins.NewRegistry()
	if err := r.Add(script.Plugin{}, kubernetes.New()` + adds + `); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	bad := false
	for _, f := range os.Args[1:] {
		if _, err := orchestrator.Validate(r, f); err != nil {
			fmt.Printf("%s: %v\n", f, err)
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
}
`
	if err := os.MkdirAll(filepath.Join(dir, "validate"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "validate", "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "vet", "./"+dir+"/...").CombinedOutput(); err != nil {
		t.Fatalf("the documentation's Go does not vet:\n%s", out)
	}
	args := []string{"run", "./" + filepath.Join(dir, "validate")}
	names := map[string]codeBlock{}
	for i, b := range hcls {
		f := filepath.Join(dir, fmt.Sprintf("block%d.hcl", i))
		if err := os.WriteFile(f, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
		names[f] = b
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		msg := string(out)
		for f, b := range names {
			msg = strings.ReplaceAll(msg, f, b.String())
		}
		t.Fatalf("documented blueprints do not validate:\n%s", msg)
	}
	for _, lang := range []string{"hcl", "go", "json", "sh"} {
		if counts[lang] == 0 {
			t.Errorf("no %s block found: is the extraction broken?", lang)
		}
	}
	t.Logf("code blocks checked: %v", counts)
}

// checkJSONBlock: a metric message decodes; a recording line reads and its
// body decodes.
func checkJSONBlock(t *testing.T, b codeBlock) {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(b.text), &obj); err != nil {
		t.Errorf("%s: not JSON: %v", b, err)
		return
	}
	if _, ok := obj["routing_key"]; ok {
		err := policies.ReadRecords(strings.NewReader(b.text), func(_ int, r policies.Record) error {
			_, err := policies.Decode(r.Body, r.RoutingKey)
			return err
		})
		if err != nil {
			t.Errorf("%s: not a recording line: %v", b, err)
		}
		return
	}
	if _, err := policies.Decode([]byte(b.text), ""); err != nil {
		t.Errorf("%s: not a metric message: %v", b, err)
	}
}

// shellOK are the programs besides orch and make a documented shell line
// may run.
var shellOK = map[string]bool{"systemctl": true, "cp": true, "curl": true, "kubectl": true, "source": true, "ssh": true}

func checkShellBlock(t *testing.T, b codeBlock) {
	t.Helper()
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(b.text, "\\\n", " ")
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("%s line %d", b, i+1)
		for _, words := range shellCommands(shellWords(line)) {
			checkShellCommand(t, where, line, words, makefile)
		}
	}
}

// shellCommands splits a line's words into its commands (&&, ||, ;, |).
func shellCommands(words []string) [][]string {
	var out [][]string
	start := 0
	for i, w := range words {
		if w == "&&" || w == "||" || w == ";" || w == "|" {
			out = append(out, words[start:i])
			start = i + 1
		}
	}
	out = append(out, words[start:])
	return slices.DeleteFunc(out, func(c []string) bool { return len(c) == 0 })
}

func checkShellCommand(t *testing.T, where, line string, words []string, makefile []byte) {
	t.Helper()
	switch words[0] {
	case "orch", "bin/orch":
		if err := parseOrch(words[1:]); err != nil {
			t.Errorf("%s: %q: %v", where, line, err)
		}
	case "make":
		for _, target := range words[1:] {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
				t.Errorf("%s: no make target %q", where, target)
			}
		}
	default:
		if !shellOK[words[0]] {
			t.Errorf("%s: %q runs %s, which no test checks", where, line, words[0])
		}
	}
}

// parseOrch parses an orch command line as orch would, without running it.
func parseOrch(args []string) error {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if cmd == root {
		return fmt.Errorf("no orch command in %q", args)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return err
	}
	return cmd.ValidateRequiredFlags()
}

// shellWords splits a shell line into words: quotes group, $(...) stays in
// its word, an unquoted # starts a comment, a trailing & is dropped.
func shellWords(line string) []string {
	var words []string
	var cur bytes.Buffer
	inWord, quote, depth := false, byte(0), 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			depth++
			cur.WriteString("$(")
			i++
			inWord = true
		case c == ')' && depth > 0:
			depth--
			cur.WriteByte(c)
		case depth == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case depth == 0 && c == '#' && !inWord:
			i = len(line)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if n := len(words); n > 0 && words[n-1] == "&" {
		words = words[:n-1]
	}
	return words
}

// Every orch command has a one-line summary, and every command that runs
// something shows an example in its --help that parses.
func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	root.InitDefaultCompletionCmd()
	checked := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path := c.CommandPath()
		if c.Short == "" {
			t.Errorf("%s: no summary", path)
		}
		if !c.Runnable() || strings.HasPrefix(path, "orch completion") || c.Name() == "help" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: --help has no example", path)
			return
		}
		for _, line := range strings.Split(c.Example, "\n") {
			words := shellWords(line)
			if len(words) == 0 || words[0] != "orch" {
				continue
			}
			checked++
			if err := parseOrch(words[1:]); err != nil {
				t.Errorf("%s: example %q: %v", path, strings.TrimSpace(line), err)
			}
		}
	}
	walk(root)
	if checked < 30 {
		t.Errorf("only %d examples found", checked)
	}
	t.Logf("%d examples parse", checked)
}
