package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// replayOutput is `orch policies replay -o json`.
type replayOutput struct {
	Deployment string                  `json:"deployment"`
	Metrics    int                     `json:"metrics"`
	Malformed  int                     `json:"malformed"`
	Skipped    int                     `json:"skipped"`
	Decisions  []policies.Decision     `json:"decisions"`
	Policies   []policies.PolicyStatus `json:"policies,omitempty"`
}

func newReplayCmd(g *globals) *cobra.Command {
	var id, inputsFile string
	var inputs []string
	var plot bool
	cmd := &cobra.Command{
		Use:   "replay RECORDING BLUEPRINT... [-d DEPLOYMENT] [-i NAME=VALUE]",
		Short: "Run a recorded metric stream through a blueprint's policies, touching nothing",
		Long: `Replay a recording made by orch metrics record through the policies of a
blueprint, at full speed, as orch serve would evaluate them: the clock is the
metrics' own time, missing data is checked every second of it, cooldowns,
the start-up grace and on_missing_data apply. Every decision is printed with
the workflow it would trigger; no workflow runs, no cluster and no state file
is touched. Tune thresholds and cooldowns this way before going live.

The deployment id defaults to the recording's only routing key; messages of
other deployments are skipped. Inputs are given as to orch deploy.`,
		Example: `  orch metrics record bookings.jsonl -d bookings --for 10m
  orch policies replay bookings.jsonl examples/burst/blueprint.hcl -i namespace=bookings
  orch policies replay bookings.jsonl examples/burst/blueprint.hcl -i namespace=bookings -i burst_value=60 --plot`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			given, err := parsePairs("-i", inputs)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var recs []policies.Record
			keys := map[string]bool{}
			if err := policies.ReadRecords(f, func(_ int, r policies.Record) error {
				recs = append(recs, r)
				keys[policies.RoutedTo(r.Payload(), r.RoutingKey)] = true
				return nil
			}); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if id == "" {
				if len(keys) != 1 {
					return fmt.Errorf("%s holds the metrics of %d deployments: say which with -d", args[0], len(keys))
				}
				for k := range keys {
					id = k
				}
			}
			reg, err := registry()
			if err != nil {
				return err
			}
			plan, err := orchestrator.Plan(reg, orchestrator.DeployRequest{Paths: args[1:], ID: id, Inputs: given, InputsFile: inputsFile})
			if err != nil {
				return err
			}
			rp, err := policies.NewReplayer(ctx, id, plan)
			if err != nil {
				return err
			}
			for i, r := range recs {
				if err := rp.Feed(ctx, r); err != nil {
					return fmt.Errorf("%s: message %d: %w", args[0], i+1, err)
				}
			}
			out := replayOutput{Deployment: id, Metrics: rp.Metrics, Malformed: rp.Malformed, Skipped: rp.Skipped, Decisions: rp.Decisions()}
			if g.output == "json" {
				if plot {
					out.Policies = rp.Runner.Status(id, 0)
				}
				return g.printJSON(out)
			}
			fmt.Fprintf(g.stdout, "Replayed %d metrics of deployment %s from %s (%d malformed, %d of other deployments skipped).\n",
				rp.Metrics, id, args[0], rp.Malformed, rp.Skipped)
			if len(out.Decisions) == 0 {
				fmt.Fprintln(g.stdout, "No decisions: no condition held.")
			}
			fired := 0
			for _, d := range out.Decisions {
				if d.Fired {
					fired++
				}
				fmt.Fprintf(g.stdout, "  %-16s", d.Policy)
				writeDecisionLines(g.stdout, []policies.Decision{d})
			}
			fmt.Fprintf(g.stdout, "%d decisions, %d would have run a workflow.\n", len(out.Decisions), fired)
			if plot {
				for _, ps := range rp.Runner.Status(id, 0) {
					fmt.Fprintln(g.stdout)
					plotPolicy(g.stdout, ps, ps.Decisions)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&id, "deployment", "d", "", "deployment id the policies are evaluated for (default: the recording's only one)")
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "input value NAME=VALUE (repeatable)")
	cmd.Flags().StringVar(&inputsFile, "inputs", "", "file of input values (HCL or JSON attributes: name = value)")
	cmd.Flags().BoolVar(&plot, "plot", false, "plot each policy's window values against its thresholds, decisions marked")
	return cmd
}

func newRecordCmd(g *globals) *cobra.Command {
	var url, exchange string
	var deployments []string
	var duration time.Duration
	var count int
	cmd := &cobra.Command{
		Use:   "record FILE [-d DEPLOYMENT]... [--for D] [--count N]",
		Short: "Record the metric stream from the broker to a file (JSON lines), for orch policies replay",
		Long: `Record the metric messages published to orch's exchange, as they arrive, one
JSON object a line: {"received": ..., "routing_key": ..., "body": {...}}. It
consumes from a queue of its own (exclusive, deleted when it stops), so orch
serve's queue is not disturbed. What orch serve polls from a blueprint's
source blocks (Prometheus) it also publishes there, marked with the source
("polled": NAME in the line), so a recording holds it too and a replay
replays what was polled. It stops after --for, after --count messages,
or on Ctrl-C; what was received is in the file either way.`,
		Example: `  orch metrics record bookings.jsonl -d bookings --for 10m
  orch metrics record all.jsonl --count 10000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			ready := func() {
				if g.output != "json" {
					fmt.Fprintf(g.stdout, "recording to %s (Ctrl-C to stop)\n", args[0])
				}
			}
			n, err := recordMetrics(ctx, amqpURL(url), exchange, deployments, args[0], count, ready)
			if err != nil {
				return err
			}
			if g.output != "json" {
				fmt.Fprintf(g.stdout, "recorded %d message(s) to %s\n", n, args[0])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", amqpURLHelp)
	f.StringVar(&exchange, "exchange", producer.Exchange, "topic exchange")
	f.StringArrayVarP(&deployments, "deployment", "d", nil, "record this deployment's metrics (repeatable; default: all)")
	f.DurationVar(&duration, "for", 0, "stop after this long (default: until interrupted)")
	f.IntVar(&count, "count", 0, "stop after this many messages")
	return cmd
}

// recordMetrics writes the messages of exchange (routing keys: keys, or
// all) to path until ctx is done or limit messages came; ready is called
// once it consumes. The file is
// written through a temporary name and renamed at the end, so a recording
// is never half a line.
func recordMetrics(ctx context.Context, url, exchange string, keys []string, path string, limit int, ready func()) (int, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "orch metrics record"}})
	if err != nil {
		return 0, fmt.Errorf("dial broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		return 0, fmt.Errorf("declare exchange %s: %w", exchange, err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return 0, fmt.Errorf("declare queue: %w", err)
	}
	if len(keys) == 0 {
		keys = []string{"#"}
	}
	var bind []string
	for _, k := range keys {
		if k != "#" {
			// collectd's routing key is DEPLOYMENT.NODE.
			bind = append(bind, k, k+".*")
		} else {
			bind = append(bind, k)
		}
	}
	for _, k := range bind {
		if err := ch.QueueBind(q.Name, k, exchange, false, nil); err != nil {
			return 0, fmt.Errorf("bind %q: %w", k, err)
		}
	}
	deliveries, err := ch.Consume(q.Name, "orch-record", true, true, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("consume: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	ready()
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	n := 0
loop:
	for limit <= 0 || n < limit {
		select {
		case <-ctx.Done():
			break loop
		case d, ok := <-deliveries:
			if !ok {
				break loop
			}
			r := policies.NewRecord(policies.Seconds(time.Now()), d.RoutingKey, d.Body)
			if source, ok := d.Headers[policies.PolledHeader].(string); ok {
				r.Polled = source
			}
			if err := enc.Encode(r); err != nil {
				return n, err
			}
			n++
		}
	}
	if err := w.Flush(); err != nil {
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, err
	}
	return n, nil
}
