package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/workflows"
)

func newEventsCmd(g *globals) *cobra.Command {
	var execID, dep string
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [-e EXECUTION | -d DEPLOYMENT] [--follow]",
		Short: "Print the event log of an execution",
		Long: `Print an execution's events in order: the given one (-e, an id prefix is
enough), or the latest of a deployment (-d), or the latest of all. With
--follow, keep printing new events until the execution ends; while another
orch process holds the state file, follow waits for it.`,
		Example: `  orch events -d files
  orch events -e 01jd2k --follow -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var after uint64
			for {
				ended, err := g.printEventsOnce(cmd, execID, dep, &after)
				if err != nil && !(follow && errors.Is(err, orchestrator.ErrLocked)) {
					return err
				}
				if !follow || ended {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().StringVarP(&execID, "execution", "e", "", "execution id or prefix")
	cmd.Flags().StringVarP(&dep, "deployment", "d", "", "the latest execution of this deployment")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until the execution ends")
	return cmd
}

// printEventsOnce prints the events after *after and reports whether the
// execution has ended. It opens the state file only for the read.
func (g *globals) printEventsOnce(cmd *cobra.Command, execID, dep string, after *uint64) (bool, error) {
	store, err := g.readStore()
	if err != nil {
		return false, err
	}
	defer store.Close()
	ctx := cmd.Context()
	var x *workflows.Execution
	if execID != "" {
		x, err = store.Execution(ctx, execID)
	} else {
		var xs []*workflows.Execution
		xs, err = store.Executions(ctx, dep)
		if err == nil && len(xs) == 0 {
			err = fmt.Errorf("no executions yet")
		}
		if err == nil {
			x = xs[len(xs)-1]
		}
	}
	if err != nil {
		return false, err
	}
	evs, err := store.Events(ctx, x.ID, *after)
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		g.printEvent(ev)
		*after = ev.Seq
	}
	return x.Status.Ended(), nil
}
