package orchestrator

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/plugins/prometheus"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// MeshSource reads a service's metrics from Calisti for a poller: its rps
// and latency_p50.
type MeshSource struct{ Client *mesh.Client }

func (s MeshSource) ServiceMetrics(ctx context.Context, namespace, name string, seconds int) (map[string]float64, error) {
	m, err := s.Client.ServiceMetrics(ctx, namespace, name, seconds)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"rps": m.RPS, "latency_p50": m.LatencyP50}, nil
}

// poller is a source's loop.
type poller interface{ Run(ctx context.Context) }

// sourcePollers are the pollers of a plan's `source` blocks, for
// deployment id.
func (m *Manager) sourcePollers(id string, plan *blueprints.Plan) ([]poller, error) {
	var out []poller
	for _, s := range plan.MetricSources {
		if s.Kind == "calisti" {
			p, err := m.calistiPoller(id, plan, s)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			continue
		}
		q := newPromSource(s)
		node := s.Node
		p := &policies.SourcePoller{Deployment: id, Name: s.Name, Node: node, Metric: s.Metric,
			Interval: s.Interval, Timeout: s.Timeout, Querier: q, Sink: m.Runner, Log: m.log, Counters: &m.sourceCounts,
			NodeID: func() string { return m.instanceOf(context.Background(), id, node) }, Copy: m.copier()}
		out = append(out, p)
	}
	return out, nil
}

// calistiPoller polls the mesh service of a calisti source's node, with
// the source's token (sent to its url's host only).
func (m *Manager) calistiPoller(id string, plan *blueprints.Plan, s *blueprints.PlanSource) (*policies.Poller, error) {
	var node *blueprints.PlanNode
	for _, n := range plan.Nodes {
		if n.Name == s.Node {
			node = n
		}
	}
	if node == nil || m.cfg.Services == nil {
		return nil, fmt.Errorf("source %s: node %s has no mesh service", s.Name, s.Node)
	}
	ns, name, ok := m.cfg.Services.MeshService(nodeInfo(node))
	if !ok {
		return nil, fmt.Errorf("source %s: node %s (%s) is not a service of the mesh (a kubernetes.app node is)", s.Name, s.Node, node.Type)
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s.Name, err)
	}
	auth := mesh.Auth{Token: s.Token(), Hosts: []string{u.Host}}
	if s.BearerTokenFile != "" {
		tok, err := prometheus.TokenFile(s.BearerTokenFile)()
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		auth.Token = tok
	}
	c, err := mesh.New(s.URL, auth)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s.Name, err)
	}
	nodeName := s.Node
	return &policies.Poller{Source: MeshSource{Client: c}, Sink: m.Runner, Interval: s.Interval, Name: s.Name, Log: m.log,
		Counters: &m.sourceCounts, Copy: m.copier(),
		Services: func() []policies.PolledService {
			return []policies.PolledService{{Deployment: id, Node: nodeName, Instance: m.instanceOf(context.Background(), id, nodeName), Namespace: ns, Name: name}}
		}}, nil
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

// copier is the pollers' copier: none without a broker (a nil interface,
// not a nil *polledCopy).
func (m *Manager) copier() policies.PolledCopier {
	if m.polledCopy == nil {
		return nil
	}
	return m.polledCopy
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
