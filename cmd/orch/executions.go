package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/workflows"
)

func newExecutionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "executions",
		Aliases: []string{"execution", "exec"},
		Short:   "List, show and cancel executions",
	}
	var dep string
	list := &cobra.Command{
		Use:   "list [-d DEPLOYMENT]",
		Short: "List executions, oldest first",
		Example: `  orch executions list
  orch executions list -d files -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				xs, err := b.Executions(cmd.Context(), dep)
				if err != nil {
					return err
				}
				if g.output == "json" {
					if xs == nil {
						xs = []*workflows.Execution{}
					}
					return g.printJSON(xs)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tDEPLOYMENT\tWORKFLOW\tSTATUS\tCREATED\tDURATION\tERROR")
				for _, x := range xs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, x.Deployment, x.Workflow, x.Status,
						x.CreatedAt.Local().Format("2006-01-02 15:04:05"), duration(x), truncate(x.Error, 60))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVarP(&dep, "deployment", "d", "", "only this deployment's executions")
	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show an execution (an unambiguous id prefix is enough)",
		Example: `  orch executions show 01jd2k`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				x, err := b.Execution(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(x)
				}
				fmt.Fprintf(g.stdout, "Execution:  %s\nDeployment: %s\nWorkflow:   %s\nStatus:     %s\nCreated:    %s\nDuration:   %s\n",
					x.ID, x.Deployment, x.Workflow, x.Status, x.CreatedAt.Local().Format(time.RFC3339), duration(x))
				if x.DryRun {
					fmt.Fprintln(g.stdout, "Dry run:    yes")
				}
				if x.Resumes > 0 {
					fmt.Fprintf(g.stdout, "Resumed:    %d time(s) after a restart\n", x.Resumes)
				}
				if c := x.Change; c != nil {
					for _, inst := range c.Added {
						fmt.Fprintf(g.stdout, "Adds:       %s\n", inst.ID)
					}
					for _, id := range c.Removed {
						fmt.Fprintf(g.stdout, "Removes:    %s\n", id)
					}
					for _, id := range c.Healed {
						fmt.Fprintf(g.stdout, "Heals:      %s\n", id)
					}
				}
				if u := x.Update; u != nil {
					for _, c := range u.Changes {
						fmt.Fprintf(g.stdout, "Changes:    %s\n", c)
					}
					fmt.Fprintf(g.stdout, "Phase:      %s\n", cmp.Or(u.Phase, "unlink"))
				}
				for _, k := range slices.Sorted(maps.Keys(x.Steps)) {
					if !strings.Contains(k, "@") {
						fmt.Fprintf(g.stdout, "Step:       %s %s\n", k, x.Steps[k])
					}
				}
				for _, k := range slices.Sorted(maps.Keys(x.Parameters)) {
					fmt.Fprintf(g.stdout, "Parameter:  %s = %v\n", k, x.Parameters[k])
				}
				if x.Error != "" {
					fmt.Fprintf(g.stdout, "Error:      %s\n", x.Error)
				}
				return nil
			})
		},
	}
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running execution",
		Long: `Cancel an execution. A queued or pending one is cancelled at once. A running
one is asked to stop (its operations are killed) when the process running it
is orch serve; one run by another orch command is cancelled there, with
Ctrl-C.`,
		Example: `  orch executions cancel 01jd2k`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				x, err := b.Cancel(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(x)
				}
				fmt.Fprintf(g.stdout, "Execution %s: %s\n", x.ID, x.Status)
				return nil
			})
		},
	}
	var noWait bool
	resume := &cobra.Command{
		Use:   "resume ID",
		Short: "Resume a failed or cancelled execution, skipping what it did",
		Long: `Run a failed or cancelled execution again: install, uninstall and the other
built-in workflows (scale, heal, execute_operation, start, stop, restart) skip
the operations they completed, per instance, and a scale or heal carries on
with the instances it planned. An execution a crash interrupted is resumed too
(the next orch command on its deployment also runs it). Without serve this
waits for it to end, printing its events, as workflow run does.`,
		Example: `  orch executions resume 01jd2k`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				x, err := b.Resume(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if !noWait {
					if x, err = b.Wait(cmd.Context(), x); err != nil {
						return err
					}
				}
				if g.output == "json" {
					return g.printJSON(x)
				}
				fmt.Fprintf(g.stdout, "Execution %s: %s\n", x.ID, x.Status)
				if x.Status == workflows.Failed || x.Status == workflows.Cancelled {
					return fmt.Errorf("execution %s %s: %s", x.ID, x.Status, x.Error)
				}
				return nil
			})
		},
	}
	resume.Flags().BoolVar(&noWait, "no-wait", false, "return once it is queued")
	cmd.AddCommand(list, show, cancel, resume)
	return cmd
}

func duration(x *workflows.Execution) string {
	if x.StartedAt == nil {
		return "-"
	}
	end := time.Now()
	if x.EndedAt != nil {
		end = *x.EndedAt
	}
	return end.Sub(*x.StartedAt).Round(time.Millisecond).String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
