package policies

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// PolledService is a service whose metrics a Poller asks for, and the
// deployment node they belong to.
type PolledService struct {
	Deployment string
	Node       string
	// Instance is the node's instance, the metrics' node_id ("": the
	// node has several, and node_id is the node's name).
	Instance  string
	Namespace string
	Name      string
}

// ServiceMetricsSource answers a service's recent metrics by name ("rps",
// "latency_p50"), as Calisti's GraphQL service query does. An error means
// the values are missing: never zero.
type ServiceMetricsSource interface {
	ServiceMetrics(ctx context.Context, namespace, name string, seconds int) (map[string]float64, error)
}

// Poller feeds a pull source into the same pipeline as the broker: every
// Interval it asks Source for each service's metrics and applies them as
// metrics of the service's node, from host Host. A failing query applies
// nothing (missing data), is counted, and is logged when a service starts
// and stops failing.
type Poller struct {
	Source   ServiceMetricsSource
	Services func() []PolledService
	// Sink applies the metrics and hears which services fail (source
	// "mesh NODE" of their deployment).
	Sink     MetricSink
	Interval time.Duration // default 5s
	// Seconds is the evaluation window asked of the source (default 5, as
	// the seed's evaluationDurationSeconds).
	Seconds int
	Host    string // default "calisti"
	Log     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time

	polls, errs atomic.Int64
	mu          sync.Mutex
	failing     map[string]bool
}

// MetricSink is what a poller feeds: the policy runner.
type MetricSink interface {
	Apply(ctx context.Context, m *Metric) error
	SetSource(deployment, source, err string)
}

// PollStats are the poller's counters.
type PollStats struct{ Polls, Errors int64 }

// Stats returns the counters.
func (p *Poller) Stats() PollStats { return PollStats{Polls: p.polls.Load(), Errors: p.errs.Load()} }

// Run polls until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	if p.Interval <= 0 {
		p.Interval = 5 * time.Second
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll asks once for every service.
func (p *Poller) Poll(ctx context.Context) {
	if p.Seconds <= 0 {
		p.Seconds = 5
	}
	if p.Host == "" {
		p.Host = "calisti"
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	for _, s := range p.Services() {
		if ctx.Err() != nil {
			return
		}
		p.polls.Add(1)
		qctx, cancel := context.WithTimeout(ctx, p.Interval)
		values, err := p.Source.ServiceMetrics(qctx, s.Namespace, s.Name, p.Seconds)
		cancel()
		key := s.Deployment + "/" + s.Node
		if err != nil {
			p.errs.Add(1)
			if p.setFailing(key, true) {
				p.Sink.SetSource(s.Deployment, "mesh "+s.Node, err.Error())
				p.Log.Warn("metric source failing; its metrics are missing until it answers (nothing scales down on missing data)",
					"deployment", s.Deployment, "node", s.Node, "service", s.Namespace+"/"+s.Name, "err", err)
			}
			continue
		}
		if p.setFailing(key, false) {
			p.Sink.SetSource(s.Deployment, "mesh "+s.Node, "")
			p.Log.Info("metric source answering again", "deployment", s.Deployment, "node", s.Node)
		}
		now := Seconds(p.Now())
		nodeID := cmp.Or(s.Instance, s.Node)
		for name, v := range values {
			m := &Metric{DeploymentID: s.Deployment, NodeName: s.Node, NodeID: nodeID, Host: p.Host, Name: name,
				Value: v, Time: now, Type: "GAUGE",
				Service: s.Deployment + "." + s.Node + "." + nodeID + "." + name + "."}
			if err := p.Sink.Apply(ctx, m); err != nil {
				p.Log.Warn("polled metric not applied", "deployment", s.Deployment, "node", s.Node, "metric", name, "err", err)
			}
		}
	}
}

// setFailing records a service's state and reports whether it changed.
func (p *Poller) setFailing(key string, failing bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing == nil {
		p.failing = map[string]bool{}
	}
	changed := p.failing[key] != failing
	p.failing[key] = failing
	return changed
}
