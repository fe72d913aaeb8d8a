package policies

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// Reason is why a condition that held was held back.
type Reason string

// The reasons a condition that held does not fire.
const (
	ReasonCooldown Reason = "cooldown"
	ReasonPaused   Reason = "paused"
	ReasonGrace    Reason = "grace"
	// ReasonMissingData: its data is missing and on_missing_data = "hold".
	ReasonMissingData Reason = "missing-data"
	// ReasonExecutionQueued: a run of the workflow already waits to start.
	ReasonExecutionQueued Reason = "execution-queued"
)

// Outcome is what a decision came to: the reason it was held back, or what
// its firing did.
type Outcome string

// The outcomes of a firing; a held-back decision's outcome is its Reason.
const (
	OutcomeTriggered Outcome = "triggered"
	OutcomeError     Outcome = "error"      // fired, but its workflow was not queued
	OutcomeNoTrigger Outcome = "no-trigger" // fired, and the policy has no trigger for it
)

// DecisionOutcomes are the outcomes a decision can have, for exporting
// every counter from the start.
var DecisionOutcomes = []Outcome{OutcomeTriggered, OutcomeError, OutcomeNoTrigger,
	Outcome(ReasonCooldown), Outcome(ReasonPaused), Outcome(ReasonGrace), Outcome(ReasonMissingData), Outcome(ReasonExecutionQueued)}

// Decision is a condition that held at an evaluation (fired, or held back
// and why), or a policy whose data went missing.
type Decision struct {
	// Seq numbers the decisions of a policy, from 1, across restarts.
	Seq        uint64  `json:"seq,omitempty"`
	Time       float64 `json:"time"`
	Deployment string  `json:"deployment,omitempty"`
	Policy     string  `json:"policy"`
	Condition  string  `json:"condition"`
	Fired      bool    `json:"fired"`
	// Reason is why it was held back.
	Reason Reason `json:"reason,omitempty"`
	Values Values `json:"values,omitempty"`
	// CooldownLeft is the seconds left of the cooldown that held it back;
	// GraceLeft of the start-up grace.
	CooldownLeft float64 `json:"cooldown_left,omitempty"`
	GraceLeft    float64 `json:"grace_left,omitempty"`
	// Missing says why the policy's data counts as missing, for a decision
	// made on missing data.
	Missing string `json:"missing,omitempty"`
	// Workflow and Execution are the workflow a fired decision queued (or
	// the error that kept it from being queued).
	Workflow  string `json:"workflow,omitempty"`
	Execution string `json:"execution,omitempty"`
	Error     string `json:"error,omitempty"`
	// event is the metric that was applied when it was made (nil for a
	// check on missing data): the `event` of trigger parameters.
	event *Metric
}

// Outcome is what the decision came to.
func (d *Decision) Outcome() Outcome {
	switch {
	case !d.Fired:
		return Outcome(d.Reason)
	case d.Error != "":
		return OutcomeError
	case d.Workflow == "":
		return OutcomeNoTrigger
	}
	return OutcomeTriggered
}

// DecisionsAfter returns the decisions of a policy's log after last (the
// newest one a follower has seen): those with a higher sequence number; for
// a log stored before decisions were numbered, those following it or (when
// it has rotated out of the bounded log) those made later.
func DecisionsAfter(log []Decision, last *Decision) []Decision {
	if last == nil {
		return log
	}
	if last.Seq > 0 {
		for i, d := range log {
			if d.Seq > last.Seq {
				return log[i:]
			}
		}
		return nil
	}
	for i := len(log) - 1; i >= 0; i-- {
		if sameDecision(log[i], *last) {
			return log[i+1:]
		}
	}
	for i, d := range log {
		if d.Time > last.Time {
			return log[i:]
		}
	}
	return nil
}

func sameDecision(a, b Decision) bool {
	return a.Time == b.Time && a.Condition == b.Condition && a.Fired == b.Fired && a.Reason == b.Reason &&
		a.Execution == b.Execution && a.Missing == b.Missing
}

