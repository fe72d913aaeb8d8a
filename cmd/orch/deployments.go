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
