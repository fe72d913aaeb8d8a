package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/workflows"
)

// countUser counts what the blueprint declares itself, not what orch
// and its plugins build in.
func countUser[T any](items []T, builtin func(T) bool) int {
	n := 0
	for _, it := range items {
		if !builtin(it) {
			n++
		}
	}
	return n
}

// parsePairs reads repeated k=v flags.
func parsePairs(flag string, pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want NAME=VALUE", flag, p)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s %q: %s given twice", flag, p, k)
		}
		out[k] = v
	}
	return out, nil
}

func newDeployCmd(g *globals) *cobra.Command {
	var id string
	var inputs []string
	var inputsFile string
	cmd := &cobra.Command{
		Use:   "deploy FILE...",
		Short: "Deploy a blueprint and run its install workflow",
		Long: `Validate the blueprint, resolve it with the inputs, store it and the new
deployment in the state file, and run install: every node's create, configure
and start operations, a node after the nodes it relates to, independent nodes
in parallel. Progress is printed as it happens; the exit code is 1 unless
install succeeds. Sensitive inputs are never written to the state file: give
them with -i, or in ORCH_INPUT_<NAME> for this and later runs.`,
		Example: `  orch deploy examples/files/blueprint.hcl
  orch deploy app.hcl -d app-prod -i replicas=3 --inputs prod.hcl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parsePairs("-i", inputs)
			if err != nil {
				return err
			}
			req := orchestrator.DeployRequest{Paths: args, ID: id, Inputs: given, InputsFile: inputsFile}
			return g.withBackend(cmd.Context(), func(b backend) error {
				d, x, err := b.Deploy(cmd.Context(), req)
				if err != nil {
					return err
				}
				if g.output != "json" {
					fmt.Fprintf(g.stdout, "Deployment %s created; running install (execution %s)\n", d.ID, x.ID)
				}
				return g.waitExecution(cmd.Context(), b, x)
			})
		},
	}
	cmd.Flags().StringVarP(&id, "deployment", "d", "", "deployment id (default: the file name without extension)")
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "input value NAME=VALUE (repeatable)")
	cmd.Flags().StringVar(&inputsFile, "inputs", "", "file of input values (HCL or JSON attributes: name = value)")
	return cmd
}

func newUndeployCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "undeploy ID",
		Short: "Run uninstall and delete the deployment",
		Long: `Run the uninstall workflow (stop and delete operations, in reverse
dependency order). When it succeeds the deployment is deleted; its executions
and events stay in the state file as history. When it fails the deployment is
kept, so uninstall can be run again.`,
		Example: `  orch undeploy files`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				x, err := b.StartUndeploy(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				werr := g.waitExecution(cmd.Context(), b, x)
				if x, err = b.Execution(context.WithoutCancel(cmd.Context()), x.ID); err != nil {
					return err
				}
				if x.Status != workflows.Succeeded {
					fmt.Fprintf(g.stderr, "Uninstall of %s %s; the deployment is kept, run undeploy again\n", args[0], x.Status)
					return werr
				}
				if g.output != "json" {
					fmt.Fprintf(g.stdout, "Deployment %s deleted\n", args[0])
				}
				return werr
			})
		},
	}
}
