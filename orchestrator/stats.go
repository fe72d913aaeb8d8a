package orchestrator

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// ServeStats are orch serve's Prometheus metrics: messages in and
// malformed, broker reconnects, evaluations, decisions, triggers, polls and
// executions by final status.
type ServeStats struct {
	reg        *prometheus.Registry
	executions *prometheus.CounterVec
	once       sync.Once
}

// NewServeStats returns the metrics; give ObserveEvent to the engine
// (workflows.WithEventObserver) to count executions.
func NewServeStats() *ServeStats {
	s := &ServeStats{reg: prometheus.NewRegistry()}
	s.executions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orch_executions_total", Help: "Executions started and ended in this process, by event (started, succeeded, failed, cancelled).",
	}, []string{"event"})
	s.reg.MustRegister(s.executions, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// ObserveEvent counts execution starts and ends.
func (s *ServeStats) ObserveEvent(ev workflows.Event) {
	switch ev.Type {
	case workflows.EventWorkflowStarted:
		s.executions.WithLabelValues("started").Inc()
	case workflows.EventWorkflowSucceeded:
		s.executions.WithLabelValues("succeeded").Inc()
	case workflows.EventWorkflowFailed:
		s.executions.WithLabelValues("failed").Inc()
	case workflows.EventWorkflowCancelled:
		s.executions.WithLabelValues("cancelled").Inc()
	}
}

// Handler serves the metrics in the Prometheus text format.
func (s *ServeStats) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

func counter(name, help string, fn func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn)
}

// register adds the manager's counters, read when scraped.
func (s *ServeStats) register(m *Manager) {
	s.once.Do(func() {
		in, r := m.Intake, m.Runner
		s.reg.MustRegister(
			counter("orch_metric_messages_received_total", "Metric messages delivered by the broker.", func() float64 { return float64(in.Stats().Received) }),
			counter("orch_metric_messages_malformed_total", "Metric messages rejected as malformed.", func() float64 { return float64(in.Stats().Malformed) }),
			counter("orch_broker_reconnects_total", "Reconnections to the broker.", func() float64 { return float64(in.Stats().Reconnects) }),
			counter("orch_metrics_applied_total", "Metrics applied to the windows (broker and pollers).", func() float64 { return float64(r.Counts().Metrics.Load()) }),
			counter("orch_policy_evaluations_total", "Policy evaluations.", func() float64 { return float64(r.Evaluations()) }),
			counter("orch_policy_conditions_fired_total", "Conditions that held and fired.", func() float64 { return float64(r.Counts().Fired.Load()) }),
			counter("orch_policy_conditions_held_back_total", "Conditions that held but were held back (cooldown, paused, grace or missing data).", func() float64 { return float64(r.Counts().HeldBack.Load()) }),
			counter("orch_policy_triggers_total", "Workflows queued by policies (recorded only, in a dry run).", func() float64 { return float64(r.Counts().Triggers.Load()) }),
			counter("orch_policy_trigger_errors_total", "Triggers whose workflow could not be queued.", func() float64 { return float64(r.Counts().Errors.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_policies", Help: "Policies being evaluated."}, func() float64 { return float64(r.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_policies_paused", Help: "Policies paused by hand."}, func() float64 {
				return float64(r.Paused(policies.Seconds(time.Now())))
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_series", Help: "Metric series the windows keep (bounded; they expire after their ttl)."}, func() float64 {
				n, _ := r.Series()
				return float64(n)
			}),
			counter("orch_metrics_unrouted_total", "Metrics dropped because no policy of their deployment reads them (unknown deployment, or one without policies).", func() float64 {
				_, n := r.Series()
				return float64(n)
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_deployments_broken", Help: "Deployments whose policies do not run: the stored blueprint no longer resolves or its policies no longer compile (orch deployments list says why)."}, func() float64 {
				return float64(m.BrokenCount())
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_policies_missing_data", Help: "Policies whose data is missing (a window they read is empty, or its source fails)."}, func() float64 {
				return float64(r.Missing())
			}),
		)
		for _, outcome := range policies.DecisionOutcomes {
			c := r.Counts().Outcome(outcome)
			s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orch_policy_decisions_total",
				Help:        "Policy decisions by outcome: triggered, error, no-trigger (fired, no trigger block), or held back by cooldown, paused, grace, missing-data or execution-queued.",
				ConstLabels: prometheus.Labels{"outcome": string(outcome)}}, func() float64 { return float64(c.Load()) }))
		}
		if rep := m.cfg.Replica; rep != nil {
			s.reg.MustRegister(
				counter("orch_replica_ownership_claims_total", "Deployments this replica took up.", func() float64 { return float64(rep.Claims.Load()) }),
				counter("orch_replica_ownership_releases_total", "Deployments this replica handed over (they hash to another replica now).", func() float64 { return float64(rep.Releases.Load()) }),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_replica_deployments_owned", Help: "Deployments this replica owns."}, func() float64 { return float64(len(rep.Owned())) }),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_replicas_live", Help: "Replicas registered in the store, at this replica's last check."}, func() float64 { return float64(len(rep.Live())) }),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orch_replica_lease_renewal_seconds", Help: "The last lease renewal's round trip to etcd."}, func() float64 { return rep.RenewLatency().Seconds() }),
			)
			s.reg.MustRegister(counter("orch_replica_fenced_writes_total", "Writes refused because this replica no longer owned the deployment.", func() float64 { return float64(m.FencedWrites()) }))
		}
		s.reg.MustRegister(
			counter("orch_source_polls_total", "Queries of the blueprints' source blocks (Prometheus, Calisti).", func() float64 { return float64(m.sourceCounts.Polls.Load()) }),
			counter("orch_source_poll_errors_total", "Queries of the blueprints' source blocks that failed (their metrics are missing, never zero).", func() float64 { return float64(m.sourceCounts.Errors.Load()) }),
		)
		if p := m.Poller; p != nil {
			s.reg.MustRegister(
				counter("orch_mesh_polls_total", "Service metric queries to the mesh.", func() float64 { return float64(p.Stats().Polls) }),
				counter("orch_mesh_poll_errors_total", "Service metric queries that failed (their metrics are missing, never zero).", func() float64 { return float64(p.Stats().Errors) }),
			)
		}
	})
}