// MissingDataRepeat is how often (seconds) on_missing_data = "scale_up"
// or "trigger" fires again while the data stays missing, for a policy
// without a cooldown.
const MissingDataRepeat = 60

// Instance is a policy being evaluated: its evaluator and its cooldowns,
// kept per condition (scale up and scale down cool down separately).
type Instance struct {
	// What every evaluation reads and writes comes first, on two cache
	// lines, then what a condition that holds reads, then the rest (a
	// metric finds its policies cold: the fewer lines, the less waiting).
	// The object is 320 bytes, a size class whose objects start on a
	// line (TestInstanceLayout).
	Eval Evaluator
	// missingSince is when its data went missing (0 while it is there).
	missingSince float64
	// history is the window values of recent evaluations, at most one
	// point a second and HistorySize points (default 120), for plots, in
	// the ring ring: the newest is at last, of second lastSecond. The
	// ring grows to HistorySize, then (full) wraps. The values' labels
	// are histKeys[:nKeys], in the object itself. An evaluation only
	// writes the ring.
	lastSecond float64
	ring       []histPoint
	last       int32
	started    bool
	full       bool
	nKeys      uint8

	histKeys [historyKeys]string

	// graceUntil is when the start-up grace ends (set at the first
	// evaluation).
	graceUntil  float64
	HistorySize int
	Cooldown    float64 // seconds, per condition

	Name   string
	shared *float64 // the deployment's flag, set by Pipeline.Add
	// pause, when set, holds back every firing (without starting a
	// cooldown) until it expires.
	pause *Pause
	// untils are its conditions' cooldowns: when each ends (a condition
	// not there has none); most policies' fit in untilBuf.
	untils []condUntil
	// Shared is scale.clj's original cooldown: one flag for every shared
	// policy of the deployment, not persisted (cooldown_scope = "deployment").
	Shared bool

	untilBuf [2]condUntil
	up       string // the condition that scales up, for OnMissing "scale_up"

	// OnMissing is what it does while its data is missing: hold (log it),
	// scale_up (fire the condition that scales up) or trigger (fire the
	// missing_data trigger).
	OnMissing blueprints.MissingData
	// Delay is the start-up grace in seconds: nothing fires until Delay
	// after the first evaluation. Negative: the longest window it reads.
	Delay    float64
	minHosts int
	nodes    map[string]bool // its target's (nil: every node)
}

// Point is a policy's window values at an evaluation.
type Point struct {
	Time   float64            `json:"t"`
	Values map[string]float64 `json:"v"`
}

// historyKeys is how many values a history point keeps: the first ones
// a policy reports (a plot draws no more).
const historyKeys = 4

// histPoint is a history point without pointers: a long history costs the
// garbage collector nothing.
type histPoint struct {
	t   float64
	v   [historyKeys]float64
	set uint8 // which of v are set
}

// remember adds an evaluation's values to the history: one point a
// second, the latest evaluation of that second, in a ring. The point is
// written in place: one made aside and copied is read back in wide
// loads, which wait for its narrow stores and every store before them
// (cold lines of other policies).
func (in *Instance) remember(now float64, results []Result) {
	// The history's values the results set (results and readings by
	// index, not copied, for the same reason), each stored as it is
	// found, in a point of its own when the second is not the newest
	// point's. A policy's labels are mostly the very strings it reported
	// before: their data is compared only when they are not.
	var set uint8
	var p *histPoint
	keys := in.histKeys[:in.nKeys]
	for ri := range results {
		vals := results[ri].Values
		for vi := range vals {
			label := vals[vi].Label
			i := 0
			for ; i < len(keys); i++ {
				if unsafe.StringData(keys[i]) == unsafe.StringData(label) && len(keys[i]) == len(label) {
					break
				}
			}
			if i == len(keys) {
				if i = in.histKey(label); i < 0 {
					continue
				}
				keys = in.histKeys[:in.nKeys]
			}
			if p == nil {
				p = in.point(now)
			}
			set |= 1 << i
			p.v[i] = vals[vi].Value
		}
	}
	if p != nil {
		p.t, p.set = now, set
	}
}

