package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/orchestrator"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check blueprint files without deploying them",
		Long: `Parse the blueprint files and everything they import, and check references,
types, relationship cycles, duplicate names and implementations. Every problem
is printed as file:line:col with the source line. Exits 1 on any error.`,
		Example: `  orch validate blueprint.hcl
  orch validate app.hcl shared-types.hcl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := registry()
			if err != nil {
				return err
			}
			bp, err := orchestrator.Validate(reg, args...)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d file(s) valid: %d nodes, %d workflows, %d policy types, %d policies\n",
				len(bp.Sources), len(bp.Nodes), countUser(bp.Workflows, func(w *blueprints.Workflow) bool { return w.Builtin }), countUser(bp.PolicyTypes, func(t *blueprints.PolicyType) bool { return t.Builtin }), len(bp.Policies))
			return nil
		},
	}
}
