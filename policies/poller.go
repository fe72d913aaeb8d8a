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
	// Name, when set, is the blueprint source it polls for: a failure is
	// "source NAME" (else "mesh NODE", --mesh-url's).
	Name string
	// Copy, when set, hears every value applied (PolledHeader);
	// Counters, when set, count its polls too.
	Copy     PolledCopier
	Counters *PollCounters
	Log      *slog.Logger
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

// PollCounters count the polls of several pollers together (serve's
// blueprint sources, for /metrics).
type PollCounters struct{ Polls, Errors atomic.Int64 }

// count adds a poll, failed or not, to c (nil: none).
func (c *PollCounters) count(err error) {
	if c == nil {
		return
	}
	c.Polls.Add(1)
	if err != nil {
		c.Errors.Add(1)
	}
}

// Stats returns the counters.
func (p *Poller) Stats() PollStats { return PollStats{Polls: p.polls.Load(), Errors: p.errs.Load()} }

// Run polls until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	if p.Interval <= 0 {
		p.Interval = 5 * time.Second
	}
	pollEvery(ctx, p.Interval, p.Poll)
}

// pollEvery calls poll now and every interval until ctx is done.
func pollEvery(ctx context.Context, interval time.Duration, poll func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		poll(ctx)
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
		p.Counters.count(err)
		key := s.Deployment + "/" + s.Node
		source := "mesh " + s.Node
		if p.Name != "" {
			source = "source " + p.Name
		}
		if err != nil {
			p.errs.Add(1)
			if p.setFailing(key, true) {
				p.Sink.SetSource(s.Deployment, source, err.Error())
				p.Log.Warn("metric source failing; its metrics are missing until it answers (nothing scales down on missing data)",
					"deployment", s.Deployment, "node", s.Node, "service", s.Namespace+"/"+s.Name, "err", err)
			}
			continue
		}
		if p.setFailing(key, false) {
			p.Sink.SetSource(s.Deployment, source, "")
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
				continue
			}
			if p.Copy != nil {
				p.Copy.CopyPolled(ctx, cmp.Or(p.Name, "mesh"), m)
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

// HostValue is a value a polled source answered, of one host.
type HostValue struct {
	Host  string
	Value float64
}

// SourceQuerier answers a source's values at a time (a Prometheus instant
// query). An error means they are missing: never zero.
type SourceQuerier interface {
	Values(ctx context.Context, at time.Time) ([]HostValue, error)
}

// PolledHeader marks the copy of a polled value serve publishes to its
// exchange (the header's value is the source's name): recordings keep it,
// so a replay replays what was polled, and intakes skip it (it was applied
// when polled).
const PolledHeader = "x-orch-polled"

// PolledCopier publishes a copy of what a source answered (best effort:
// a failure never keeps the values from the windows).
type PolledCopier interface {
	CopyPolled(ctx context.Context, source string, m *Metric)
}

// SourcePoller polls one `source` of a deployment's blueprint into its
// node's windows every Interval, each value as metric Metric of its host.
// A failing poll applies nothing (missing data), names the source as
// failing in the decisions ("source NAME"), and is logged when it starts
// and stops failing.
type SourcePoller struct {
	Deployment, Name, Node, Metric string
	Interval, Timeout              time.Duration
	Querier                        SourceQuerier
	// NodeID is the node's instance id now ("": the node's name).
	NodeID func() string
	Sink   MetricSink
	// Copy, when set, hears every value applied (PolledHeader); Counters,
	// when set, count its polls too.
	Copy     PolledCopier
	Counters *PollCounters
	Log      *slog.Logger
	Now      func() time.Time

	failing bool
}

// Run polls until ctx is done.
func (p *SourcePoller) Run(ctx context.Context) {
	pollEvery(ctx, cmp.Or(p.Interval, 15*time.Second), p.Poll)
}

// Poll asks once and applies what the source answered.
func (p *SourcePoller) Poll(ctx context.Context) {
	log := cmp.Or(p.Log, slog.Default())
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	at := now()
	qctx, cancel := context.WithTimeout(ctx, cmp.Or(p.Timeout, p.Interval, 10*time.Second))
	values, err := p.Querier.Values(qctx, at)
	cancel()
	if ctx.Err() == nil {
		p.Counters.count(err)
	}
	source := "source " + p.Name
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: not the source's fault
		}
		if !p.failing {
			p.failing = true
			p.Sink.SetSource(p.Deployment, source, err.Error())
			log.Warn("metric source failing; its metrics are missing until it answers (nothing scales down on missing data)",
				"deployment", p.Deployment, "source", p.Name, "err", err)
		}
		return
	}
	if p.failing {
		p.failing = false
		p.Sink.SetSource(p.Deployment, source, "")
		log.Info("metric source answering again", "deployment", p.Deployment, "source", p.Name)
	}
	nodeID := p.Node
	if p.NodeID != nil {
		nodeID = cmp.Or(p.NodeID(), p.Node)
	}
	t := Seconds(at)
	for _, v := range values {
		m := &Metric{DeploymentID: p.Deployment, NodeName: p.Node, NodeID: nodeID, Host: v.Host, Name: p.Metric,
			Value: v.Value, Time: t, Type: "GAUGE", Service: p.Deployment + "." + p.Node + "." + nodeID + "." + p.Metric + "."}
		if err := p.Sink.Apply(ctx, m); err != nil {
			log.Warn("polled metric not applied", "deployment", p.Deployment, "source", p.Name, "host", v.Host, "err", err)
			continue
		}
		if p.Copy != nil {
			p.Copy.CopyPolled(ctx, p.Name, m)
		}
	}
}