// histKey is the index of a value's label in the history, added if it
// is new (-1: the history has historyKeys others).
func (in *Instance) histKey(label string) int {
	keys := in.histKeys[:in.nKeys]
	i := slices.Index(keys, label)
	if i < 0 && len(keys) < historyKeys {
		i = len(keys)
		in.histKeys[i] = label
		in.nKeys++
	}
	return i
}

// point is the history point of now's second: the newest, or a new one
// after it (in place of the oldest, once the ring is full).
func (in *Instance) point(now float64) *histPoint {
	n := len(in.ring)
	second := math.Floor(now)
	if n > 0 && in.lastSecond == second {
		return &in.ring[in.last]
	}
	in.lastSecond = second
	if !in.full && n == cap(in.ring) {
		size := in.HistorySize
		if size <= 0 {
			size = 120
		}
		if n < size {
			grown := min(size, max(2*n, 8))
			in.ring = slices.Grow(in.ring, grown-n)[:n:grown]
		} else {
			in.full = true // (or HistorySize lowered: it keeps n)
		}
	}
	if in.full {
		if in.last++; int(in.last) == n {
			in.last = 0
		}
	} else {
		in.ring = in.ring[:n+1]
		in.last = int32(n)
	}
	return &in.ring[in.last]
}

// History returns the recent points, oldest first.
func (in *Instance) History() []Point {
	out := make([]Point, 0, len(in.ring))
	point := func(hp histPoint) {
		p := Point{Time: hp.t, Values: map[string]float64{}}
		for j, k := range in.histKeys[:in.nKeys] {
			if hp.set&(1<<j) != 0 {
				p.Values[k] = hp.v[j]
			}
		}
		out = append(out, p)
	}
	first := 0 // the oldest point
	if in.full {
		first = int(in.last) + 1
	}
	for i := range in.ring {
		point(in.ring[(first+i)%len(in.ring)])
	}
	return out
}

// Pause is a policy paused by hand: it still evaluates, and records what it
// would have done, but queues nothing.
type Pause struct {
	By     string  `json:"by,omitempty"`
	Reason string  `json:"reason,omitempty"`
	Since  float64 `json:"since"`
	// Until is when the pause ends by itself (Unix seconds); 0: at resume.
	Until float64 `json:"until,omitempty"`
}

// Active reports whether the pause holds at now.
func (p *Pause) Active(now float64) bool { return p != nil && (p.Until == 0 || now < p.Until) }

// NewInstance compiles a resolved policy. Its cooldown is the
// cooldown_time property (as scale.clj's), when the type has one.
func NewInstance(t Target, p *blueprints.PlanPolicy) (*Instance, error) {
	t.MinHosts = p.MinHosts
	t.intern()
	ev, err := Compile(t, p)
	if err != nil {
		return nil, err
	}
	in := &Instance{Name: p.Name, Eval: ev, OnMissing: p.OnMissingData, Delay: -1, minHosts: p.MinHosts, nodes: t.Nodes}
	if in.OnMissing == "" {
		in.OnMissing = blueprints.MissingHold
	}
	if p.InitialDelay != nil {
		in.Delay = p.InitialDelay.Seconds()
	}
	props, _ := p.Properties.Unmark()
	if props == cty.NilVal || props.IsNull() {
		props = cty.EmptyObjectVal
	}
	if props.Type().IsObjectType() && props.Type().HasAttribute(blueprints.CooldownParameter) {
		// The language checks it; a value that still does not parse is an
		// error, never "no cooldown".
		if v := props.GetAttr(blueprints.CooldownParameter); !v.IsNull() {
			if v.Type() != cty.String || !v.IsKnown() {
				return nil, fmt.Errorf("policy %s: cooldown_time must be a duration such as \"30s\"", p.Name)
			}
			d, err := blueprints.ParseDurationOrZero(v.AsString())
			if err != nil {
				return nil, fmt.Errorf("policy %s: cooldown_time: %w", p.Name, err)
			}
			in.Cooldown = d.Seconds()
		}
	}
	if props.Type().IsObjectType() && props.Type().HasAttribute("cooldown_scope") {
		v := props.GetAttr("cooldown_scope")
		scope := CooldownScopePolicy
		if v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			scope = v.AsString()
		}
		switch scope {
		case CooldownScopePolicy:
		case CooldownScopeDeployment:
			in.Shared = true
		default:
			return nil, fmt.Errorf("policy %s: cooldown_scope %q: want \"policy\" or \"deployment\"", p.Name, scope)
		}
	}
	if in.OnMissing == blueprints.MissingScaleUp {
		if sc, ok := ev.(scaler); ok {
			in.up = sc.ScaleUp()
		} else {
			for _, c := range p.Type.Conditions {
				if c.Direction == "up" {
					in.up = c.Name
				}
			}
		}
		if in.up == "" {
			return nil, fmt.Errorf("policy %s: on_missing_data = \"scale_up\", but none of its conditions scales up (a scale_threshold with scale_direction \"<\" does)", p.Name)
		}
		if !slices.ContainsFunc(p.Triggers, func(t *blueprints.Trigger) bool { return t.Condition == in.up }) {
			return nil, fmt.Errorf("policy %s: on_missing_data = \"scale_up\" fires condition %q, which has no trigger", p.Name, in.up)
		}
	}
	return in, nil
}

