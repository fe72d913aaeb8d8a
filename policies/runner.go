package policies

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// Queuer queues a workflow run; the orchestrator's engine implements it. A
// policy decides and queues; it never calls a plugin. The parameters are
// the trigger's typed values, as its expression gave them.
type Queuer interface {
	Queue(ctx context.Context, deployment, workflow string, params map[string]cty.Value) (execution string, err error)
}

// StoringQueuer is implemented by queues that store a firing's policy
// state in the transaction that queues its workflow, so a firing is one
// write (one fsync) and a crash keeps both or neither: the cooldown, the
// trigger record naming the execution, and the execution.
type StoringQueuer interface {
	// NewExecutionID returns the id the next queued execution may take.
	NewExecutionID() string
	// QueueStoring queues the workflow as execution id and stores state
	// under key with it.
	QueueStoring(ctx context.Context, deployment, workflow string, params map[string]cty.Value, id, key string, state any) error
}

// Waiter is implemented by queues that know whether a run of a workflow is
// already waiting to start (pending or queued behind another execution of
// the deployment); it returns that execution's id, or "".
type Waiter interface {
	Waiting(ctx context.Context, deployment, workflow string) (string, error)
}

// StateStore keeps policy state across restarts (the bbolt state file).
type StateStore interface {
	PolicyState(ctx context.Context, key string, v any) error
	PutPolicyState(ctx context.Context, key string, v any) error
}

// policyState is what survives a restart: cooldowns (event time, per
// condition) and the recent triggers.
type policyState struct {
	Until    map[string]float64 `json:"until"`
	Triggers []Trigger          `json:"triggers,omitempty"`
	Paused   *Pause             `json:"paused,omitempty"`
}

// Trigger is one fired condition and the execution it queued.
type Trigger struct {
	Time      float64 `json:"time"`
	Condition string  `json:"condition"`
	Workflow  string  `json:"workflow"`
	Execution string  `json:"execution,omitempty"`
	Error     string  `json:"error,omitempty"`
	DryRun    bool    `json:"dry_run,omitempty"`
}

const maxTriggerHistory = 100

// FireTimeout bounds what the firings of one metric or tick do (store
// their cooldowns, queue their workflows).
const FireTimeout = 30 * time.Second

// Runner evaluates the policies of deployments as metrics arrive and queues
// the workflows their triggers name. A metric's way through it reads top to
// bottom (Ingest): under the lock, the pipeline decodes, windows and
// evaluates and returns decisions, and the runner records the held-back
// ones and prepares the firings; then, with the lock released and the
// caller's context, it stores each firing's cooldown and queues its
// workflow. Its methods are safe for concurrent use: the lock orders
// metrics, deployments coming and going, and status reads (which never wait
// for I/O); metrics and ticks act one at a time, in order.
type Runner struct {
	Pipeline *Pipeline
	Queue    Queuer
	State    StateStore
	// DryRun records decisions and triggers without queueing anything.
	DryRun bool
	// OnTrigger observes every trigger (fired or dry run).
	OnTrigger func(deployment, policy string, t Trigger)
	Log       *slog.Logger

	// LogSize and LogAge bound each policy's decision log (default 100
	// decisions, 24 hours).
	LogSize int
	LogAge  float64

	// acting orders the metrics and ticks that act (I/O included), so
	// policy state is written in the order it changed; mu guards the
	// pipeline and the policies and is never held during I/O.
	acting   sync.Mutex
	mu       sync.Mutex
	buf      []Decision            // the pipeline's decisions, reused (under acting)
	policies map[string]*runPolicy // deployment \x00 policy
	err      error
	counts   Counts
}

// Counts are the runner's counters since it started.
type Counts struct {
	Metrics  atomic.Int64 // metrics applied
	Fired    atomic.Int64 // conditions that fired
	HeldBack atomic.Int64 // conditions that held but were held back
	Triggers atomic.Int64 // workflows queued (or recorded, in a dry run)
	Errors   atomic.Int64 // triggers that failed to queue
	// Outcomes count decisions by outcome (DecisionOutcomes).
	Outcomes sync.Map // Outcome -> *atomic.Int64
}

