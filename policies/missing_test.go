package policies

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/blueprints"
)

// missingBlueprint has a scale-up and a scale-down policy on cpu; %s is
// the scale-up policy's extra attributes.
const missingBlueprint = `
node "web" {}
workflow "kube_scale" {
  uses = "test.scale"
  parameter "amount" { default = "+0" }
}
workflow "page" {
  uses = "test.scale"
  parameter "amount" { default = "+0" }
}
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 70, moving_window_size = "10s", cooldown_time = "30s" }
  %s
  trigger "scale" {
    workflow   = workflow.kube_scale
    parameters = { amount = "+1" }
  }
}
policy "down" {
  type          = "orch.scale_threshold"
  targets       = [node.web]
  initial_delay = "0s"
  properties    = { service_selector = "cpu", scale_threshold = 20, scale_limit = 0, scale_direction = ">", moving_window_size = "10s", cooldown_time = "30s" }
  trigger "scale" {
    workflow   = workflow.kube_scale
    parameters = { amount = "-1" }
  }
}
`

func cpu(t *testing.T, r *Runner, host string, at, value float64) {
	t.Helper()
	m := &Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: host, Name: "cpu", Value: value,
		Time: at, Service: "shop.web.web_1.cpu."}
	if err := r.Apply(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// tick runs the runner's missing-data check at event time at.
func tick(t *testing.T, r *Runner, at float64) {
	t.Helper()
	if err := r.TickAt(context.Background(), at); err != nil {
		t.Fatal(err)
	}
}

func decisions(r *Runner, policy string) []Decision {
	for _, ps := range r.Status("shop", 0) {
		if ps.Name == policy {
			return ps.Decisions
		}
	}
	return nil
}

func TestStartupGraceHoldsBackAHalfFilledWindow(t *testing.T) {
	cases := []struct {
		name  string
		attrs string
		fires float64 // the first breach second that fires
	}{
		{"default: one window length", ``, 1010},
		{"explicit", `initial_delay = "4s"`, 1004},
		{"none", `initial_delay = "0s"`, 1000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", c.attrs, 1))
			q := &recordingQueue{}
			r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
			for s := 1000.0; s <= 1012; s++ {
				cpu(t, r, "h1", s, 95)
			}
			if len(q.runs) != 1 {
				t.Fatalf("queued %d runs, want 1", len(q.runs))
			}
			log := decisions(r, "up")
			var fired float64
			for _, d := range log {
				if d.Fired {
					fired = d.Time
				} else if d.Time < c.fires && (d.Reason != "grace" || d.GraceLeft != c.fires-d.Time) {
					t.Errorf("at %g: %+v, want held back by grace with %gs left", d.Time, d, c.fires-d.Time)
				}
			}
			if fired != c.fires {
				t.Fatalf("fired at %g, want %g; log %+v", fired, c.fires, log)
			}
		})
	}
}

// With initial_delay = "0s", a metric older than the policy's first check
// (the backlog a replica taking a deployment up consumes after its first
// missing-data tick ran at the wall clock) fires: no grace holds it back.
func TestNoGraceHoldsBackABacklogOlderThanTheFirstCheck(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `initial_delay = "0s"`, 1))
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	tick(t, r, 1005) // the first check, before any metric
	cpu(t, r, "h1", 1002, 95)
	if len(q.runs) != 1 {
		t.Fatalf("queued %d runs, want 1; decisions %+v", len(q.runs), decisions(r, "up"))
	}
}

func TestMissingDataNeverScalesDownAndHoldsByDefault(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `initial_delay = "0s"`, 1))
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	for s := 1000.0; s < 1005; s++ {
		cpu(t, r, "h1", s, 50) // neither condition holds
	}
	r.SetSource("", "broker", "connection refused")
	// The source stops: the window empties; ticks go on for a minute.
	for s := 1005.0; s < 1065; s++ {
		tick(t, r, s)
	}
	if len(q.runs) != 0 {
		t.Fatalf("missing data queued %+v, want nothing", q.runs)
	}
	for _, pol := range []string{"up", "down"} {
		log := decisions(r, pol)
		if len(log) != 1 {
			t.Fatalf("%s: %d decisions, want the one that says its data went missing: %+v", pol, len(log), log)
		}
		d := log[0]
		if d.Reason != "missing-data" || d.Fired || d.Time != 1014 ||
			d.Missing != "no data in the window of condition scale (broker failing: connection refused)" {
			t.Fatalf("%s: %+v", pol, d)
		}
	}
	if got := r.Counts().Outcome("missing-data").Load(); got != 2 {
		t.Fatalf("missing-data outcomes: %d, want 2", got)
	}
	st := r.Status("shop", 1065)
	if st[0].MissingSince != 1014 || st[0].OnMissing != "hold" {
		t.Fatalf("status: missing since %g, on_missing_data %q", st[0].MissingSince, st[0].OnMissing)
	}
	// Data comes back: no longer missing.
	r.SetSource("", "broker", "")
	cpu(t, r, "h1", 1066, 50)
	if st := r.Status("shop", 1066); st[0].MissingSince != 0 {
		t.Fatalf("data is back, still missing since %g", st[0].MissingSince)
	}
}