// condUntil is when a condition's cooldown ends.
type condUntil struct {
	cond  string
	until float64
}

// until is when the cooldown of condition cond ends (0: none).
func (in *Instance) until(cond string) float64 {
	for _, u := range in.untils {
		if u.cond == cond {
			return u.until
		}
	}
	return 0
}

// setUntil sets when the cooldown of condition cond ends.
func (in *Instance) setUntil(cond string, until float64) {
	for i := range in.untils {
		if in.untils[i].cond == cond {
			in.untils[i].until = until
			return
		}
	}
	if in.untils == nil {
		in.untils = in.untilBuf[:0]
	}
	in.untils = append(in.untils, condUntil{cond, until})
}

// start begins the start-up grace at the first evaluation.
func (in *Instance) start(now float64) {
	if in.started {
		return
	}
	in.started = true
	delay := in.Delay
	if delay < 0 {
		delay = 0
		if w, ok := in.Eval.(windowed); ok {
			delay = w.Window()
		}
	}
	if delay > 0 {
		// No grace, no bound: with initial_delay = "0s" a metric older
		// than the first check (a backlog a new owner consumes after its
		// first missing-data check) is not held back as "in the grace".
		in.graceUntil = now + delay
	}
}

// gate decides whether a condition that holds fires: not while paused, in
// the start-up grace or cooling down. A firing starts its cooldown (at
// least MissingDataRepeat for one on missing data).
func (in *Instance) gate(d *Decision, now float64) {
	until := in.until(d.Condition)
	shared := in.shared != nil && d.Condition != blueprints.MissingDataCondition
	if shared {
		until = *in.shared
	}
	cooldown := in.Cooldown
	if d.Missing != "" && cooldown <= 0 {
		cooldown = MissingDataRepeat
	}
	switch {
	case in.pause.Active(now):
		d.Reason = ReasonPaused
	case now < in.graceUntil:
		d.Reason = ReasonGrace
		d.GraceLeft = in.graceUntil - now
	case now < until:
		d.Reason = ReasonCooldown
		d.CooldownLeft = until - now
	case shared:
		d.Fired = true
		*in.shared = now + cooldown
	default:
		d.Fired = true
		in.setUntil(d.Condition, now+cooldown)
	}
	if d.Fired {
		if f, ok := in.Eval.(firer); ok {
			f.Fired(d.Condition)
		}
	}
}

// Step evaluates the policy at now and appends to out what held (fired,
// or held back and why), and what its missing data decided. The
// decisions' Values are the evaluator's, valid until it evaluates again.
func (in *Instance) Step(w *Windows, now float64, out []Decision) ([]Decision, error) {
	return in.step(w, now, "", out)
}

