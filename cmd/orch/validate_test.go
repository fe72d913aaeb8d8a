package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// orch validate -v says which user-defined conditions are compiled, and
// why one is left to the interpreter.
func TestValidateVerboseSaysWhichConditionsAreCompiled(t *testing.T) {
	dir := t.TempDir()
	bp := filepath.Join(dir, "p.hcl")
	src := `
node "web" {}
workflow "react" { uses = "kubernetes.scale" }
policy_type "t" {
  condition "fast" { when = mean(window("cpu", "30s")) > 80 }
  condition "slow" { when = [for v in [mean(window("cpu", "30s"))] : v > 80][0] }
}
policy "p" {
  type    = policy_type.t
  targets = [node.web]
  trigger "fast" { workflow = workflow.react }
}
`
	if err := os.WriteFile(bp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := orch(t, filepath.Join(dir, "state.db"), "validate", "-v", bp)
	if r.code != 0 {
		t.Fatalf("validate: %s%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "condition fast: compiled (float64)") || !strings.Contains(r.stdout, "condition slow: interpreted: ") {
		t.Errorf("validate -v:\n%s", r.stdout)
	}
}