// Outcome returns the counter of decisions with an outcome.
func (c *Counts) Outcome(o Outcome) *atomic.Int64 {
	if v, ok := c.Outcomes.Load(o); ok {
		return v.(*atomic.Int64)
	}
	v, _ := c.Outcomes.LoadOrStore(o, new(atomic.Int64))
	return v.(*atomic.Int64)
}

type runPolicy struct {
	deployment string
	plan       *blueprints.PlanPolicy
	instance   *Instance
	state      policyState
	// log[head:] is the policy's recent decisions, oldest first (the
	// entries before head have dropped out); dirty says it changed since
	// it was last stored; seq is the last decision's Seq.
	log   []Decision
	head  int
	dirty bool
	seq   uint64
	// spare are the Values of decisions that left the log, reused by the
	// next ones recorded: a policy held back at every metric allocates
	// nothing. Everything read from the log outside mu is copied
	// (decisionsCopy), since a spare is written again.
	spare []Values
}

func logKey(deployment, policy string) string { return "decisions/" + deployment + "/" + policy }

// record counts a decision and appends it to the policy's log, within its
// bounds. Every decision passes here once, in its final form.
func (r *Runner) record(rp *runPolicy, d Decision) {
	r.tally(d)
	rp.seq++
	d.Seq, d.event = rp.seq, nil
	d.Values = rp.own(d.Values)
	size, age := r.LogSize, r.LogAge
	if size <= 0 {
		size = 100
	}
	if age <= 0 {
		age = 24 * 3600
	}
	rp.log = append(rp.log, d)
	for rp.head < len(rp.log) && (len(rp.log)-rp.head > size || rp.log[rp.head].Time < d.Time-age) {
		rp.head++
	}
	// The dropped prefix is compacted once it outgrows the live part: each
	// decision is copied about once, however long the log.
	if rp.head > 0 && rp.head >= len(rp.log)-rp.head {
		for _, gone := range rp.log[:rp.head] {
			if gone.Values != nil {
				rp.spare = append(rp.spare, gone.Values[:0])
			}
		}
		n := copy(rp.log, rp.log[rp.head:])
		clear(rp.log[n:])
		rp.log, rp.head = rp.log[:n], 0
	}
	rp.dirty = true
}

// own copies the values of a decision the log keeps into a spare.
func (rp *runPolicy) own(vs Values) Values {
	if len(vs) == 0 {
		return nil
	}
	var buf Values
	if n := len(rp.spare); n > 0 {
		buf, rp.spare = rp.spare[n-1], rp.spare[:n-1]
	}
	return append(buf[:0], vs...)
}

// decisions is the policy's decision log, oldest first.
func (rp *runPolicy) decisions() []Decision { return rp.log[rp.head:] }

// decisionsCopy is the decision log to read without mu: its values are
// copies (the log's are reused).
func (rp *runPolicy) decisionsCopy() []Decision {
	if len(rp.decisions()) == 0 {
		return nil
	}
	out := slices.Clone(rp.decisions())
	for i := range out {
		out[i].Values = out[i].Values.Clone()
	}
	return out
}

// tally counts a decision: fired or held back, and by outcome.
func (r *Runner) tally(d Decision) {
	if d.Fired {
		r.counts.Fired.Add(1)
	} else {
		r.counts.HeldBack.Add(1)
	}
	r.counts.Outcome(d.Outcome()).Add(1)
}

