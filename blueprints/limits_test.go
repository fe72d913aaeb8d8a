package blueprints

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Inputs found by fuzzing or built to exhaust the parser: each gives
// diagnostics, never a panic or a fatal stack overflow.
func TestParserRefusesWhatWouldCrashIt(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"an unknown max_retries (fuzzed)", "node\"\"{\noperation\"\"{max_retries=", ""},
		{"deeply nested brackets", "x = " + strings.Repeat("[", 60000), "Too deeply nested"},
		{"deeply nested braces", "x = " + strings.Repeat("{a=", 60000), "Too deeply nested"},
		{"deeply nested parentheses", "x = " + strings.Repeat("(", 60000), "Too deeply nested"},
		{"a file over the size limit", "# " + strings.Repeat("x", MaxFileSize), "Blueprint file too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bp, diags := Parse(map[string][]byte{"f.hcl": []byte(tc.src)}, CoreTypes, "f.hcl")
			if bp == nil || !diags.HasErrors() {
				t.Fatalf("no error: %v", diags)
			}
			if tc.want != "" && !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("diagnostics %v, want %q", diags, tc.want)
			}
		})
	}
}

// The nesting scanner skips what is not syntax (strings, comments, heredoc
// bodies) but counts the interpolations within them, and nothing in a
// string or heredoc can hide real nesting after it.
func TestNestingIsMeasuredAsTheParserNests(t *testing.T) {
	deep := strings.Repeat("[", 300)
	for _, tc := range []struct {
		name    string
		src     string
		tooDeep bool
	}{
		{"brackets in a string", `x = "` + deep + `"`, false},
		{"brackets in comments", "# " + deep + "\n// " + deep + "\n/* " + deep + " */\nx = 1", false},
		{"brackets in a heredoc", "x = <<EOT\n" + deep + "\nEOT\n", false},
		{"an escaped quote does not end the string", `x = "\"` + deep + `"`, false},
		{"a literal $${ is no interpolation", `x = "$${` + deep + `"`, false},
		{"nesting in an interpolation", `x = "${` + deep + `"`, true},
		{"nesting in a heredoc's interpolation", "x = <<-EOT\n  ${" + deep + "\n  EOT\n", true},
		{"closing brackets in a string hide nothing", `x = "` + strings.Repeat("]", 300) + `" ` + deep, true},
		{"a quote in a heredoc hides nothing", "x = <<EOT\n\"\nEOT\ny = " + deep, true},
		{"real nesting at the limit", "x = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting), false},
		{"one past the limit", "x = " + strings.Repeat("[", MaxNesting+1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tooDeep([]byte(tc.src), MaxNesting) >= 0; got != tc.tooDeep {
				t.Errorf("too deep = %v, want %v", got, tc.tooDeep)
			}
		})
	}
}

// A blueprint path that is not a regular file (a device that never ends, a
// FIFO that blocks, a directory) is refused before anything is read.
func TestOnlyRegularFilesAreRead(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.hcl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.hcl")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Builtin: CoreTypes}
	if _, diags := l.Load(big); !diags.HasErrors() || !strings.Contains(diags.Error(), "a blueprint file may have at most") {
		t.Errorf("a file over the limit: %v", diags)
	}
	dir := t.TempDir()
	zero, null, sub := filepath.Join(dir, "zero.hcl"), filepath.Join(dir, "null.hcl"), filepath.Join(dir, "dir.hcl")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", null); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{zero, null, sub, fifo} {
		l := &Loader{Builtin: CoreTypes}
		_, diags := l.Load(path)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "is not a regular file") {
			t.Errorf("%s: %v", path, diags)
		}
	}
}

// A blueprint read from disk is a .hcl (or .json) file, and with a root
// (orch serve, for an API client) every file it reads is inside that
// directory tree: no /etc/passwd echoed back in diagnostics, no import
// climbing out with ../ or an absolute path, no symlink out.
func TestFilesReadAreBlueprintsUnderTheRoot(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "app")
	write := func(path, src string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "secret.hcl"), `node "leak" {}`)
	write(filepath.Join(root, "types.hcl"), `node "ok" {}`)
	write(filepath.Join(root, "up.hcl"), `imports = ["../secret.hcl"]`)
	write(filepath.Join(root, "abs.hcl"), `imports = ["`+filepath.Join(dir, "secret.hcl")+`"]`)
	write(filepath.Join(root, "good.hcl"), `imports = ["types.hcl"]`)
	if err := os.Symlink(filepath.Join(dir, "secret.hcl"), filepath.Join(root, "link.hcl")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(root, "via-link.hcl"), `imports = ["link.hcl"]`)
	for _, tc := range []struct {
		path, want string
	}{
		{"/etc/passwd", "is not a blueprint file"},
		{filepath.Join(root, "up.hcl"), "is outside the blueprint's directory"},
		{filepath.Join(root, "abs.hcl"), "is outside the blueprint's directory"},
		{filepath.Join(root, "via-link.hcl"), "is outside the blueprint's directory"},
		{filepath.Join(root, "good.hcl"), ""},
	} {
		l := &Loader{Builtin: CoreTypes, Root: root}
		bp, diags := l.Load(tc.path)
		switch {
		case tc.want == "" && diags.HasErrors():
			t.Errorf("%s: %v", tc.path, diags)
		case tc.want != "" && (!diags.HasErrors() || !strings.Contains(diags.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.path, diags, tc.want)
		case tc.want != "" && len(bp.Nodes) > 0:
			t.Errorf("%s: read %d nodes from outside the root", tc.path, len(bp.Nodes))
		}
	}
	// Without a root (the CLI, on the user's own files) imports may share
	// types from a sibling directory.
	l := &Loader{Builtin: CoreTypes}
	if _, diags := l.Load(filepath.Join(root, "up.hcl")); diags.HasErrors() {
		t.Errorf("without a root: %v", diags)
	}
}

// An output declared sensitive is redacted wherever it is shown or stored,
// though nothing it reads is sensitive.
func TestASensitiveOutputIsRedacted(t *testing.T) {
	bp, diags := Parse(map[string][]byte{"o.hcl": []byte(`
output "dsn" {
  value     = "postgres://app:s3cr3t@db/app"
  sensitive = true
}
output "host" { value = "db" }
`)}, CoreTypes, "o.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	plan, diags := Resolve(bp, testCatalog, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := GoValue(plan.Outputs["dsn"], true); got != Redacted {
		t.Errorf("a sensitive output shows %v", got)
	}
	if got := GoValue(plan.Outputs["host"], true); got != "db" {
		t.Errorf("a plain output shows %v", got)
	}
}
