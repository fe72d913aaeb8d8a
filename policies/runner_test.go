package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// memState is a StateStore in memory.
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

// PolicyState reads a stored value into v.
func (s *memState) PolicyState(_ context.Context, key string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	if !ok {
		return fmt.Errorf("%s: %w", key, errNoState)
	}
	return json.Unmarshal(b, v)
}

// PutPolicyState stores v.
func (s *memState) PutPolicyState(_ context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = b
	return nil
}

type queued struct {
	deployment, workflow string
	params               map[string]string
}

type recordingQueue struct{ runs []queued }

func (q *recordingQueue) Queue(_ context.Context, dep, wf string, params map[string]cty.Value) (string, error) {
	q.runs = append(q.runs, queued{dep, wf, render(params)})
	return fmt.Sprintf("exec-%d", len(q.runs)), nil
}

// render writes typed parameters as they would be typed on a command line.
func render(params map[string]cty.Value) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		switch {
		case v.Type() == cty.String:
			out[k] = v.AsString()
		case v.Type() == cty.Number:
			out[k] = v.AsBigFloat().Text('f', -1)
		default:
			out[k] = v.GoString()
		}
	}
	return out
}

const runnerBlueprint = `
node "web" {}
workflow "kube_scale" {
  uses = "test.scale"
  parameter "name" {}
  parameter "amount" { default = "+0" }
}
policy "web_cpu" {
  initial_delay = "0s"
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 70, cooldown_time = "30s" }
  trigger "scale" {
    workflow   = workflow.kube_scale
    parameters = { name = event.node_name, amount = "+1" }
  }
}
`

func newRunner(t *testing.T, plan *blueprints.Plan, q Queuer, s StateStore) *Runner {
	t.Helper()
	r := NewRunner(NewPipeline(600), q, s)
	if err := r.AddDeployment(context.Background(), "shop", plan); err != nil {
		t.Fatal(err)
	}
	return r
}

