package blueprints

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the .want files of testdata/invalid")

var testCatalog = &Catalog{
	Workflows:  []string{"script.workflow"},
	Operations: []string{"script"},
}

func loadAndValidate(paths ...string) (*Blueprint, hcl.Diagnostics) {
	l := &Loader{Builtin: CoreTypes}
	bp, diags := l.Load(paths...)
	if !diags.HasErrors() {
		diags = append(diags, Validate(bp, testCatalog)...)
	}
	return bp, diags
}

// formatDiags renders errors as "line:col: summary", one per line, sorted.
func formatDiags(diags hcl.Diagnostics) string {
	var lines []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
		}
		lines = append(lines, pos+": "+d.Summary)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestInvalidBlueprints checks every blueprint of testdata/invalid gives
// exactly the diagnostics (position and summary) of its .want file.
func TestInvalidBlueprints(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("corpus has %d invalid blueprints, want at least 30", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".hcl")
		t.Run(name, func(t *testing.T) {
			bp, diags := loadAndValidate(file)
			if !diags.HasErrors() {
				t.Fatalf("no error for an invalid blueprint")
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic %q has no source position", d.Summary)
					continue
				}
				if d.Subject.Filename != file && !strings.HasPrefix(d.Subject.Filename, "testdata/invalid/") {
					t.Errorf("diagnostic %q points at %s", d.Summary, d.Subject.Filename)
				}
			}
			// The printed form names file:line:col and shows the line.
			var out strings.Builder
			if err := WriteDiagnostics(&out, bp.Files, diags); err != nil {
				t.Fatal(err)
			}
			first := diags[0]
			wantPrefix := fmt.Sprintf("%s:%d:%d: error: %s", file, first.Subject.Start.Line, first.Subject.Start.Column, first.Summary)
			if !strings.HasPrefix(out.String(), wantPrefix) {
				t.Errorf("printed diagnostics start %q, want prefix %q", firstLine(out.String()), wantPrefix)
			}
			if !strings.Contains(out.String(), " | ") {
				t.Errorf("printed diagnostics show no source line:\n%s", out.String())
			}
			checkGolden(t, strings.TrimSuffix(file, ".hcl")+".want", formatDiags(diags), out.String())
		})
	}
}

// checkGolden compares got with a golden file (or, with -update, writes
// it); context is printed beside a difference.
func checkGolden(t *testing.T, golden, got, context string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read %s (run go test -update to create it): %v", golden, err)
	}
	if got != string(want) {
		t.Errorf("differs from %s\ngot:\n%swant:\n%s\nfull output:\n%s", golden, got, want, context)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