// FlushDecisions stores the decision logs that changed. orch serve calls
// it every second and when it stops: held-back decisions can come with
// every metric, so they are not written one by one.
func (r *Runner) FlushDecisions(ctx context.Context) error {
	type pending struct {
		rp  *runPolicy
		log []Decision
	}
	var todo []pending
	r.mu.Lock()
	for _, rp := range r.policies {
		if rp.dirty {
			todo = append(todo, pending{rp, rp.decisionsCopy()})
			rp.dirty = false
		}
	}
	r.mu.Unlock()
	// Written without the lock: metrics and status reads go on meanwhile.
	for i, p := range todo {
		if err := r.State.PutPolicyState(ctx, logKey(p.rp.deployment, p.rp.plan.Name), p.log); err != nil {
			r.mu.Lock()
			for _, q := range todo[i:] {
				q.rp.dirty = true // written at the next flush
			}
			r.mu.Unlock()
			return fmt.Errorf("store decisions of %s/%s: %w", p.rp.deployment, p.rp.plan.Name, err)
		}
	}
	return nil
}

// NewRunner returns a runner over a pipeline.
func NewRunner(p *Pipeline, q Queuer, s StateStore) *Runner {
	return &Runner{Pipeline: p, Queue: q, State: s, policies: map[string]*runPolicy{}}
}

func stateKey(deployment, policy string) string { return "policy/" + deployment + "/" + policy }

// Counts returns the runner's counters.
func (r *Runner) Counts() *Counts { return &r.counts }

// Ingest decodes one message body, applies it, and acts on what its
// policies decide with ctx (the delivery's). A malformed message is
// counted and its error returned; any other message is applied once and
// acknowledged, whatever its firings came to (their decisions say).
func (r *Runner) Ingest(ctx context.Context, body []byte, routingKey string) error {
	r.acting.Lock()
	defer r.acting.Unlock()
	r.mu.Lock()
	ds, err := r.Pipeline.Ingest(body, routingKey, r.buf[:0])
	if err == nil {
		r.applied()
	}
	return r.actLocked(ctx, ds, err)
}

// Apply applies a metric from a source other than the broker (a poller, a
// node watch) and acts on its decisions with ctx.
func (r *Runner) Apply(ctx context.Context, m *Metric) error {
	r.acting.Lock()
	defer r.acting.Unlock()
	r.mu.Lock()
	ds, err := r.Pipeline.Apply(m, r.buf[:0])
	if err == nil {
		r.applied()
	}
	return r.actLocked(ctx, ds, err)
}

// Tick looks for missing data in every policy. orch serve calls it every
// second with the wall clock; each deployment's time runs on from its
// newest metric's event time, so producers' clocks, not serve's, time the
// windows, and one deployment's clock never moves another's.
func (r *Runner) Tick(ctx context.Context, wall time.Time) error {
	r.acting.Lock()
	defer r.acting.Unlock()
	r.mu.Lock()
	ds, err := r.Pipeline.TickWall(wall, r.buf[:0])
	return r.actLocked(ctx, ds, err)
}

// TickAt looks for missing data at event time now (a replay's simulated
// clock) and acts on what it decides.
func (r *Runner) TickAt(ctx context.Context, now float64) error {
	r.acting.Lock()
	defer r.acting.Unlock()
	r.mu.Lock()
	ds, err := r.Pipeline.Tick(now, r.buf[:0])
	return r.actLocked(ctx, ds, err)
}

// actLocked is the second half of every metric and tick: called with mu
// held (and acting), it records the decisions that need no I/O and
// prepares the firings, releases mu, then stores and queues the firings.
func (r *Runner) actLocked(ctx context.Context, ds []Decision, err error) error {
	firings := r.settle(ds)
	r.buf = ds[:0]
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return r.fire(ctx, firings)
}

// applied counts a metric.
func (r *Runner) applied() { r.counts.Metrics.Add(1) }

// SetSource records a metric source of a deployment ("" for every
// deployment) failing (err non-empty) or working again (""): decisions on
// missing data name it.
func (r *Runner) SetSource(deployment, source, err string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Pipeline.SetSource(deployment, source, err)
}

// Len returns the number of policies being evaluated.
func (r *Runner) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.policies)
}

// Series returns how many series the windows keep, and how many metrics
// were dropped because no policy of their deployment reads them.
func (r *Runner) Series() (series int, unrouted int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Pipeline.Windows.Len(), r.Pipeline.Unrouted
}

