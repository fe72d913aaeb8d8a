package orchestrator

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins/prometheus"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// sourcePollers are the pollers of a plan's `source` blocks, for
// deployment id.
func (m *Manager) sourcePollers(id string, plan *blueprints.Plan) []*policies.SourcePoller {
	var out []*policies.SourcePoller
	for _, s := range plan.MetricSources {
		var q policies.SourceQuerier
		switch s.Kind {
		case "prometheus":
			q = newPromSource(s)
		default:
			continue // the blueprint's check refuses other kinds
		}
		node := s.Node
		p := &policies.SourcePoller{Deployment: id, Name: s.Name, Node: node, Metric: s.Metric,
			Interval: s.Interval, Timeout: s.Timeout, Querier: q, Sink: m.Runner, Log: m.log,
			NodeID: func() string { return m.instanceOf(context.Background(), id, node) }}
		if m.polledCopy != nil {
			p.Copy = m.polledCopy
		}
		out = append(out, p)
	}
	return out
}

// promSource is a prometheus source's query, its values by host.
type promSource struct {
	c                  *prometheus.Client
	query, label, name string
}

func newPromSource(s *blueprints.PlanSource) *promSource {
	c := &prometheus.Client{URL: s.URL, HTTP: &http.Client{Timeout: s.Timeout + time.Second}}
	switch {
	case s.BearerTokenFile != "":
		c.Token = prometheus.TokenFile(s.BearerTokenFile)
	case s.Token() != "":
		tok := s.Token()
		c.Token = func() (string, error) { return tok, nil }
	}
	return &promSource{c: c, query: s.Query, label: s.HostLabel, name: s.Name}
}

func (p *promSource) Values(ctx context.Context, at time.Time) ([]policies.HostValue, error) {
	samples, err := p.c.Query(ctx, p.query, at)
	if err != nil {
		return nil, err
	}
	out := make([]policies.HostValue, 0, len(samples))
	for _, s := range samples {
		if s.Finite() { // NaN, ±Inf: no value (a rate of nothing yet)
			out = append(out, policies.HostValue{Host: s.Host(p.label, p.name), Value: s.Value})
		}
	}
	return out, nil
}

// polledCopy publishes what serve's sources polled to its exchange, marked
// policies.PolledHeader, so `orch metrics record` keeps it for a replay;
// the intakes skip it. One connection, dialled when first needed and again
// after a failure; a failure is logged once until a copy gets through.
type polledCopy struct {
	url, exchange string
	log           *slog.Logger

	mu      sync.Mutex
	pub     *producer.Publisher
	failing bool
}

func newPolledCopy(url, exchange string, log *slog.Logger) *polledCopy {
	if url == "" {
		return nil
	}
	return &polledCopy{url: url, exchange: cmp.Or(exchange, policies.DefaultExchange), log: log}
}

func (c *polledCopy) CopyPolled(ctx context.Context, source string, m *policies.Metric) {
	if ctx.Err() != nil {
		return // serve is stopping
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.pub == nil {
		c.pub, err = producer.Dial(c.url, c.exchange)
	}
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.pub.PublishWith(pctx, producer.Metric{NodeID: m.NodeID, NodeName: m.NodeName, DeploymentID: m.DeploymentID,
			Name: m.Name, Path: m.Path, Value: m.Value, Type: m.Type, Host: m.Host, Service: m.Service, Time: m.Time},
			amqp.Table{policies.PolledHeader: source})
		cancel()
		if err != nil {
			_ = c.pub.Close()
			c.pub = nil
		}
	}
	switch {
	case err != nil && !c.failing && ctx.Err() == nil:
		c.failing = true
		c.log.Warn("polled values not copied to the broker: recordings miss them until it answers (the policies have them)", "err", err)
	case err == nil && c.failing:
		c.failing = false
		c.log.Info("polled values copied to the broker again")
	}
}

// close closes the connection, if any.
func (c *polledCopy) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub != nil {
		_ = c.pub.Close()
		c.pub = nil
	}
}
