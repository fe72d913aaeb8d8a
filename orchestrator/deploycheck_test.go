package orchestrator_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins/builtin"
)

// An input that gives a policy a bad value is refused at deploy, on the
// line that uses it, as orch validate refuses a literal: `orch policies
// replay` and `orch deploy` resolve through the same Plan.
func TestDeployRefusesAnInputThatBreaksAPolicy(t *testing.T) {
	reg, err := builtin.Registry()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value, want string
	}{
		{"30 s", `"30 s" is not a duration`},
		{"-1m", `"-1m" is negative`},
	} {
		_, err := orchestrator.Plan(reg, orchestrator.DeployRequest{Paths: []string{"../examples/burst/blueprint.hcl"},
			Inputs: map[string]string{"throttle_delay": tc.value, "kubeconfig": "unused"}})
		var de *orchestrator.DiagnosticsError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "examples/burst/blueprint.hcl:83:23: error: Invalid value for throttle_delay") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("throttle_delay=%q: %v", tc.value, err)
		}
	}
	if _, err := orchestrator.Plan(reg, orchestrator.DeployRequest{Paths: []string{"../examples/burst/blueprint.hcl"},
		Inputs: map[string]string{"throttle_delay": "45s", "kubeconfig": "unused"}}); err != nil {
		t.Errorf("a good value is refused: %v", err)
	}
}

// A sensitive input given in the wrong form is refused without showing
// the value, on the command line or from the environment.
func TestAMistypedSensitiveInputIsNotEchoed(t *testing.T) {
	reg, err := builtin.Registry()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secret.hcl")
	if err := os.WriteFile(path, []byte(`input "pin" {
  type      = number
  sensitive = true
}
node "a" { properties = { pin = input.pin } }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = orchestrator.Plan(reg, orchestrator.DeployRequest{Paths: []string{path}, Inputs: map[string]string{"pin": "hunter2"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "not shown: the input is sensitive") {
		t.Errorf("-i pin=hunter2: %v", err)
	}
	t.Setenv("ORCH_INPUT_PIN", "hunter2")
	_, err = orchestrator.Plan(reg, orchestrator.DeployRequest{Paths: []string{path}})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "ORCH_INPUT_PIN") {
		t.Errorf("ORCH_INPUT_PIN=hunter2: %v", err)
	}
}