// Evaluations returns how many policy evaluations ran.
func (r *Runner) Evaluations() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Pipeline.Evaluations
}

// AddDeployment compiles a deployment's policies and restores their state.
// Adding a deployment again replaces its policies (a new blueprint).
func (r *Runner) AddDeployment(ctx context.Context, deployment string, plan *blueprints.Plan) error {
	compiled := make([]*runPolicy, 0, len(plan.Policies))
	for _, p := range plan.Policies {
		t := Target{Deployment: deployment}
		if len(p.Targets) > 0 {
			t.Nodes = map[string]bool{}
			for _, n := range p.Targets {
				t.Nodes[n] = true
			}
		}
		in, err := NewInstance(t, p)
		if err != nil {
			return fmt.Errorf("deployment %s: %w", deployment, err)
		}
		rp := &runPolicy{deployment: deployment, plan: p, instance: in}
		if err := r.State.PolicyState(ctx, stateKey(deployment, p.Name), &rp.state); err == nil {
			for cond, until := range rp.state.Until {
				// A cooldown stored from a time far ahead (a forged
				// timestamp, before times were checked) ends at most one
				// cooldown from now, not years later.
				if r.Pipeline.Now != nil {
					if limit := Seconds(r.Pipeline.Now()) + in.Cooldown + r.Pipeline.MaxSkew; until > limit {
						until = limit
						rp.state.Until[cond] = until
					}
				}
				in.setUntil(cond, until)
			}
			in.pause = rp.state.Paused
		}
		_ = r.State.PolicyState(ctx, logKey(deployment, p.Name), &rp.log)
		for _, d := range rp.log {
			rp.seq = max(rp.seq, d.Seq)
		}
		compiled = append(compiled, rp)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rp := range compiled {
		// A policy kept (a deployment updated) keeps its start-up grace
		// as it was: its windows are kept too.
		if old := r.policies[deployment+"\x00"+rp.plan.Name]; old != nil {
			rp.instance.keepStart(old.instance)
		}
	}
	r.removeLocked(deployment)
	for _, rp := range compiled {
		r.policies[deployment+"\x00"+rp.plan.Name] = rp
		r.Pipeline.Add(deployment, rp.instance)
	}
	return nil
}

// SetPause pauses (p non-nil) or resumes (nil) policies of a deployment:
// the one named, or all of them with policy "". The pause is stored before
// it takes effect, so a restart keeps it. It returns the policies changed.
func (r *Runner) SetPause(ctx context.Context, deployment, policy string, p *Pause) ([]string, error) {
	// Ordered with the metrics that act (acting), so no firing's state
	// write can overtake the pause's; stored without holding mu.
	r.acting.Lock()
	defer r.acting.Unlock()
	var names, all []string
	var chosen []*runPolicy
	r.mu.Lock()
	for _, rp := range r.policies {
		if rp.deployment != deployment {
			continue
		}
		all = append(all, rp.plan.Name)
		if policy == "" || rp.plan.Name == policy {
			chosen = append(chosen, rp)
		}
	}
	r.mu.Unlock()
	for _, rp := range chosen {
		r.mu.Lock()
		st := rp.state.clone()
		r.mu.Unlock()
		st.Paused = p
		if err := r.State.PutPolicyState(ctx, stateKey(deployment, rp.plan.Name), &st); err != nil {
			sort.Strings(names)
			return names, fmt.Errorf("store policy state of %s/%s: %w", deployment, rp.plan.Name, err)
		}
		r.mu.Lock()
		rp.state.Paused, rp.instance.pause = p, p
		r.mu.Unlock()
		names = append(names, rp.plan.Name)
	}
	if len(names) == 0 {
		sort.Strings(all)
		if len(all) == 0 {
			return nil, fmt.Errorf("deployment %s has no policies", deployment)
		}
		return nil, fmt.Errorf("deployment %s has no policy %q (it has: %s)", deployment, policy, strings.Join(all, ", "))
	}
	sort.Strings(names)
	return names, nil
}

// Paused counts the policies paused at now.
func (r *Runner) Paused(now float64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rp := range r.policies {
		if rp.state.Paused.Active(now) {
			n++
		}
	}
	return n
}

// Missing counts the policies whose data is missing.
func (r *Runner) Missing() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rp := range r.policies {
		if rp.instance.missingSince != 0 {
			n++
		}
	}
	return n
}

