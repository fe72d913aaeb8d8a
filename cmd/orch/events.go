package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
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
orch command holds the state file, follow waits for it. While orch serve
runs, the events come from it.`,
		Example: `  orch events -d files
  orch events -e 01jd2k --follow -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				return g.printEvents(cmd.Context(), b, execID, dep, follow)
			})
		},
	}
	cmd.Flags().StringVarP(&execID, "execution", "e", "", "execution id or prefix")
	cmd.Flags().StringVarP(&dep, "deployment", "d", "", "the latest execution of this deployment")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until the execution ends")
	return cmd
}

// printEvents prints an execution's events; with follow, until it ends.
// While another orch command holds the state file, following waits for it.
func (g *globals) printEvents(ctx context.Context, b backend, execID, dep string, follow bool) error {
	var after uint64
	for {
		id := execID
		var err error
		if id == "" {
			id, err = latestExecution(ctx, b, dep)
		}
		var page *api.EventsResponse
		if err == nil {
			wait := time.Duration(0)
			if follow {
				wait = 10 * time.Second
			}
			page, err = b.Events(ctx, id, after, wait)
		}
		switch {
		case err == nil:
		case follow && errors.Is(err, orchestrator.ErrLocked):
			page = &api.EventsResponse{}
		case ctx.Err() != nil:
			return nil
		default:
			return err
		}
		for _, ev := range page.Events {
			g.printEvent(ev)
			after = ev.Seq
		}
		if !follow || page.Execution != nil && page.Execution.Status.Ended() && len(page.Events) == 0 {
			return nil
		}
		if len(page.Events) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func latestExecution(ctx context.Context, b backend, dep string) (string, error) {
	xs, err := b.Executions(ctx, dep)
	if err != nil {
		return "", err
	}
	if len(xs) == 0 {
		return "", errors.New("no executions yet")
	}
	return xs[len(xs)-1].ID, nil
}
