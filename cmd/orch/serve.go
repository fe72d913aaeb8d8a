package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// engineQueue queues workflows on the engine for the policy runner.
type engineQueue struct{ engine *workflows.Engine }

func (q engineQueue) Queue(ctx context.Context, deployment, workflow string, params map[string]string) (string, error) {
	x, err := q.engine.Submit(ctx, workflows.Request{Deployment: deployment, Workflow: workflow, Parameters: params})
	if err != nil {
		return "", err
	}
	return x.ID, nil
}

func newServeCmd(g *globals) *cobra.Command {
	var url, exchange, queue string
	var dryRun bool
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the manager: metric intake, policy runner and execution engine",
		Long: `Consume metrics from RabbitMQ, evaluate the policies of every deployment as
they arrive, and run the workflows their triggers name. Executions left
started by a crash are resumed or failed first. Cooldowns and trigger history
are kept in the state file, so a restart neither forgets a cooldown nor fires
twice. SIGTERM or Ctrl-C stops the intake and waits for running executions.

This first version loads the deployments that exist when it starts, and holds
the state file while it runs (the HTTP API for the CLI comes next).`,
		Example: `  orch serve
  orch serve --amqp-url amqp://user:pass@broker:5672/ --queue orch.$(hostname) --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeFn, err := g.service(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// A daemon logs at info: connections, reconnects, malformed input.
			level := slog.LevelInfo
			if g.verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			if err := svc.Engine.Resume(ctx); err != nil {
				closeFn()
				return err
			}
			runner := policies.NewRunner(policies.NewPipeline(3600), engineQueue{svc.Engine}, svc.Store)
			runner.DryRun = dryRun
			runner.OnTrigger = func(dep, policy string, t policies.Trigger) {
				what := "queued " + t.Execution
				switch {
				case t.Error != "":
					what = "failed to queue: " + t.Error
				case t.DryRun:
					what = "dry run, not queued"
				}
				fmt.Fprintf(g.stdout, "%s policy %s/%s: %s fired, workflow %s %s\n",
					time.Unix(int64(t.Time), 0).Format("15:04:05"), dep, policy, t.Condition, t.Workflow, what)
			}
			deps, err := svc.Store.Deployments(ctx)
			if err != nil {
				closeFn()
				return err
			}
			policyCount := 0
			for _, d := range deps {
				t, err := svc.Target(ctx, d.ID)
				if err != nil {
					closeFn()
					return err
				}
				if err := runner.AddDeployment(ctx, d.ID, t.Plan); err != nil {
					closeFn()
					return err
				}
				policyCount += len(t.Plan.Policies)
			}
			if queue == "" {
				host, _ := os.Hostname()
				queue = "orch." + host
			}
			var mu sync.Mutex // the pipeline has one owner at a time
			intake := &policies.Intake{URL: url, Exchange: exchange, Queue: queue, Log: log,
				Handle: func(body []byte, key string) error {
					mu.Lock()
					defer mu.Unlock()
					if err := runner.Pipeline.Ingest(body, key); err != nil {
						return err
					}
					return runner.Err()
				}}
			fmt.Fprintf(g.stdout, "orch serve: %d deployment(s), %d policies, consuming %s on %s\n", len(deps), policyCount, exchangeOrDefault(exchange), queue)
			err = intake.Run(ctx)
			fmt.Fprintln(g.stdout, "orch serve: stopping; waiting for running executions")
			dctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			if cerr := svc.Engine.Close(dctx); cerr != nil {
				fmt.Fprintln(g.stderr, "Warning:", cerr)
			}
			closeFn()
			return err
		},
	}
	cmd.Flags().StringVar(&url, "amqp-url", defaultAMQPURL(), "AMQP URL (env ORCH_AMQP_URL)")
	cmd.Flags().StringVar(&exchange, "exchange", policies.DefaultExchange, "topic exchange of the metrics")
	cmd.Flags().StringVar(&queue, "queue", "", "durable queue of this orch instance (default orch.<hostname>)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "evaluate and record decisions, queue no workflow")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long to wait for running executions on shutdown")
	return cmd
}
