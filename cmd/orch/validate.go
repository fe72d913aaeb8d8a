package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check blueprint files without deploying them",
		Long: `Parse the blueprint files and everything they import, and check references,
types, relationship cycles, duplicate names and implementations. Every problem
is printed as file:line:col with the source line. Exits 1 on any error.
With -v it also says, for every condition of a user-defined policy type,
whether it is compiled to Go (the fast path) or left to HCL's interpreter,
and why.`,
		Example: `  orch validate blueprint.hcl
  orch validate app.hcl shared-types.hcl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := registry()
			if err != nil {
				return err
			}
			bp, plan, err := orchestrator.ValidatePlan(reg, args...)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d file(s) valid: %d nodes, %d workflows, %d policy types, %d policies\n",
				len(bp.Sources), len(bp.Nodes), countUser(bp.Workflows, func(w *blueprints.Workflow) bool { return w.Builtin }), countUser(bp.PolicyTypes, func(t *blueprints.PolicyType) bool { return t.Builtin }), len(bp.Policies))
			if g.verbose {
				for _, c := range policies.Compilation(plan) {
					how := "compiled"
					if c.Float {
						how = "compiled (float64)"
					}
					if !c.Compiled {
						how = "interpreted: " + c.Why
					}
					fmt.Fprintf(g.stdout, "policy %s, condition %s: %s\n", c.Policy, c.Condition, how)
				}
			}
			return nil
		},
	}
}
