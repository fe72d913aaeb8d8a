package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/workflows"
)

func newDeploymentsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deployments",
		Aliases: []string{"deployment", "dep"},
		Short:   "List and show deployments",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List deployments",
		Example: `  orch deployments list
  orch deployments list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				deps, err := b.Deployments(cmd.Context())
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(deps)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tBLUEPRINT\tNODES\tCREATED\tSTATUS")
				var broken []string
				for _, d := range deps {
					status := "ok"
					if d.Broken != "" {
						status = "broken: " + firstLine(d.Broken)
						broken = append(broken, d.ID)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.ID, d.Blueprint, len(d.Instances), d.CreatedAt.Local().Format("2006-01-02 15:04:05"), status)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(broken) > 0 {
					fmt.Fprintf(g.stdout, "\nThe policies of %s do not run; orch deployments show ID says why.\n", strings.Join(broken, ", "))
				}
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "show ID",
		Short:   "Show a deployment: inputs, node instances, outputs",
		Example: `  orch deployments show files -o json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				d, err := b.Deployment(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(d)
				}
				fmt.Fprintf(g.stdout, "Deployment: %s\nBlueprint:  %s\nDirectory:  %s\nCreated:    %s\n",
					d.ID, d.Blueprint, d.Dir, d.CreatedAt.Local().Format("2006-01-02 15:04:05"))
				if d.Broken != "" {
					fmt.Fprintf(g.stdout, "Status:     broken: its policies do not run\n%s\n", indent(d.Broken, "  "))
				}
				printInputs(g.stdout, d)
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tINSTANCE\tSTATE\tHOST\tRELATIONSHIPS\tATTRIBUTES")
				for _, inst := range workflows.Sorted(d.Instances) {
					rt, _ := json.Marshal(inst.Runtime)
					if inst.Runtime == nil {
						rt = []byte("{}")
					}
					host := inst.Host
					if host == "" {
						host = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", inst.Node, inst.ID, inst.State, host, len(inst.Links), rt)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				printOutputs(g.stdout, d.Outputs, "Outputs:\n", "  ")
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "outputs ID",
		Short: "Print a deployment's outputs, as evaluated after its last execution",
		Long: `Print a deployment's outputs. Outputs that read runtime attributes are
evaluated again after every execution; sensitive ones are shown as (sensitive).`,
		Example: `  orch deployments outputs nodecellar
  orch deployments outputs nodecellar -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				d, err := b.Deployment(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if g.output == "json" {
					if d.Outputs == nil {
						d.Outputs = map[string]any{}
					}
					return g.printJSON(d.Outputs)
				}
				printOutputs(g.stdout, d.Outputs, "", "")
				return nil
			})
		},
	})
	cmd.AddCommand(newUpdateCmd(g))
	return cmd
}

func newUpdateCmd(g *globals) *cobra.Command {
	var inputs []string
	var inputsFile string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "update ID FILE... [-i NAME=VALUE] [--dry-run]",
		Short: "Change a running deployment to a new blueprint or inputs, touching only what changes",
		Long: `Diff the new blueprint (with the deployment's inputs, those given here over
them) against the deployment, print the changes, and carry them out as an
execution: links whose relationship is gone are unlinked, the instances of
removed nodes uninstalled (what links to them unlinking first), the
deployment switched to the new blueprint, added nodes installed (and linked
with the existing ones), and nodes whose properties changed run their
` + "`update`" + ` operation if they have one. Unchanged nodes are not touched. Policies
of the same name keep their state (cooldowns, pauses, decision log), new ones
start with their grace, removed ones stop; orch serve loads them when the
update ends. A node whose type, host or group changed is replaced. The update
resumes after a crash (or with orch executions resume). With --dry-run it
prints the changes and changes nothing.`,
		Example: `  orch deployments update shop shop-v2.hcl --dry-run
  orch deployments update shop shop-v2.hcl -i replicas=3`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parsePairs("-i", inputs)
			if err != nil {
				return err
			}
			req := orchestrator.UpdateRequest{DeployRequest: orchestrator.DeployRequest{Paths: args[1:], ID: args[0], Inputs: given, InputsFile: inputsFile}, DryRun: dryRun}
			return g.withBackend(cmd.Context(), func(b backend) error {
				u, x, err := b.Update(cmd.Context(), req)
				if err != nil {
					return err
				}
				if g.output == "json" && x == nil {
					return g.printJSON(u)
				}
				if g.output != "json" {
					verb := "Update of %s:\n"
					if dryRun {
						verb = "Update of %s would (dry run, nothing changed):\n"
					}
					fmt.Fprintf(g.stdout, verb, args[0])
					for _, c := range u.Changes {
						fmt.Fprintf(g.stdout, "  %s\n", c)
					}
				}
				if x == nil {
					return nil
				}
				return g.waitExecution(cmd.Context(), b, x)
			})
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "input value NAME=VALUE (repeatable); inputs not given keep their values")
	cmd.Flags().StringVar(&inputsFile, "inputs", "", "file of input values (HCL or JSON attributes: name = value)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes, change nothing")
	return cmd
}

// printOutputs prints `name = value` lines, under a heading when there are
// any.
func printOutputs(w io.Writer, outputs map[string]any, heading, indent string) {
	if len(outputs) == 0 {
		return
	}
	fmt.Fprint(w, heading)
	for _, k := range slices.Sorted(maps.Keys(outputs)) {
		v, _ := json.Marshal(outputs[k])
		fmt.Fprintf(w, "%s%s = %s\n", indent, k, v)
	}
}

// printInputs prints a deployment's inputs: every declared one with its
// value, "(default)" when it was not given, and its description. Without
// the blueprint's declarations (it could not be resolved here), the stored
// values.
func printInputs(w io.Writer, d *orchestrator.Deployment) {
	if len(d.InputList) == 0 {
		if len(d.Inputs) == 0 && len(d.SensitiveInputs) == 0 {
			return
		}
		fmt.Fprintln(w, "Inputs:")
		for _, k := range slices.Sorted(maps.Keys(d.Inputs)) {
			fmt.Fprintf(w, "  %s = %s\n", k, d.Inputs[k])
		}
		for _, k := range d.SensitiveInputs {
			fmt.Fprintf(w, "  %s = (sensitive, not stored)\n", k)
		}
		return
	}
	fmt.Fprintln(w, "Inputs:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, in := range d.InputList {
		value := "(not set)"
		switch {
		case in.Sensitive && !slices.Contains(d.SensitiveInputs, in.Name) && in.Default:
			value = "(sensitive, default)"
		case in.Sensitive:
			value = "(sensitive, not stored)"
		case in.Value != nil:
			b, _ := json.Marshal(in.Value)
			value = string(b)
			if in.Default {
				value += " (default)"
			}
		}
		desc := ""
		if in.Description != "" {
			desc = "# " + in.Description
		}
		fmt.Fprintf(tw, "  %s = %s\t%s\n", in.Name, value, desc)
	}
	_ = tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
