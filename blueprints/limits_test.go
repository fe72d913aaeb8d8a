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
	for _, path := range []string{"/dev/zero", "/dev/null", "testdata", fifo} {
		l := &Loader{Builtin: CoreTypes}
		_, diags := l.Load(path)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "is not a regular file") {
			t.Errorf("%s: %v", path, diags)
		}
	}
}
