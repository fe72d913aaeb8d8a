package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/policies/producer"
)

// amqpURL is the broker's URL: the flag's value, else $ORCH_AMQP_URL, else
// the local broker as guest. The flag's default is empty, so --help never
// prints a password from the environment.
func amqpURL(flag string) string {
	if flag != "" {
		return flag
	}
	if u := os.Getenv("ORCH_AMQP_URL"); u != "" {
		return u
	}
	return localAMQPURL
}

const localAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

const amqpURLHelp = "AMQP URL (default: $ORCH_AMQP_URL, else " + localAMQPURL + ")"

func newMetricsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "metrics", Short: "Publish metrics to orch's broker, or record the stream for a replay"}
	var url, exchange string
	var m producer.Metric
	var rate float64
	var duration time.Duration
	publish := &cobra.Command{
		Use:   "publish -d DEPLOYMENT --node NODE --name NAME --value V",
		Short: "Publish one metric, or a steady rate of them, in the Diamond format",
		Long: `Publish metric messages as Cloudify's Diamond handler does: JSON on the topic
exchange (default cloudify-monitoring), routing key = the deployment id, each
one confirmed by the broker. With --rate and --for, publish that many per
second for that long, each with the current time.`,
		Example: `  orch metrics publish -d shop --node bookings --host 10.0.0.7 --name cpu --path total --value 85
  orch metrics publish -d bookings --node bookings --name rps --value 120 --rate 10 --for 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if m.Host == "" {
				m.Host, _ = os.Hostname()
			}
			if m.NodeID == "" {
				m.NodeID = m.NodeName
			}
			p, err := producer.Dial(amqpURL(url), exchange)
			if err != nil {
				return err
			}
			defer p.Close()
			ctx := cmd.Context()
			sent := 0
			send := func() error {
				msg := m
				msg.Time = float64(time.Now().UnixMilli()) / 1000
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := p.Publish(pctx, msg); err != nil {
					return err
				}
				sent++
				return nil
			}
			if rate <= 0 {
				if err := send(); err != nil {
					return err
				}
			} else {
				tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
				defer tick.Stop()
				end := time.Now().Add(duration)
				for time.Now().Before(end) {
					if err := send(); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						end = time.Now()
					case <-tick.C:
					}
				}
			}
			if g.output != "json" {
				fmt.Fprintf(g.stdout, "published %d metric(s) to %s (routing key %s)\n", sent, exchangeOrDefault(exchange), m.DeploymentID)
			}
			return nil
		},
	}
	f := publish.Flags()
	f.StringVar(&url, "url", "", amqpURLHelp)
	f.StringVar(&exchange, "exchange", producer.Exchange, "topic exchange")
	f.StringVarP(&m.DeploymentID, "deployment", "d", "", "deployment id (the routing key; required)")
	f.StringVar(&m.NodeName, "node", "", "node name (required)")
	f.StringVar(&m.NodeID, "node-id", "", "node instance id (default: the node name)")
	f.StringVar(&m.Host, "host", "", "host reporting (default: this machine's name)")
	f.StringVar(&m.Name, "name", "", "collector name, such as cpu or rps (required)")
	f.StringVar(&m.Path, "path", "", "sub-metric, such as total.user")
	f.Float64Var(&m.Value, "value", 0, "the metric value")
	f.StringVar(&m.Unit, "unit", "", "unit")
	f.Float64Var(&m.TTL, "ttl", 0, "seconds after which orch forgets this source if it stops reporting")
	f.Float64Var(&rate, "rate", 0, "messages per second (with --for)")
	f.DurationVar(&duration, "for", 10*time.Second, "how long to publish at --rate")
	for _, req := range []string{"deployment", "node", "name"} {
		_ = publish.MarkFlagRequired(req)
	}
	cmd.AddCommand(publish, newRecordCmd(g))
	return cmd
}

func exchangeOrDefault(e string) string {
	if e == "" {
		return producer.Exchange
	}
	return e
}