func resolvePlan(t *testing.T, src string) *blueprints.Plan {
	t.Helper()
	plan, diags := resolveSource(src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return plan
}

func resolveSource(src string) (*blueprints.Plan, hcl.Diagnostics) {
	bp, diags := blueprints.Parse(map[string][]byte{"p.hcl": []byte(src)},
		map[string][]byte{"<builtin>/core.hcl": blueprints.CoreTypes["<builtin>/core.hcl"], "<builtin>/policies.hcl": []byte(BuiltinTypes)}, "p.hcl")
	if diags.HasErrors() {
		return nil, diags
	}
	return blueprints.Resolve(bp, &blueprints.Catalog{Workflows: []string{"test.scale"}, PolicyTypes: BuiltinImplementations()}, nil)
}

// resolveDiags are the diagnostics of resolving a blueprint.
func resolveDiags(src string) hcl.Diagnostics {
	_, diags := resolveSource(src)
	return diags
}

func breach(t *testing.T, r *Runner, from, to int) {
	t.Helper()
	for s := from; s < to; s++ {
		m := &Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: "h1", Name: "cpu", Value: 95,
			Time: 1000 + float64(s), Service: "shop.web.web_1.cpu."}
		if err := r.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRunnerQueuesTriggersAndKeepsCooldownsAcrossRestarts(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &memState{m: map[string][]byte{}}
	q := &recordingQueue{}
	r := newRunner(t, plan, q, state)
	breach(t, r, 0, 40) // fires at 0 and at 30
	want := []queued{
		{"shop", "kube_scale", map[string]string{"name": "web", "amount": "+1"}},
		{"shop", "kube_scale", map[string]string{"name": "web", "amount": "+1"}},
	}
	if !reflect.DeepEqual(q.runs, want) {
		t.Fatalf("queued %+v, want %+v", q.runs, want)
	}
	// Restart: a new runner over the same state. The cooldown of the fire
	// at 30 lasts until 60: nothing at 45, a fire at 60.
	q2 := &recordingQueue{}
	r2 := newRunner(t, plan, q2, state)
	breach(t, r2, 45, 50)
	if len(q2.runs) != 0 {
		t.Fatalf("fired again inside the cooldown after a restart: %+v", q2.runs)
	}
	breach(t, r2, 60, 61)
	if len(q2.runs) != 1 {
		t.Fatalf("after the cooldown: %d runs, want 1", len(q2.runs))
	}
	var ps policyState
	if err := state.PolicyState(context.Background(), stateKey("shop", "web_cpu"), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps.Triggers) != 3 || ps.Triggers[2].Execution != "exec-1" || ps.Triggers[2].Time != 1060 {
		t.Errorf("trigger history %+v", ps.Triggers)
	}
}

func TestRunnerDryRunQueuesNothing(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	r.DryRun = true
	var seen []Trigger
	r.OnTrigger = func(_, _ string, tr Trigger) { seen = append(seen, tr) }
	breach(t, r, 0, 5)
	if len(q.runs) != 0 || len(seen) != 1 || !seen[0].DryRun || seen[0].Workflow != "kube_scale" {
		t.Errorf("dry run: queued %+v, triggers %+v", q.runs, seen)
	}
}

// Missing data never triggers: with the source silent, nothing fires, even
// for a scale-down policy whose condition a zero would satisfy.
func TestRunnerNeverScalesDownOnMissingData(t *testing.T) {
	plan := resolvePlan(t, `
node "web" {}
workflow "kube_scale" { uses = "test.scale" }
policy "down" {
  initial_delay = "0s"
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 30, scale_limit = 0, scale_direction = ">" }
  trigger "scale" { workflow = workflow.kube_scale }
}`)
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	// Only another metric arrives; cpu is missing entirely.
	for s := 0; s < 100; s++ {
		if err := r.Apply(context.Background(), &Metric{DeploymentID: "shop", NodeName: "web", Host: "h1", Name: "memory", Value: 0, Time: float64(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(q.runs) != 0 {
		t.Errorf("a scale-down ran without cpu data: %+v", q.runs)
	}
}

// cooldown_scope = "deployment" is scale.clj's original flag: a scale-up
// silences the scale-down of the same deployment, and a restart forgets it.
// The default keeps them apart.
func TestSharedCooldownIsScaleCLJsFlag(t *testing.T) {
	blueprint := func(scope string) string {
		return fmt.Sprintf(`
node "web" {}
workflow "kube_scale" { uses = "test.scale" }
policy "up" {
  initial_delay = "0s"
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 70, moving_window_size = "1s", cooldown_time = "30s", cooldown_scope = %q }
  trigger "scale" { workflow = workflow.kube_scale }
}
policy "down" {
  initial_delay = "0s"
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 30, scale_limit = 0, scale_direction = ">", moving_window_size = "1s", cooldown_time = "30s", cooldown_scope = %q }
  trigger "scale" { workflow = workflow.kube_scale }
}`, scope, scope)
	}
	at := func(t *testing.T, r *Runner, tm, v float64) {
		t.Helper()
		if err := r.Apply(context.Background(), &Metric{DeploymentID: "shop", NodeName: "web", Host: "h1", Name: "cpu", Value: v, Time: tm, Service: "shop.web.web_1.cpu."}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		scope                 string
		runsBeforeRestart     int
		runsAfterRestartAt10s int
	}{
		{"deployment", 1, 1}, // the scale-down is silenced; the flag is lost at restart
		{"policy", 2, 0},     // the scale-down fires at once; its cooldown survives
	} {
		t.Run(tc.scope, func(t *testing.T) {
			plan := resolvePlan(t, blueprint(tc.scope))
			state := &memState{m: map[string][]byte{}}
			q := &recordingQueue{}
			r := newRunner(t, plan, q, state)
			at(t, r, 1000, 95) // up fires
			at(t, r, 1005, 5)  // down holds
			if len(q.runs) != tc.runsBeforeRestart {
				t.Errorf("before restart: %d runs, want %d", len(q.runs), tc.runsBeforeRestart)
			}
			q2 := &recordingQueue{}
			r2 := newRunner(t, plan, q2, state)
			at(t, r2, 1010, 5) // down holds again
			if len(q2.runs) != tc.runsAfterRestartAt10s {
				t.Errorf("after restart: %d runs, want %d", len(q2.runs), tc.runsAfterRestartAt10s)
			}
		})
	}
	// A bad scope is refused where it is written, before anything runs.
	if diags := resolveDiags(blueprint("cluster")); !diags.HasErrors() || !strings.Contains(diags.Error(), `"cluster" is not one of "policy", "deployment"`) {
		t.Errorf("bad scope: %v", diags)
	}
}

// A paused policy still evaluates and says it was held back by the pause,
// starts no cooldown, stays paused across a restart, and fires again once
// resumed or once the pause has expired.
func TestPausedPoliciesHoldBackAndSurviveRestarts(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &memState{m: map[string][]byte{}}
	q := &recordingQueue{}
	r := newRunner(t, plan, q, state)
	ctx := context.Background()
	if _, err := r.SetPause(ctx, "shop", "nope", &Pause{Since: 1000}); err == nil || !strings.Contains(err.Error(), "web_cpu") {
		t.Errorf("pausing an unknown policy: %v", err)
	}
	names, err := r.SetPause(ctx, "shop", "", &Pause{By: "ops", Reason: "maintenance", Since: 1000})
	if err != nil || len(names) != 1 {
		t.Fatal(names, err)
	}
	breach(t, r, 0, 5)
	if len(q.runs) != 0 {
		t.Fatalf("a paused policy queued %v", q.runs)
	}
	st := r.Status("shop", 1004)
	if st[0].Paused == nil || st[0].LastDecision == nil || st[0].LastDecision.Reason != "paused" || st[0].Conditions[0].CooldownLeft != 0 {
		t.Errorf("status while paused: %+v", st[0])
	}
	if r.Paused(1004) != 1 {
		t.Errorf("paused count %d", r.Paused(1004))
	}

	// Restart: still paused. Then a pause that ends at 1020.
	r2 := newRunner(t, plan, q, state)
	breach(t, r2, 5, 10)
	if len(q.runs) != 0 {
		t.Fatalf("the pause was forgotten across a restart: %v", q.runs)
	}
	if _, err := r2.SetPause(ctx, "shop", "web_cpu", &Pause{Since: 1010, Until: 1020}); err != nil {
		t.Fatal(err)
	}
	breach(t, r2, 10, 20)
	if len(q.runs) != 0 {
		t.Fatalf("fired before the pause expired: %v", q.runs)
	}
	breach(t, r2, 20, 21)
	if len(q.runs) != 1 {
		t.Fatalf("after the pause expired: %d runs, want 1", len(q.runs))
	}
	// Paused again, then resumed: fires at once after the cooldown.
	if _, err := r2.SetPause(ctx, "shop", "", &Pause{Since: 1021}); err != nil {
		t.Fatal(err)
	}
	breach(t, r2, 51, 52)
	if _, err := r2.SetPause(ctx, "shop", "", nil); err != nil {
		t.Fatal(err)
	}
	breach(t, r2, 52, 53)
	if len(q.runs) != 2 {
		t.Errorf("after resume: %d runs, want 2", len(q.runs))
	}
}

// Every decision is logged, fired or held back with its reason and the
// cooldown left; the log keeps its bounds and survives a restart once
// flushed.
func TestDecisionLogIsBoundedAndKept(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &memState{m: map[string][]byte{}}
	q := &recordingQueue{}
	r := newRunner(t, plan, q, state)
	r.LogSize = 10
	breach(t, r, 0, 3) // fires at 0, held back at 1 and 2
	log := r.Status("shop", 1003)[0].Decisions
	if len(log) != 3 || !log[0].Fired || log[0].Execution != "exec-1" || log[0].Workflow != "kube_scale" {
		t.Fatalf("log %+v", log)
	}
	if log[1].Fired || log[1].Reason != "cooldown" || log[1].CooldownLeft != 29 || log[2].CooldownLeft != 28 {
		t.Errorf("held back: %+v %+v", log[1], log[2])
	}
	breach(t, r, 3, 500) // a long breaching stream
	log = r.Status("shop", 1500)[0].Decisions
	if len(log) != 10 || log[9].Time != 1499 {
		t.Fatalf("log of %d, last at %g: want the newest 10", len(log), log[len(log)-1].Time)
	}
	r.LogAge = 5
	breach(t, r, 500, 501)
	if log = r.Status("shop", 1501)[0].Decisions; len(log) != 6 || log[0].Time != 1495 {
		t.Errorf("age bound: %d decisions from %g", len(log), log[0].Time)
	}
	if err := r.FlushDecisions(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := newRunner(t, plan, q, state)
	if got := r2.Status("shop", 1501)[0].Decisions; len(got) != 6 || got[5].Time != 1500 {
		t.Errorf("after a restart: %d decisions", len(got))
	}
}

// Reading a policy's status decides nothing: a status read while rps has
// been high for the whole delay must not use up the burst that the next
// metric fires.
func TestStatusDoesNotChangeWhatFires(t *testing.T) {
	plan := resolvePlan(t, `
node "web" {}
workflow "burst" { uses = "test.scale" }
policy "rps" {
  initial_delay = "0s"
  type       = "orch.rps_burst"
  targets    = [node.web]
  properties = { burst_value = 40, reconcile_value = 20, throttle_delay = "3s" }
  trigger "burst" { workflow = workflow.burst }
}`)
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	rps := func(tm float64) {
		t.Helper()
		if err := r.Apply(context.Background(), &Metric{DeploymentID: "shop", NodeName: "web", Host: "h1", Name: "rps", Value: 100, Time: tm}); err != nil {
			t.Fatal(err)
		}
	}
	for tm := 1000.0; tm <= 1002; tm++ {
		rps(tm) // above for 2s: not yet
	}
	if st := r.Status("shop", 1003.5); len(st) != 1 || !st[0].Conditions[0].Holds {
		t.Fatalf("status at 1003.5 = %+v, want burst holding", st)
	}
	rps(1004)
	if len(q.runs) != 1 {
		t.Fatalf("after a status read, the burst fired %d times, want 1", len(q.runs))
	}
}

// Every decision of a policy has the next sequence number, kept across a
// restart (explain --follow reads from the last one it saw); the decisions
// carry their deployment.
func TestDecisionsAreNumberedAcrossRestarts(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &memState{m: map[string][]byte{}}
	r := newRunner(t, plan, &recordingQueue{}, state)
	breach(t, r, 0, 3) // fires, then twice held back by the cooldown
	if err := r.FlushDecisions(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := r.Status("shop", 1003)[0].Decisions
	for i, d := range log {
		if d.Seq != uint64(i+1) || d.Deployment != "shop" {
			t.Errorf("decision %d: seq %d, deployment %q", i, d.Seq, d.Deployment)
		}
	}
	r2 := newRunner(t, plan, &recordingQueue{}, state)
	breach(t, r2, 3, 4)
	log = r2.Status("shop", 1004)[0].Decisions
	if n := len(log); n != 4 || log[n-1].Seq != 4 {
		t.Errorf("after a restart: %d decisions, the last numbered %d; want 4 and 4", n, log[len(log)-1].Seq)
	}
}

// A state write that fails is the error of the firing that made it (its
// decision says so, nothing is queued for it), not of its message (applied
// once, not delivered again) nor of any later one: the next firing after
// the store recovers is queued.
func TestAFailedStateWriteFailsOnlyItsFiring(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &flakyState{memState: memState{m: map[string][]byte{}}, fail: true}
	q := &recordingQueue{}
	r := newRunner(t, plan, q, state)
	ctx := context.Background()
	m := func(at float64) *Metric {
		return &Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: "h1", Name: "cpu", Value: 95, Time: at, Service: "shop.web.web_1.cpu."}
	}
	if err := r.Apply(ctx, m(1000)); err != nil {
		t.Fatalf("the message of a firing whose state could not be stored: %v (it was applied; a redelivery would count it twice)", err)
	}
	if len(q.runs) != 0 {
		t.Errorf("queued %d runs although the cooldown was not stored", len(q.runs))
	}
	d := r.Status("shop", 1000)[0].LastDecision
	if d == nil || d.Outcome() != OutcomeError || !strings.Contains(d.Error, "store policy state of shop/web_cpu: disk full; nothing queued") {
		t.Errorf("the decision: %+v", d)
	}
	if r.Err() == nil || r.Counts().Outcome(OutcomeError).Load() != 1 {
		t.Errorf("the failure is not counted: %v, %d", r.Err(), r.Counts().Outcome(OutcomeError).Load())
	}
	state.fail = false
	if err := r.Apply(ctx, m(1001)); err != nil {
		t.Fatalf("a message held back by the cooldown after the store recovered: %v", err)
	}
	if err := r.Apply(ctx, m(1040)); err != nil || len(q.runs) != 1 {
		t.Fatalf("after the cooldown: %v, %d runs", err, len(q.runs))
	}
}

type flakyState struct {
	memState
	fail bool
}

func (s *flakyState) PutPolicyState(ctx context.Context, key string, v any) error {
	if s.fail {
		return fmt.Errorf("disk full")
	}
	return s.memState.PutPolicyState(ctx, key, v)
}

func TestDecisionsAfterFollowsTheLog(t *testing.T) {
	d := func(at float64, reason Reason) Decision {
		return Decision{Time: at, Condition: "scale", Reason: reason}
	}
	log := []Decision{d(1, "cooldown"), d(2, "cooldown"), d(2, "paused"), d(3, "")}
	cases := []struct {
		name string
		last *Decision
		want int // decisions printed
	}{
		{"nothing seen", nil, 4},
		{"seen up to the second", &log[1], 2},
		{"seen all", &log[3], 0},
		{"rotated out of the log", &Decision{Time: 1.5, Condition: "gone"}, 3},
	}
	for _, c := range cases {
		if got := DecisionsAfter(log, c.last); len(got) != c.want {
			t.Errorf("%s: %d new decisions, want %d", c.name, len(got), c.want)
		}
	}
	// Numbered decisions are followed by their sequence: two decisions
	// alike in every field are still told apart.
	numbered := []Decision{{Seq: 7, Time: 2, Condition: "scale", Reason: "cooldown"}, {Seq: 8, Time: 2, Condition: "scale", Reason: "cooldown"}, {Seq: 9, Time: 3}}
	for _, c := range []struct {
		last uint64
		want int
	}{{7, 2}, {8, 1}, {9, 0}, {3, 3}} {
		if got := DecisionsAfter(numbered, &Decision{Seq: c.last, Time: 2, Condition: "scale", Reason: "cooldown"}); len(got) != c.want {
			t.Errorf("after seq %d: %d new decisions, want %d", c.last, len(got), c.want)
		}
	}
}

// storingQueue stores the state it is given with each run, in "one write"
// it counts; fail makes the write fail.
type storingQueue struct {
	recordingQueue
	state  *memState
	writes int
	fail   bool
}

func (q *storingQueue) NewExecutionID() string { return fmt.Sprintf("x%d", len(q.runs)+1) }

func (q *storingQueue) QueueStoring(ctx context.Context, dep, wf string, params map[string]cty.Value, id, key string, state any) error {
	if q.fail {
		return errors.New("disk full")
	}
	q.writes++
	q.runs = append(q.runs, queued{dep, wf, render(params)})
	return q.state.PutPolicyState(ctx, key, state)
}

// countingState counts the policy-state writes made apart from a queue.
type countingState struct {
	*memState
	puts int
}

func (s *countingState) PutPolicyState(ctx context.Context, key string, v any) error {
	s.puts++
	return s.memState.PutPolicyState(ctx, key, v)
}

// A firing through a queue that stores the policy's state with the
// execution is one write: the cooldown and the trigger record naming the
// execution go with it, and a restart keeps the cooldown. When that write
// fails, the firing takes the path of two writes, which records why.
func TestAFiringIsOneWrite(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	mem := &memState{m: map[string][]byte{}}
	state := &countingState{memState: mem}
	q := &storingQueue{state: mem}
	r := newRunner(t, plan, q, state)
	breach(t, r, 0, 1)
	if q.writes != 1 || state.puts != 0 {
		t.Fatalf("a firing made %d queue writes and %d state writes, want 1 and 0", q.writes, state.puts)
	}
	var ps policyState
	if err := mem.PolicyState(context.Background(), stateKey("shop", "web_cpu"), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps.Triggers) != 1 || ps.Triggers[0].Execution != "x1" || ps.Until["scale"] != 1030 {
		t.Fatalf("stored with the execution: %+v", ps)
	}
	r2 := newRunner(t, plan, &storingQueue{state: mem}, state)
	breach(t, r2, 10, 20)
	if got := r2.Queue.(*storingQueue).writes; got != 0 {
		t.Errorf("fired inside the stored cooldown after a restart (%d)", got)
	}

	failing := &storingQueue{state: mem, fail: true}
	r3 := newRunner(t, plan, failing, state)
	breach(t, r3, 100, 101)
	if len(failing.runs) != 1 || state.puts == 0 {
		t.Errorf("a failed one-write firing: %d runs through the plain queue, %d state writes", len(failing.runs), state.puts)
	}
}

// The log reuses the values of the decisions that left it, and the
// pipeline its buffer of values at each call: every decision kept must
// still carry the values it was made with, and a status or a flush read
// earlier must not change under later metrics.
func TestKeptDecisionsKeepTheirValues(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &memState{m: map[string][]byte{}}
	r := newRunner(t, plan, &recordingQueue{}, state)
	r.LogSize = 7
	// One host, one sample in each 10s window's reach that differs from
	// the others: the mean at second s is known from s alone.
	apply := func(from, to int) {
		for s := from; s < to; s++ {
			m := &Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: "h1", Name: "cpu", Value: 100 + float64(s),
				Time: 1000 + float64(s)*20, Service: "shop.web.web_1.cpu."}
			if err := r.Apply(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string, log []Decision, from int) {
		t.Helper()
		for i, d := range log {
			s := from + i
			if d.Time != 1000+float64(s)*20 || d.Values.Map()["value"] != 100+float64(s) || d.Values.Map()["hosts"] != 1 {
				t.Fatalf("%s: decision %d at %g has values %v, want value %d", when, i, d.Time, d.Values, 100+s)
			}
		}
	}
	apply(0, 40) // fires at 0, then at every cooldown end, held back between
	before := r.Status("shop", 2000)[0].Decisions
	check("status", before, 33)
	if err := r.FlushDecisions(context.Background()); err != nil {
		t.Fatal(err)
	}
	var flushed []Decision
	if err := state.PolicyState(context.Background(), logKey("shop", "web_cpu"), &flushed); err != nil {
		t.Fatal(err)
	}
	check("flushed", flushed, 33)
	apply(40, 100)
	check("status read before more metrics", before, 33)
	check("status", r.Status("shop", 4000)[0].Decisions, 93)
}
