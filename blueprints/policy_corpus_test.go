package blueprints_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins/builtin"
)

// TestPolicyParametersAreCheckedWhereTheyAreWritten runs every blueprint of
// testdata/policies through orch validate's own code (the blueprint
// language, then every policy compiled as orch serve compiles it, against
// orch's plugins). A bad policy parameter gives exactly the diagnostics of
// its .want file, on the line that is wrong; a valid_ blueprint passes.
func TestPolicyParametersAreCheckedWhereTheyAreWritten(t *testing.T) {
	reg, err := builtin.Registry()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/policies/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".hcl")
		if name == "common" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := orchestrator.Validate(reg, file)
			if strings.HasPrefix(name, "valid_") {
				if err != nil {
					t.Fatalf("a valid blueprint is refused:\n%v", err)
				}
				return
			}
			invalid++
			var de *orchestrator.DiagnosticsError
			if !errors.As(err, &de) {
				t.Fatalf("want diagnostics, got %v", err)
			}
			for _, d := range de.Diags {
				if d.Subject == nil {
					t.Errorf("diagnostic %q has no source position", d.Summary)
				} else if d.Subject.Filename != file {
					t.Errorf("diagnostic %q points at %s, not at the blueprint", d.Summary, d.Subject.Filename)
				}
			}
			printed := err.Error()
			if !strings.HasPrefix(printed, file+":") || !strings.Contains(printed, " | ") {
				t.Errorf("printed diagnostics do not start with %s:line:col and a source line:\n%s", file, printed)
			}
			base := strings.TrimSuffix(file, ".hcl")
			blueprints.CheckGolden(t, base+".want", blueprints.FormatDiags(de.Diags), printed)
			// The printed text (detail and hint included) is golden too.
			blueprints.CheckGolden(t, base+".txt", printed+"\n", "")
		})
	}
	if invalid < 20 {
		t.Errorf("the corpus has %d bad blueprints, want at least 20", invalid)
	}
	// The control blueprints: every example still validates.
	examples, err := filepath.Glob("../examples/*/blueprint.hcl")
	if err != nil || len(examples) < 5 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	for _, file := range examples {
		if _, err := orchestrator.Validate(reg, file); err != nil {
			t.Errorf("%s is refused:\n%v", file, err)
		}
	}
}