// step is Step; sources are the failing sources of its deployment, for
// the cause of missing data.
func (in *Instance) step(w *Windows, now float64, sources string, out []Decision) ([]Decision, error) {
	results, err := in.Eval.Evaluate(w, now)
	if err != nil {
		return out, err
	}
	in.start(now)
	in.remember(now, results)
	for i := range results {
		r := &results[i]
		if !r.Known || !r.Holds {
			continue
		}
		// Made in place: a decision is too big to copy per metric.
		out = append(out, Decision{})
		d := &out[len(out)-1]
		d.Time, d.Policy, d.Condition, d.Values = now, in.Name, r.Condition, Values(r.Values)
		in.gate(d, now)
	}
	return in.missing(results, now, sources, out), nil
}

// keepStart carries old's start (grace, missing data) over to in: the same
// policy, compiled again.
func (in *Instance) keepStart(old *Instance) {
	in.started, in.graceUntil, in.missingSince = old.started, old.graceUntil, old.missingSince
}

// reads reports whether a metric of series s can change a window the
// policy reads: one of its target's nodes, and the metric or services of
// one of its windows. An evaluator that cannot tell reads them all.
func (in *Instance) reads(s *series) bool {
	if in.nodes != nil && !in.nodes[s.key.node] {
		return false
	}
	r, ok := in.Eval.(reader)
	if !ok {
		return true
	}
	specs := r.Reads()
	if specs == nil {
		return true
	}
	for _, spec := range specs {
		if spec.Pattern == "" {
			if slices.Contains(s.aliases, spec.Metric) {
				return true
			}
			continue
		}
		if re, err := pattern(spec.Pattern); err == nil && s.matches(re) {
			return true
		}
	}
	return false
}

// Check looks for missing data at now without evaluating for firing (the
// evaluator's state is left as it is): orch serve calls it every second, so
// a source that stopped is noticed though no metric arrives.
func (in *Instance) Check(w *Windows, now float64, out []Decision) ([]Decision, error) {
	return in.check(w, now, "", out)
}

// check is Check, with its deployment's failing sources (step).
func (in *Instance) check(w *Windows, now float64, sources string, out []Decision) ([]Decision, error) {
	results, err := peek(in.Eval, w, now)
	if err != nil {
		return out, err
	}
	in.start(now)
	return in.missing(results, now, sources, out), nil
}

// missing handles a policy with a condition whose window has no data
// (missing data is never a zero, so that condition does not hold). After
// the start-up grace: "hold" records it when it starts; "scale_up" and
// "trigger" fire, once per cooldown while it lasts.
func (in *Instance) missing(results []Result, now float64, sources string, out []Decision) []Decision {
	unknown := ""
	for i := range results {
		if !results[i].Known {
			unknown = results[i].Condition
			break
		}
	}
	if unknown == "" || now < in.graceUntil {
		if in.missingSince != 0 {
			in.missingSince = 0
		}
		return out
	}
	cause := "no data in the window of condition " + unknown
	if in.minHosts > 1 {
		cause = fmt.Sprintf("fewer than %d hosts (min_hosts) in the window of condition %s", in.minHosts, unknown)
	}
	if sources != "" {
		cause += " (" + sources + ")"
	}
	first := in.missingSince == 0
	if first {
		in.missingSince = now
	}
	switch in.OnMissing {
	case blueprints.MissingScaleUp, blueprints.MissingTrigger:
		cond := in.up
		if in.OnMissing == blueprints.MissingTrigger {
			cond = blueprints.MissingDataCondition
		}
		d := Decision{Time: now, Policy: in.Name, Condition: cond, Missing: cause}
		in.gate(&d, now)
		if d.Fired || first {
			return append(out, d)
		}
	default:
		if first {
			return append(out, Decision{Time: now, Policy: in.Name, Condition: unknown, Reason: ReasonMissingData, Missing: cause})
		}
	}
	return out
}

// The cooldown_scope values of orch.scale_threshold.
const (
	CooldownScopePolicy     = "policy"     // each policy cools down on its own, persisted
	CooldownScopeDeployment = "deployment" // scale.clj's one flag per deployment, in memory
)