// RemoveDeployment stops evaluating a deployment's policies. Their stored
// state stays (a deployment deployed again under the same id keeps its
// cooldowns).
func (r *Runner) RemoveDeployment(deployment string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(deployment)
	r.Pipeline.Remove(deployment)
}

func (r *Runner) removeLocked(deployment string) {
	for k := range r.policies {
		if strings.HasPrefix(k, deployment+"\x00") {
			delete(r.policies, k)
		}
	}
	delete(r.Pipeline.instances, deployment)
	delete(r.Pipeline.shared, deployment)
	r.Pipeline.gen++ // the series' readers are found again
}

// Err returns the first error the runner met (a failing state store).
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// ConditionStatus is a condition's value now and its cooldown.
type ConditionStatus struct {
	Name string `json:"name"`
	// Known is false when a window it reads has no data.
	Known  bool               `json:"known"`
	Holds  bool               `json:"holds"`
	Values map[string]float64 `json:"values,omitempty"`
	// CooldownUntil is the event time (Unix seconds) the cooldown ends; 0: none.
	CooldownUntil float64 `json:"cooldown_until,omitempty"`
	// CooldownLeft is the seconds of cooldown left at the status's time.
	CooldownLeft float64 `json:"cooldown_left,omitempty"`
	Workflow     string  `json:"workflow,omitempty"`
}

