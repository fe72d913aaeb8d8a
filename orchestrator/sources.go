package orchestrator

import (
	"context"
	"net/http"
	"time"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins/prometheus"
	"github.com/orchhq/orch/policies"
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
		out = append(out, &policies.SourcePoller{Deployment: id, Name: s.Name, Node: node, Metric: s.Metric,
			Interval: s.Interval, Timeout: s.Timeout, Querier: q, Sink: m.Runner, Log: m.log,
			NodeID: func() string { return m.instanceOf(context.Background(), id, node) }})
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