func TestMissingDataScalesUpOncePerCooldown(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `on_missing_data = "scale_up"
  initial_delay = "0s"`, 1))
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	cpu(t, r, "h1", 1000, 50)
	for s := 1001.0; s <= 1100; s++ {
		tick(t, r, s)
	}
	// Missing from 1010 (the 10s window (1000, 1010] is empty); cooldown
	// 30s: fires at 1010, 1040, 1070 and 1100.
	var times []float64
	for _, d := range decisions(r, "up") {
		if d.Fired {
			times = append(times, d.Time)
			if d.Missing == "" || d.Condition != "scale" || d.Execution == "" {
				t.Fatalf("fired decision %+v, want the scale condition on missing data with its execution", d)
			}
		}
	}
	if want := []float64{1010, 1040, 1070, 1100}; !equalFloats(times, want) {
		t.Fatalf("fired at %v, want %v", times, want)
	}
	if len(q.runs) != 4 || q.runs[0].params["amount"] != "+1" {
		t.Fatalf("queued %+v, want four scale-ups", q.runs)
	}
}

func TestMissingDataTriggerRunsItsWorkflow(t *testing.T) {
	src := strings.Replace(missingBlueprint, "%s", `on_missing_data = "trigger"
  initial_delay = "0s"
  trigger "missing_data" {
    workflow = workflow.page
    parameters = { amount = "0" }
  }`, 1)
	plan := resolvePlan(t, src)
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	cpu(t, r, "h1", 1000, 50)
	for s := 1001.0; s <= 1060; s++ {
		tick(t, r, s)
	}
	if len(q.runs) != 2 || q.runs[0].workflow != "page" {
		t.Fatalf("queued %+v, want page twice (at 1010 and 1040)", q.runs)
	}
}

func TestMinHostsMakesAThinWindowMissing(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `min_hosts = 2
  initial_delay = "0s"`, 1))
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	cpu(t, r, "h1", 1000, 95) // one host: not enough
	if len(q.runs) != 0 {
		t.Fatalf("one host of min_hosts 2 fired %+v", q.runs)
	}
	log := decisions(r, "up")
	if len(log) != 1 || log[0].Reason != "missing-data" || !strings.Contains(log[0].Missing, "fewer than 2 hosts") {
		t.Fatalf("log %+v, want one missing-data decision naming min_hosts", log)
	}
	cpu(t, r, "h2", 1001, 95)
	if len(q.runs) != 1 {
		t.Fatalf("two hosts: queued %+v, want one scale-up", q.runs)
	}
}

func TestMissingDataBlueprintErrors(t *testing.T) {
	cases := []struct{ attrs, want string }{
		{`on_missing_data = "shrink"`, `p.hcl:15:21: Invalid on_missing_data`},
		{`on_missing_data = "trigger"`, `p.hcl:15:21: Missing trigger`},
		{`trigger "missing_data" { workflow = workflow.page }`, `p.hcl:15:3: Trigger never fires`},
		{`min_hosts = 0`, `p.hcl:15:15: Invalid min_hosts`},
		{`initial_delay = "soon"`, `p.hcl:15:19: Invalid initial_delay`},
	}
	for _, c := range cases {
		src := strings.Replace(missingBlueprint, "%s", c.attrs, 1)
		bp, diags := blueprints.Parse(map[string][]byte{"p.hcl": []byte(src)},
			map[string][]byte{"<builtin>/core.hcl": blueprints.CoreTypes["<builtin>/core.hcl"], "<builtin>/policies.hcl": []byte(BuiltinTypes)}, "p.hcl")
		if !diags.HasErrors() {
			_, diags = blueprints.Resolve(bp, &blueprints.Catalog{Workflows: []string{"test.scale"}, PolicyTypes: BuiltinImplementations()}, nil)
		}
		if !diags.HasErrors() {
			t.Fatalf("%s: no error", c.attrs)
		}
		sub := diags[0].Subject
		got := fmt.Sprintf("%s:%d:%d: %s", sub.Filename, sub.Start.Line, sub.Start.Column, diags[0].Summary)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.attrs, got, c.want)
		}
	}
	// scale_up on a scale-down policy is refused when it is compiled.
	plan := resolvePlan(t, strings.Replace(strings.Replace(missingBlueprint, "%s", "", 1),
		`initial_delay = "0s"`, `on_missing_data = "scale_up"`, 1))
	r := NewRunner(NewPipeline(600), &recordingQueue{}, &memState{m: map[string][]byte{}})
	err := r.AddDeployment(context.Background(), "shop", plan)
	if err == nil || !strings.Contains(err.Error(), "none of its conditions scales up") {
		t.Fatalf("AddDeployment: %v", err)
	}
}

