package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
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
				fmt.Fprintln(tw, "ID\tBLUEPRINT\tNODES\tCREATED")
				for _, d := range deps {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", d.ID, d.Blueprint, len(d.Instances), d.CreatedAt.Local().Format("2006-01-02 15:04:05"))
				}
				return tw.Flush()
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
				if len(d.Inputs) > 0 || len(d.SensitiveInputs) > 0 {
					fmt.Fprintln(g.stdout, "Inputs:")
					for _, k := range slices.Sorted(maps.Keys(d.Inputs)) {
						fmt.Fprintf(g.stdout, "  %s = %s\n", k, d.Inputs[k])
					}
					for _, k := range d.SensitiveInputs {
						fmt.Fprintf(g.stdout, "  %s = (sensitive, not stored)\n", k)
					}
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tINSTANCE\tSTATE\tRUNTIME PROPERTIES")
				for _, name := range slices.Sorted(maps.Keys(d.Instances)) {
					inst := d.Instances[name]
					rt, _ := json.Marshal(inst.Runtime)
					if inst.Runtime == nil {
						rt = []byte("{}")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, inst.ID, inst.State, rt)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(d.Outputs) > 0 {
					fmt.Fprintln(g.stdout, "Outputs:")
					for _, k := range slices.Sorted(maps.Keys(d.Outputs)) {
						v, _ := json.Marshal(d.Outputs[k])
						fmt.Fprintf(g.stdout, "  %s = %s\n", k, v)
					}
				}
				return nil
			})
		},
	})
	return cmd
}
