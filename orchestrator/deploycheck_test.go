package orchestrator_test

import (
	"errors"
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