func TestTickClockRunsOnFromEventTime(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `initial_delay = "0s"`, 1))
	r := newRunner(t, plan, &recordingQueue{}, &memState{m: map[string][]byte{}})
	cpu(t, r, "h1", 1000, 50)
	if now := r.Pipeline.ClockAt("shop", time.Now().Add(5*time.Second)); now < 1004.9 || now > 1005.5 {
		t.Fatalf("5s after a metric of time 1000 the clock says %g", now)
	}
}

// One forged timestamp moves no clock: a metric too far ahead of the wall
// clock is refused as malformed (counted), even for a deployment that does
// not exist; one within the skew moves only its own deployment's clock, so
// another deployment's scale_up-on-missing-data policy does not fire.
func TestAForgedTimestampBlindsNoDeployment(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `initial_delay = "0s"
  on_missing_data = "scale_up"`, 1))
	q := &recordingQueue{}
	p := NewPipeline(3600)
	p.MaxSkew = 120
	r := NewRunner(p, q, &memState{m: map[string][]byte{}})
	ctx := context.Background()
	for _, dep := range []string{"shop", "other"} {
		if err := r.AddDeployment(ctx, dep, plan); err != nil {
			t.Fatal(err)
		}
	}
	wall := time.Now()
	now := Seconds(wall)
	cpu(t, r, "h1", now, 50) // shop reports now
	forged := &Metric{DeploymentID: "nowhere", NodeName: "web", Host: "x", Name: "cpu", Value: 1, Time: now + 1e6}
	err := r.Apply(ctx, forged)
	if kind, ok := IsMalformed(err); !ok || kind != "time" || !strings.Contains(err.Error(), "ahead of this host's clock") {
		t.Fatalf("a metric 1e6 s ahead: %v", err)
	}
	if p.Malformed["time"] != 1 {
		t.Errorf("refused metrics counted %v", p.Malformed)
	}
	// Within the skew: only its own deployment's clock moves.
	if err := r.Apply(ctx, &Metric{DeploymentID: "other", NodeName: "web", Host: "x", Name: "cpu", Value: 50, Time: now + 100, Service: "other.web.web_1.cpu."}); err != nil {
		t.Fatal(err)
	}
	if got := p.ClockAt("shop", wall.Add(time.Second)); got < now+0.9 || got > now+1.5 {
		t.Errorf("shop's clock moved with another deployment's metric: %g, want about %g", got, now+1)
	}
	if got := p.ClockAt("other", wall.Add(time.Second)); got < now+100.9 || got > now+101.5 {
		t.Errorf("other's clock: %g, want about %g", got, now+101)
	}
	if err := r.Tick(ctx, wall.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(q.runs) != 0 {
		t.Errorf("scaled up on missing data that is not missing: %v", q.runs)
	}
	// Once shop's own data is older than its window, it does (and other,
	// whose data is as old, too).
	if err := r.Tick(ctx, wall.Add(15*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(q.runs) != 2 {
		t.Errorf("data missing for 15s: %d runs, want 2 (shop and other)", len(q.runs))
	}
}

// A cooldown stored from a time far ahead (a forged timestamp, before
// times were checked) ends at most one cooldown from now after a restart.
func TestACooldownFromTheFutureIsCutAtRestart(t *testing.T) {
	plan := resolvePlan(t, runnerBlueprint)
	state := &memState{m: map[string][]byte{}}
	now := Seconds(time.Now())
	if err := state.PutPolicyState(context.Background(), stateKey("shop", "web_cpu"), &policyState{Until: map[string]float64{"scale": now + 3e7}}); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, plan, &recordingQueue{}, state)
	st := r.Status("shop", now)[0]
	if left := st.Conditions[0].CooldownLeft; left > 31 || left < 29 {
		t.Errorf("cooldown left after a restart: %gs, want about the 30s cooldown", left)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A burst held back by the start-up grace is not used up: it fires once
// the grace ends, and once only.
func TestHeldBackBurstFiresAfterTheGrace(t *testing.T) {
	plan := resolvePlan(t, `
node "web" {}
workflow "burst" { uses = "test.scale" }
policy "rps" {
  type       = "orch.rps_burst"
  properties = { burst_value = 50, reconcile_value = 10, throttle_delay = "2s", sample_window = "5s" }
  trigger "burst" { workflow = workflow.burst }
}
`)
	q := &recordingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	for s := 1000.0; s <= 1010; s++ {
		m := &Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: "h1", Name: "rps", Value: 100, Time: s}
		if err := r.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	var fired []float64
	graced := 0
	for _, d := range decisions(r, "rps") {
		if d.Fired {
			fired = append(fired, d.Time)
		} else if d.Reason == "grace" {
			graced++
		}
	}
	if !equalFloats(fired, []float64{1005}) || graced != 3 || len(q.runs) != 1 {
		t.Fatalf("fired at %v after %d held back by grace, queued %d; want at 1005 after 3 (1002-1004), one run", fired, graced, len(q.runs))
	}
}

func TestHistoryKeepsTheLatestPointOfEachSecond(t *testing.T) {
	in := &Instance{HistorySize: 3}
	for _, at := range []float64{1, 1.5, 2, 3, 4, 5, 5.2} {
		in.remember(at, []Result{{Condition: "a", Values: []Reading{{"v", at}}}, {Condition: "b"}})
	}
	h := in.History()
	var got []float64
	for _, p := range h {
		if p.Values["v"] != p.Time {
			t.Fatalf("point %+v holds another evaluation's values", p)
		}
		got = append(got, p.Time)
	}
	if !equalFloats(got, []float64{3, 4, 5.2}) {
		t.Fatalf("history %v, want [3 4 5.2]", got)
	}
	// A label is one value however its string was made, and a label
	// beyond the history's keys is left out.
	in = &Instance{}
	labels := []string{"a", "b", "c", "d"}
	in.remember(1, []Result{{Values: []Reading{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}}}})
	in.remember(2, []Result{{Values: []Reading{{strings.Repeat("b", 1), 20}, {string([]byte("a")), 10}, {"e", 50}}}})
	h = in.History()
	if len(h) != 2 || len(h[1].Values) != 2 || h[1].Values["a"] != 10 || h[1].Values["b"] != 20 || len(h[0].Values) != len(labels) {
		t.Fatalf("history %+v, want a and b at 2, %v at 1", h, labels)
	}
	// Every size keeps the newest points, oldest first.
	for _, size := range []int{1, 2, 5, 120} {
		in := &Instance{HistorySize: size}
		for s := range 300 {
			in.remember(float64(s), []Result{{Condition: "a", Values: []Reading{{"v", float64(s)}}}})
		}
		h := in.History()
		if len(h) != size || h[0].Time != float64(300-size) || h[size-1].Time != 299 {
			t.Errorf("size %d: %d points from %g to %g, want the newest %d", size, len(h), h[0].Time, h[len(h)-1].Time, size)
		}
		for i := 1; i < len(h); i++ {
			if h[i].Time != h[i-1].Time+1 {
				t.Fatalf("size %d: points out of order: %g after %g", size, h[i].Time, h[i-1].Time)
			}
		}
	}
}

// waitingQueue says a run of every workflow already waits after the first.
type waitingQueue struct{ recordingQueue }

func (q *waitingQueue) Waiting(_ context.Context, _, _ string) (string, error) {
	if len(q.runs) > 0 {
		return "exec-1", nil
	}
	return "", nil
}

func TestAWaitingRunHoldsBackASecond(t *testing.T) {
	plan := resolvePlan(t, strings.Replace(missingBlueprint, "%s", `initial_delay = "0s"`, 1))
	q := &waitingQueue{}
	r := newRunner(t, plan, q, &memState{m: map[string][]byte{}})
	for s := 1000.0; s <= 1040; s++ {
		cpu(t, r, "h1", s, 95)
	}
	if len(q.runs) != 1 {
		t.Fatalf("queued %d runs, want 1 (the second waits behind the first)", len(q.runs))
	}
	var held []Decision
	for _, d := range decisions(r, "up") {
		if d.Reason == "execution-queued" {
			held = append(held, d)
		}
	}
	if len(held) != 1 || held[0].Time != 1030 || held[0].Execution != "exec-1" {
		t.Fatalf("held back as execution-queued: %+v, want one at 1030 naming exec-1", held)
	}
	if got := r.Counts().Outcome("execution-queued").Load(); got != 1 {
		t.Fatalf("execution-queued outcomes: %d", got)
	}
	if got := r.Counts().Fired.Load(); got != 1 {
		t.Fatalf("fired count %d, want 1: one held back as execution-queued did not fire", got)
	}
}