// PolicyStatus is what `orch policies list|show` shows of a policy.
type PolicyStatus struct {
	Deployment string            `json:"deployment"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Targets    []string          `json:"targets,omitempty"`
	Time       float64           `json:"time"`
	Conditions []ConditionStatus `json:"conditions"`
	Error      string            `json:"error,omitempty"`
	// LastDecision is the last time a condition held (fired or held back):
	// the newest of Decisions.
	LastDecision *Decision `json:"last_decision,omitempty"`
	// Triggers are the recent triggers, oldest first (kept across restarts).
	Triggers []Trigger `json:"triggers,omitempty"`
	// Paused is set while the policy is paused by hand.
	Paused *Pause `json:"paused,omitempty"`
	// MissingSince is when its data went missing (event time); 0: it is
	// there. GraceUntil is when the start-up grace ends (or ended).
	MissingSince float64                `json:"missing_since,omitempty"`
	OnMissing    blueprints.MissingData `json:"on_missing_data,omitempty"`
	GraceUntil   float64                `json:"grace_until,omitempty"`
	// History is the window values of recent evaluations (one point a
	// second), and Parameters the policy's numeric properties (its
	// thresholds), for plots.
	History    []Point            `json:"history,omitempty"`
	Parameters map[string]float64 `json:"parameters,omitempty"`
	// Decisions are the recent decisions, oldest first: each time a
	// condition held, whether it fired or what held it back.
	Decisions []Decision `json:"decisions,omitempty"`
	DryRun    bool       `json:"dry_run,omitempty"`
}

// Status evaluates the policies of a deployment ("" for all) at now (Unix
// seconds) and returns their state, sorted by deployment and name. It
// decides nothing.
func (r *Runner) Status(deployment string, now float64) []PolicyStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []PolicyStatus
	for _, rp := range r.policies {
		if deployment != "" && rp.deployment != deployment {
			continue
		}
		ps := PolicyStatus{Deployment: rp.deployment, Name: rp.plan.Name, Type: rp.plan.Type.Name,
			Targets: rp.plan.Targets, Time: now, DryRun: r.DryRun}
		ps.Decisions = rp.decisionsCopy()
		if len(ps.Decisions) > 0 {
			d := ps.Decisions[len(ps.Decisions)-1]
			ps.LastDecision = &d
		}
		ps.Triggers = append(ps.Triggers, rp.state.Triggers...)
		if rp.state.Paused.Active(now) {
			p := *rp.state.Paused
			ps.Paused = &p
		}
		ps.MissingSince, ps.OnMissing, ps.GraceUntil = rp.instance.missingSince, rp.instance.OnMissing, rp.instance.graceUntil
		ps.History = rp.instance.History()
		ps.Parameters = numericProperties(rp.plan.Properties)
		workflow := map[string]string{}
		for _, t := range rp.plan.Triggers {
			workflow[t.Condition] = t.Workflow
		}
		results, err := peek(rp.instance.Eval, r.Pipeline.Windows, now)
		if err != nil {
			ps.Error = err.Error()
		}
		for _, res := range results {
			cs := ConditionStatus{Name: res.Condition, Known: res.Known, Holds: res.Known && res.Holds, Values: ValuesMap(res.Values), Workflow: workflow[res.Condition]}
			if until := rp.instance.until(res.Condition); until > 0 {
				cs.CooldownUntil = until
				if until > now {
					cs.CooldownLeft = until - now
				}
			}
			ps.Conditions = append(ps.Conditions, cs)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Deployment != out[j].Deployment {
			return out[i].Deployment < out[j].Deployment
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// numericProperties returns the number properties of a policy.
func numericProperties(v cty.Value) map[string]float64 {
	v, _ = v.UnmarkDeep()
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() {
		return nil
	}
	out := map[string]float64{}
	for name := range v.Type().AttributeTypes() {
		a := v.GetAttr(name)
		if a.Type() == cty.Number && a.IsKnown() && !a.IsNull() {
			out[name], _ = a.AsBigFloat().Float64()
		}
	}
	return out
}

// firing is a fired decision with a trigger, prepared under the lock and
// acted on without it: its policy state to store (the cooldown set) and its
// workflow's parameters, evaluated with the triggering event.
type firing struct {
	rp      *runPolicy
	d       Decision
	trigger Trigger
	state   policyState
	params  map[string]cty.Value
}

// settle records the decisions that need no I/O (held back, or fired with
// no trigger) and returns the firings to act on. Called with mu held.
func (r *Runner) settle(ds []Decision) []firing {
	var out []firing
	for _, d := range ds {
		rp := r.policies[d.Deployment+"\x00"+d.Policy]
		if rp == nil {
			continue
		}
		trig := rp.trigger(d.Condition)
		if trig != nil {
			d.Workflow = trig.Workflow
		}
		if !d.Fired || trig == nil {
			r.record(rp, d)
			continue
		}
		// Acted on after mu is released: its values are its own.
		d.Values = d.Values.Clone()
		if rp.state.Until == nil {
			rp.state.Until = map[string]float64{}
		}
		rp.state.Until[d.Condition] = rp.instance.until(d.Condition)
		f := firing{rp: rp, d: d, state: rp.state.clone(),
			trigger: Trigger{Time: d.Time, Condition: d.Condition, Workflow: trig.Workflow, DryRun: r.DryRun}}
		var err error
		if f.params, err = triggerParams(trig, d.event, d.Values, declaredValues(rp.plan.Type, d.Condition)); err != nil {
			f.trigger.Error = err.Error()
		}
		out = append(out, f)
	}
	return out
}

// trigger returns the policy's trigger of a condition, or nil.
func (rp *runPolicy) trigger(condition string) *blueprints.Trigger {
	for _, t := range rp.plan.Triggers {
		if t.Condition == condition {
			return t
		}
	}
	return nil
}

// clone is a copy to store without the lock. The trigger history is
// shared: it is only ever appended to and trimmed from the front, never
// changed in place, so the copy's part of it stays as it was.
func (st policyState) clone() policyState {
	st.Until = maps.Clone(st.Until)
	return st
}

// fire acts on the firings with ctx: each stores its cooldown before its
// workflow is queued (after a crash in between, the trigger is lost rather
// than fired twice), then is recorded with what it queued. A state write
// that fails is that firing's error: its decision says so (outcome error),
// it is logged, and nothing is queued for it; the metric itself was
// applied, once, and is not to be delivered again (its sample would be
// counted twice), so fire returns nil.
func (r *Runner) fire(ctx context.Context, firings []firing) error {
	if len(firings) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, FireTimeout)
	defer cancel()
	for _, f := range firings {
		dep, pol := f.d.Deployment, f.d.Policy
		if r.fireStoring(ctx, f) {
			continue
		}
		if err := r.State.PutPolicyState(ctx, stateKey(dep, pol), &f.state); err != nil {
			err = fmt.Errorf("store policy state of %s/%s: %w", dep, pol, err)
			f.d.Error = err.Error() + "; nothing queued"
			r.log().Error("a firing's cooldown could not be stored; its workflow is not queued", "deployment", dep, "policy", pol, "condition", f.d.Condition, "err", err)
			r.finish(ctx, f, nil, err)
			continue
		}
		if w, ok := r.Queue.(Waiter); ok && !r.DryRun {
			// A run of the workflow already waits to start: it will act on
			// the state as it is then, so a second would only repeat it. The
			// cooldown stands, as if this one had been queued.
			if id, err := w.Waiting(ctx, dep, f.trigger.Workflow); err == nil && id != "" {
				f.d.Fired, f.d.Reason, f.d.Execution = false, ReasonExecutionQueued, id
				r.finish(ctx, f, nil, nil)
				continue
			}
		}
		if f.trigger.Error == "" && !r.DryRun {
			id, err := r.Queue.Queue(ctx, dep, f.trigger.Workflow, f.params)
			f.trigger.Execution = id
			if err != nil {
				f.trigger.Error = err.Error()
			}
		}
		f.d.Execution, f.d.Error = f.trigger.Execution, f.trigger.Error
		if err := r.finish(ctx, f, &f.trigger, nil); err != nil {
			r.log().Error("a trigger's history could not be stored", "deployment", dep, "policy", pol, "err", err)
		}
		if r.OnTrigger != nil {
			r.OnTrigger(dep, pol, f.trigger)
		}
	}
	return nil
}

// fireStoring fires f in one write when the queue can store its state
// with the execution, and reports whether it did. It does not when the
// queue cannot, for a dry run, a trigger already in error, or a run of
// the workflow already waiting; and when the write fails, it leaves f to
// the path of two writes, which records why.
func (r *Runner) fireStoring(ctx context.Context, f firing) bool {
	q, ok := r.Queue.(StoringQueuer)
	if !ok || r.DryRun || f.trigger.Error != "" {
		return false
	}
	dep, pol := f.d.Deployment, f.d.Policy
	if w, ok := r.Queue.(Waiter); ok {
		if id, err := w.Waiting(ctx, dep, f.trigger.Workflow); err != nil || id != "" {
			return false
		}
	}
	id := q.NewExecutionID()
	t := f.trigger
	t.Execution = id
	r.mu.Lock()
	st := f.rp.state.clone() // the cooldown set when it settled, with the trigger
	st.Triggers = appendTrigger(st.Triggers, t)
	r.mu.Unlock()
	if err := q.QueueStoring(ctx, dep, t.Workflow, f.params, id, stateKey(dep, pol), &st); err != nil {
		r.log().Debug("a firing could not be stored with its execution; storing them apart", "deployment", dep, "policy", pol, "err", err)
		return false
	}
	f.d.Execution = id
	r.mu.Lock()
	f.rp.state.Triggers = st.Triggers
	r.record(f.rp, f.d)
	r.counts.Triggers.Add(1)
	r.mu.Unlock()
	if r.OnTrigger != nil {
		r.OnTrigger(dep, pol, t)
	}
	return true
}

// appendTrigger adds a trigger to a history, keeping the last
// maxTriggerHistory; the history given is not changed.
func appendTrigger(history []Trigger, t Trigger) []Trigger {
	out := append(slices.Clip(history), t)
	if n := len(out); n > maxTriggerHistory {
		out = out[n-maxTriggerHistory:]
	}
	return out
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// finish records a firing's decision and, when it queued (or tried to
// queue) a workflow, its trigger in the policy's stored history.
func (r *Runner) finish(ctx context.Context, f firing, t *Trigger, storeErr error) error {
	r.mu.Lock()
	r.keepErr(storeErr)
	r.record(f.rp, f.d)
	if t == nil {
		r.mu.Unlock()
		return nil
	}
	if t.Error != "" {
		r.counts.Errors.Add(1)
	} else {
		r.counts.Triggers.Add(1)
	}
	st := &f.rp.state
	st.Triggers = appendTrigger(st.Triggers, *t)
	snapshot := st.clone()
	r.mu.Unlock()
	if err := r.State.PutPolicyState(ctx, stateKey(f.d.Deployment, f.d.Policy), &snapshot); err != nil {
		err = fmt.Errorf("store policy state of %s/%s: %w", f.d.Deployment, f.d.Policy, err)
		r.mu.Lock()
		r.keepErr(err)
		r.mu.Unlock()
		return err
	}
	return nil
}

// keepErr keeps the first state-store error for Err. Called with mu held.
func (r *Runner) keepErr(err error) {
	if r.err == nil {
		r.err = err
	}
}

// eventValue is the triggering metric as the `event` variable of trigger
// parameters.
func eventValue(m *Metric) cty.Value {
	if m == nil {
		m = &Metric{} // a decision on missing data: no event
	}
	return cty.ObjectVal(map[string]cty.Value{
		"node_id": cty.StringVal(m.NodeID), "node_name": cty.StringVal(m.NodeName),
		"deployment_id": cty.StringVal(m.DeploymentID), "name": cty.StringVal(m.Name),
		"path": cty.StringVal(m.Path), "metric": cty.NumberFloatVal(m.Value), "unit": cty.StringVal(m.Unit),
		"type": cty.StringVal(m.Type), "host": cty.StringVal(m.Host), "service": cty.StringVal(m.Service),
		"time": cty.NumberFloatVal(m.Time),
	})
}

// valuesValue is the firing condition's values as the `values` variable of
// trigger parameters: each by its label, and each value the condition
// declares but did not report (a firing on missing data) null.
func valuesValue(vs Values, declared []string) cty.Value {
	m := map[string]cty.Value{}
	for _, name := range declared {
		m[name] = cty.NullVal(cty.Number)
	}
	for _, r := range vs {
		m[r.Label] = cty.NumberFloatVal(r.Value)
	}
	return cty.ObjectVal(m)
}

// declaredValues are the values a policy type's condition declares.
func declaredValues(pt *blueprints.PolicyType, condition string) []string {
	if pt == nil {
		return nil
	}
	for _, c := range pt.Conditions {
		if c.Name == condition {
			return c.Values
		}
	}
	return nil
}

// triggerParams evaluates a trigger's parameters with the triggering
// event and the condition's values: typed values, as the expression gives
// them, for the workflow to convert to its parameters' types.
func triggerParams(t *blueprints.Trigger, event *Metric, vs Values, declared []string) (map[string]cty.Value, error) {
	out := map[string]cty.Value{}
	if t.Parameters == nil {
		return out, nil
	}
	v, diags := t.Parameters.Value(&hcl.EvalContext{
		Variables: map[string]cty.Value{"event": eventValue(event), "values": valuesValue(vs, declared)},
		Functions: blueprints.Functions(),
	})
	if diags.HasErrors() {
		return nil, fmt.Errorf("trigger %s parameters: %s", t.Condition, diags.Error())
	}
	if v.IsNull() || !v.IsKnown() {
		return out, nil
	}
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() {
			continue
		}
		out[k.AsString()] = e
	}
	return out, nil
}
