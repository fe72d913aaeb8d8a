package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/workflows"
)

func newWorkflowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "workflow",
		Aliases: []string{"workflows", "wf"},
		Short:   "Run and list the workflows of a deployment",
	}
	var dep string
	var params []string
	var dryRun bool
	runCmd := &cobra.Command{
		Use:   "run NAME -d DEPLOYMENT",
		Short: "Run a workflow on a deployment",
		Long: `Run a named workflow (install, uninstall, or one the blueprint declares) on a
deployment, printing its events as they happen. Parameters are given as
NAME=VALUE and converted to the parameter's declared type ("+1" stays a
string for a string parameter; lists and objects are JSON). With --dry-run
the workflow shows what it would do and changes nothing. If the deployment
already runs an execution, this one queues behind it. Ctrl-C cancels.`,
		Example: `  orch workflow run install -d files
  orch workflow run kube_scale -d bookings -p name=bookings -p amount=+1
  orch workflow run burst -d bookings --dry-run`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parsePairs("-p", params)
			if err != nil {
				return err
			}
			return g.withBackend(cmd.Context(), func(b backend) error {
				x, err := b.Submit(cmd.Context(), workflows.Request{Deployment: dep, Workflow: args[0], Parameters: given, DryRun: dryRun})
				if err != nil {
					return err
				}
				return g.waitExecution(cmd.Context(), b, x)
			})
		},
	}
	runCmd.Flags().StringVarP(&dep, "deployment", "d", "", "deployment id (required)")
	runCmd.Flags().StringArrayVarP(&params, "parameter", "p", nil, "workflow parameter NAME=VALUE (repeatable)")
	runCmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what the workflow would do, change nothing")
	_ = runCmd.MarkFlagRequired("deployment")

	var listDep string
	listCmd := &cobra.Command{
		Use:     "list -d DEPLOYMENT",
		Short:   "List a deployment's workflows and their parameters",
		Example: `  orch workflow list -d files`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []orchestrator.WorkflowInfo
			err := g.withBackend(cmd.Context(), func(b backend) (err error) {
				out, err = b.Workflows(cmd.Context(), listDep)
				return err
			})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.printJSON(out)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKFLOW\tUSES\tPARAMETERS")
			for _, w := range out {
				ps := ""
				for i, p := range w.Parameters {
					if i > 0 {
						ps += ", "
					}
					ps += p.Name
					if p.Default != nil {
						def, _ := json.Marshal(p.Default)
						ps += "=" + string(def)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", w.Name, w.Uses, ps)
			}
			return tw.Flush()
		},
	}
	listCmd.Flags().StringVarP(&listDep, "deployment", "d", "", "deployment id (required)")
	_ = listCmd.MarkFlagRequired("deployment")
	cmd.AddCommand(runCmd, listCmd)
	return cmd
}
