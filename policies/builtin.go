package policies

import (
	"fmt"
	"regexp"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// BuiltinTypes declares the built-in policy types in the blueprint language,
// so policies using them are type-checked like any other; their conditions
// are computed in Go.
const BuiltinTypes = `
policy_type "orch.scale_threshold" {
  uses        = "builtin.scale_threshold"
  description = "Riemann's scale.clj: over the last moving_window_size, each host's mean of the metrics whose service matches service_selector, then the mean across hosts. With scale_direction \"<\" it fires while fewer than scale_limit hosts report and the value is above scale_threshold (scale up); with \">\" while more than scale_limit hosts report and the value is below it (scale down)."
  parameter "service_selector" {
    default = ".*"
    format  = "regex"
  }
  parameter "moving_window_size" {
    default = "10s"
    format  = "duration"
  }
  parameter "scale_threshold" { type = number }
  parameter "scale_limit" {
    type    = number
    default = 10
    minimum = 0
  }
  parameter "scale_direction" {
    default     = "<"
    one_of      = ["<", ">"]
    description = "\"<\": scale up (fewer hosts than scale_limit, value above the threshold); \">\": scale down."
  }
  parameter "cooldown_time" {
    default     = "30s"
    format      = "duration"
    minimum     = 0
    description = "How long a firing silences the condition; \"0s\": no cooldown."
  }
  parameter "cooldown_scope" {
    default     = "policy"
    one_of      = ["policy", "deployment"]
    description = "\"policy\": each policy cools down on its own, and the cooldown survives restarts. \"deployment\": the original scale.clj's one flag shared by every such policy of the deployment (a scale-up silences the scale-down too), kept in memory only."
  }
  condition "scale" { values = ["value", "hosts"] }
}

policy_type "orch.node_changes" {
  uses        = "builtin.node_changes"
  description = "Fires when the nodes of the kubernetes.cluster nodes it targets change (added, removed, readiness, cordon, labels or taints; debounced by settle) and every resync: orch serve watches them. For level-triggered workflows such as kubernetes.route_reflectors."
  parameter "settle" {
    default = "2s"
    format  = "duration"
  }
  parameter "resync" {
    default = "5m"
    format  = "duration"
  }
  parameter "node_selector" {
    default     = ""
    format      = "kubernetes.label_selector"
    description = "Watch only the nodes this label selector picks; empty: every node."
  }
  condition "changed" { values = ["changes"] }
}

policy_type "orch.rps_burst" {
  uses        = "builtin.rps_burst"
  description = "Cloud burst with hysteresis: burst when the metric (the mean across hosts over the last sample_window) stays above burst_value for the whole throttle_delay, reconcile when it stays below reconcile_value for the whole delay. In between, nothing fires."
  parameter "metric" { default = "rps" }
  parameter "burst_value" {
    type    = number
    default = 100
  }
  parameter "reconcile_value" {
    type    = number
    default = 60
  }
  parameter "throttle_delay" {
    default = "120s"
    format  = "duration"
  }
  parameter "sample_window" {
    default = "5s"
    format  = "duration"
  }
  validation {
    condition     = param.reconcile_value < param.burst_value
    error_message = "reconcile_value must be below burst_value, or the policy would flap between burst and reconcile."
  }
  validation {
    condition     = param.metric != ""
    error_message = "metric names the metric whose mean is compared; it cannot be empty."
  }
  condition "burst" { direction = "up" }
  condition "reconcile" { direction = "down" }
}

policy_type "orch.ewma_threshold" {
  uses        = "builtin.ewma_threshold"
  description = "Thresholds on an exponentially weighted moving average of the metric, which damps spikes: scale_up above scale_up_above, scale_down below scale_down_below."
  parameter "metric" { type = string }
  parameter "window" {
    default = "60s"
    format  = "duration"
  }
  parameter "alpha" {
    type              = number
    default           = 0.3
    exclusive_minimum = 0
    maximum           = 1
    description       = "The smoothing factor, in (0, 1]: 1 follows the last sample, smaller values damp more."
  }
  parameter "scale_up_above" { type = number }
  parameter "scale_down_below" { type = number }
  validation {
    condition     = param.scale_down_below < param.scale_up_above
    error_message = "scale_down_below must be below scale_up_above, or both conditions could hold at once."
  }
  validation {
    condition     = param.metric != ""
    error_message = "metric names the metric to average; it cannot be empty."
  }
  condition "scale_up" {
    direction = "up"
    values    = ["ewma"]
  }
  condition "scale_down" {
    direction = "down"
    values    = ["ewma"]
  }
}

policy_type "orch.target_value" {
  uses        = "builtin.target_value"
  description = "Target-value scaling, as the HPA's: the ratio of the metric (each host's mean over the window, then the mean across hosts) to target. Outside the tolerance, scale_up or scale_down fires with values.ratio, for kubernetes.scale's amount \"*RATIO\" (desired = ceil(current x ratio), the current count read on the cluster). Each direction is stabilized (the ratio of the whole window: the lowest for up, the highest for down, a ratio within the tolerance counting as 1) and rate-limited (at most a percent of change per firing)."
  parameter "metric" { type = string }
  parameter "target" {
    type              = number
    exclusive_minimum = 0
    description       = "The value per host the policy keeps the metric at."
  }
  parameter "window" {
    default = "30s"
    format  = "duration"
  }
  parameter "tolerance" {
    type        = number
    default     = 0.1
    minimum     = 0
    maximum     = 1
    description = "Ratios within 1 +- tolerance change nothing (the HPA's 0.1)."
  }
  parameter "scale_up_stabilization" {
    default     = "0s"
    format      = "duration"
    minimum     = 0
    description = "Scale up only on the lowest ratio of this long (the HPA's scaleUp stabilizationWindowSeconds, 0)."
  }
  parameter "scale_down_stabilization" {
    default     = "300s"
    format      = "duration"
    minimum     = 0
    description = "Scale down only on the highest ratio of this long (the HPA's scaleDown stabilizationWindowSeconds, 300)."
  }
  parameter "scale_up_limit_percent" {
    type        = number
    default     = 100
    minimum     = 0
    description = "A firing adds at most this percent of the replicas (100: at most doubles); 0: no limit."
  }
  parameter "scale_down_limit_percent" {
    type        = number
    default     = 100
    minimum     = 0
    maximum     = 100
    description = "A firing removes at most this percent of the replicas (100: no limit)."
  }
  parameter "cooldown_time" {
    default     = "15s"
    format      = "duration"
    minimum     = 0
    description = "How long a firing silences its direction (the HPA's 15s sync period and policies' periodSeconds)."
  }
  validation {
    condition     = param.metric != ""
    error_message = "metric names the metric to keep at target; it cannot be empty."
  }
  condition "scale_up" {
    direction = "up"
    values    = ["value", "hosts", "ratio"]
  }
  condition "scale_down" {
    direction = "down"
    values    = ["value", "hosts", "ratio"]
  }
}
`

// BuiltinImplementations are the `uses` names of the built-in types.
func BuiltinImplementations() []string {
	return []string{"builtin.ewma_threshold", "builtin.node_changes", "builtin.rps_burst", "builtin.scale_threshold", "builtin.target_value"}
}

// NodeChanges is what an orch.node_changes policy watches; ok is false for
// a policy of another type.
type NodeChanges struct {
	Selector       string
	Settle, Resync time.Duration
}

// NodeChangesOf reads an orch.node_changes policy's parameters (checked by
// the language, so an error here is a bug, still reported).
func NodeChangesOf(p *blueprints.PlanPolicy) (nc NodeChanges, ok bool, err error) {
	if p.Type == nil || p.Type.Uses != "builtin.node_changes" {
		return nc, false, nil
	}
	pr := readProps(p)
	nc.Selector = pr.str("node_selector")
	nc.Settle = time.Duration(pr.seconds("settle") * float64(time.Second))
	nc.Resync = time.Duration(pr.seconds("resync") * float64(time.Second))
	if pr.err != nil {
		return nc, true, fmt.Errorf("policy %s: %w", p.Name, pr.err)
	}
	return nc, true, nil
}

// NodeChangesMetric is the metric orch serve applies to a deployment when
// the nodes of a cluster it watches change (debounced), and every resync.
const NodeChangesMetric = "node_changes"

var builtins = map[string]func(Target, *blueprints.PlanPolicy) (Evaluator, error){
	"builtin.scale_threshold": newScaleThreshold,
	"builtin.rps_burst":       newRPSBurst,
	"builtin.ewma_threshold":  newEWMAThreshold,
	"builtin.node_changes":    newNodeChanges,
	"builtin.target_value":    newTargetValue,
}

// nodeChanges fires "changed" on every node_changes metric: orch serve
// applies one when the watched cluster's nodes change (after they have
// settled) and every resync, and the triggered workflow reads the
// cluster's state itself, so one run per metric converges.
type nodeChanges struct {
	target Target
	res    [1]Result
	vals   [1]Reading
}

func newNodeChanges(t Target, _ *blueprints.PlanPolicy) (Evaluator, error) {
	return &nodeChanges{target: t}, nil
}

func (n *nodeChanges) Evaluate(w *Windows, now float64) ([]Result, error) {
	r := Result{Condition: "changed", Known: true}
	q := Query{Deployment: n.target.Deployment, Nodes: n.target.Nodes, Metric: NodeChangesMetric, Seconds: 0.001, Now: now}
	if count, ok := w.Reduce("count", q, 0); ok {
		r.Holds = true
		n.vals[0] = Reading{"changes", count}
		r.Values = n.vals[:]
	}
	n.res[0] = r
	return n.res[:], nil
}

// props reads typed properties of a resolved policy.
type props struct {
	v   cty.Value
	err error
}

func (p *props) str(name string) string {
	if p.err != nil {
		return ""
	}
	v := p.v.GetAttr(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		p.err = fmt.Errorf("property %s must be a string", name)
		return ""
	}
	return v.AsString()
}

func (p *props) num(name string) float64 {
	if p.err != nil {
		return 0
	}
	v := p.v.GetAttr(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		p.err = fmt.Errorf("property %s must be a number", name)
		return 0
	}
	f, _ := v.AsBigFloat().Float64()
	return f
}

func (p *props) seconds(name string) float64 {
	s := p.str(name)
	if p.err != nil {
		return 0
	}
	d, err := blueprints.ParseDuration(s)
	if err != nil {
		p.err = fmt.Errorf("property %s: %w", name, err)
		return 0
	}
	return d.Seconds()
}

func readProps(pol *blueprints.PlanPolicy) *props {
	v, _ := pol.Properties.Unmark()
	return &props{v: v}
}

// scaleThreshold is scale.clj's rule, exactly.
type scaleThreshold struct {
	target    Target
	selector  *regexp.Regexp
	window    float64
	threshold float64
	limit     float64
	up        bool
	res       [1]Result
	vals      [2]Reading
	sel       *selection // its window's
}

func newScaleThreshold(t Target, pol *blueprints.PlanPolicy) (Evaluator, error) {
	p := readProps(pol)
	s := &scaleThreshold{target: t, window: p.seconds("moving_window_size"), threshold: p.num("scale_threshold"), limit: p.num("scale_limit")}
	sel := p.str("service_selector")
	dir := p.str("scale_direction")
	if p.err != nil {
		return nil, fmt.Errorf("policy %s: %w", pol.Name, p.err)
	}
	var err error
	if s.selector, err = pattern(sel); err != nil {
		return nil, fmt.Errorf("policy %s: service_selector: %w", pol.Name, err)
	}
	switch dir {
	case "<":
		s.up = true
	case ">":
	default:
		return nil, fmt.Errorf("policy %s: scale_direction %q: want \"<\" (scale up) or \">\" (scale down)", pol.Name, dir)
	}
	return s, nil
}

// Window is the longest window it reads: the default start-up grace.
func (s *scaleThreshold) Window() float64 { return s.window }

// ScaleUp names the condition that scales up: "scale" when the direction
// is "<", none otherwise.
func (s *scaleThreshold) ScaleUp() string {
	if s.up {
		return "scale"
	}
	return ""
}

// Reads is the window of the services it selects.
func (s *scaleThreshold) Reads() []*blueprints.WindowSpec {
	return []*blueprints.WindowSpec{{Pattern: s.selector.String(), Duration: s.window}}
}

func (s *scaleThreshold) Evaluate(w *Windows, now float64) ([]Result, error) {
	m, seen := s.sel.recall(w, memoKey{fn: meanHostsFn, seconds: s.window, now: now, minHosts: s.target.MinHosts})
	if !seen {
		q := s.target.query("", s.window, now)
		q.Pattern = s.selector
		q.sel = w.selectionOf(&q, &s.sel)
		m.v, m.hosts, m.ok = w.MeanHosts(q)
	}
	// Written field by field: a struct made aside and copied here is
	// read back in wide loads that wait for its narrow stores.
	r := &s.res[0]
	r.Condition, r.Known, r.Holds, r.Values = "scale", m.ok, false, nil
	if value, hosts := m.v, m.hosts; m.ok {
		s.vals[0].Label, s.vals[0].Value = "value", value
		s.vals[1].Label, s.vals[1].Value = "hosts", hosts
		r.Values = s.vals[:]
		if s.up {
			r.Holds = hosts < s.limit && s.threshold < value
		} else {
			r.Holds = hosts > s.limit && s.threshold > value
		}
	}
	return s.res[:], nil
}

// rpsBurst fires burst or reconcile only after its condition has held for
// the whole throttle delay.
type rpsBurst struct {
	target                 Target
	metric                 string
	burst, reconcile       float64
	delay, sample          float64
	aboveSince, belowSince float64 // 0: not above/below
	// last is the condition that fired last: each fires once per crossing,
	// so burst and reconcile alternate. Unknown at start: whichever holds
	// first fires (both workflows are idempotent, so this converges).
	last string
	res  [2]Result
	vals [1]Reading
}

func newRPSBurst(t Target, pol *blueprints.PlanPolicy) (Evaluator, error) {
	p := readProps(pol)
	r := &rpsBurst{target: t, metric: p.str("metric"), burst: p.num("burst_value"), reconcile: p.num("reconcile_value"),
		delay: p.seconds("throttle_delay"), sample: p.seconds("sample_window")}
	if p.err != nil {
		return nil, fmt.Errorf("policy %s: %w", pol.Name, p.err)
	}
	if r.reconcile >= r.burst {
		return nil, fmt.Errorf("policy %s: reconcile_value (%g) must be below burst_value (%g), or the policy would flap", pol.Name, r.reconcile, r.burst)
	}
	return r, nil
}

// Window is the sample window (throttle_delay holds it back anyway).
func (r *rpsBurst) Window() float64 { return r.sample }

// Peek evaluates a copy: the hysteresis clocks stay as they are.
func (r *rpsBurst) Peek(w *Windows, now float64) ([]Result, error) {
	c := *r
	return c.Evaluate(w, now)
}

// Reads is its metric's window.
func (r *rpsBurst) Reads() []*blueprints.WindowSpec {
	return []*blueprints.WindowSpec{{Metric: r.metric, Duration: r.sample}}
}

func (r *rpsBurst) Evaluate(w *Windows, now float64) ([]Result, error) {
	q := r.target.query(r.metric, r.sample, now)
	v, ok := w.Reduce("mean", q, 0)
	burst, reconcile := Result{Condition: "burst"}, Result{Condition: "reconcile"}
	if !ok {
		// No data: the clocks restart; nothing is known.
		r.aboveSince, r.belowSince = 0, 0
		r.res = [2]Result{burst, reconcile}
		return r.res[:], nil
	}
	switch {
	case v > r.burst:
		if r.aboveSince == 0 {
			r.aboveSince = now
		}
		r.belowSince = 0
	case v < r.reconcile:
		if r.belowSince == 0 {
			r.belowSince = now
		}
		r.aboveSince = 0
	default:
		r.aboveSince, r.belowSince = 0, 0
	}
	r.vals[0] = Reading{r.metric, v}
	burst.Known, reconcile.Known = true, true
	burst.Values, reconcile.Values = r.vals[:], r.vals[:]
	burst.Holds = r.last != "burst" && r.aboveSince != 0 && now-r.aboveSince >= r.delay
	reconcile.Holds = r.last != "reconcile" && r.belowSince != 0 && now-r.belowSince >= r.delay
	r.res = [2]Result{burst, reconcile}
	return r.res[:], nil
}

// Fired records the condition that fired: each fires once per crossing. A
// condition held back (grace, pause, cooldown) keeps holding, and fires
// once nothing holds it back.
func (r *rpsBurst) Fired(condition string) { r.last = condition }

// ewmaThreshold compares an exponentially weighted moving average.
type ewmaThreshold struct {
	target        Target
	metric        string
	window, alpha float64
	up, down      float64
	res           [2]Result
	vals          [1]Reading
}

func newEWMAThreshold(t Target, pol *blueprints.PlanPolicy) (Evaluator, error) {
	p := readProps(pol)
	e := &ewmaThreshold{target: t, metric: p.str("metric"), window: p.seconds("window"), alpha: p.num("alpha"),
		up: p.num("scale_up_above"), down: p.num("scale_down_below")}
	if p.err != nil {
		return nil, fmt.Errorf("policy %s: %w", pol.Name, p.err)
	}
	if e.alpha <= 0 || e.alpha > 1 {
		return nil, fmt.Errorf("policy %s: alpha %g must be in (0, 1]", pol.Name, e.alpha)
	}
	if e.down >= e.up {
		return nil, fmt.Errorf("policy %s: scale_down_below (%g) must be below scale_up_above (%g)", pol.Name, e.down, e.up)
	}
	return e, nil
}

// Window is the window the average is taken over.
func (e *ewmaThreshold) Window() float64 { return e.window }

// Reads is its metric's window.
func (e *ewmaThreshold) Reads() []*blueprints.WindowSpec {
	return []*blueprints.WindowSpec{{Metric: e.metric, Duration: e.window}}
}

func (e *ewmaThreshold) Evaluate(w *Windows, now float64) ([]Result, error) {
	q := e.target.query(e.metric, e.window, now)
	up, down := Result{Condition: "scale_up"}, Result{Condition: "scale_down"}
	v, ok := w.Reduce("ewma", q, e.alpha)
	if ok {
		e.vals[0] = Reading{"ewma", v}
		up.Known, down.Known = true, true
		up.Values, down.Values = e.vals[:], e.vals[:]
		up.Holds, down.Holds = v > e.up, v < e.down
	}
	e.res = [2]Result{up, down}
	return e.res[:], nil
}
