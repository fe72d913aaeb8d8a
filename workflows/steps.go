package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins"
)

// A workflow written in the blueprint runs its steps as a graph: a step
// starts once every step that leads to it has ended, and runs only if
// each ended the way its edge asks (on_success: succeeded, on_failure:
// failed); otherwise it is skipped, and so are the steps only it leads
// to. Steps that can run at once do, and a step runs its activity on the
// instances of its target in parallel. A failed step with on_failure
// steps is a handled failure: those run, and so does the rest of the
// graph, but the execution still ends failed, its error naming the step
// and what handled it. A failed step without on_failure steps stops the
// workflow: no other step starts (those running finish). Each step's
// outcome, and each instance a step is done with, is stored in the
// execution as it happens, so a resumed execution skips them.

// Step outcomes, stored in Execution.Steps.
const (
	StepStarted   = "started"
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped"
)

// Step event types.
const (
	EventStepStarted   = "step_started"
	EventStepSucceeded = "step_succeeded"
	EventStepFailed    = "step_failed"
	EventStepSkipped   = "step_skipped"
)

// uninlinable are the built-in workflows a step cannot inline: they keep
// their plan in the execution (Execution.Change), one per execution.
var uninlinable = []string{Scale, Heal}

// stepRun is one execution of a step workflow (its inlined ones
// included): what its steps share.
type stepRun struct {
	e *Engine
	x *Execution
	t *Target
	// mu guards x.Steps and storing x.
	mu sync.Mutex
}

// emitStep is emit for an event of a step.
func (e *Engine) emitStep(x *Execution, level, typ, step, msg string) {
	e.events.Emit(Event{Time: time.Now().UTC(), Execution: x.ID, Level: level, Type: typ, Step: step, Message: msg})
}

// runStepWorkflow runs a workflow written in the blueprint, its
// preconditions checked first (unless it resumes with steps done).
func (e *Engine) runStepWorkflow(ctx context.Context, x *Execution, t *Target, pw *blueprints.PlanWorkflow, params map[string]cty.Value) error {
	r := &stepRun{e: e, x: x, t: t}
	if len(x.Steps) == 0 {
		if err := CheckPreconditions(t, pw, params); err != nil {
			return err
		}
	}
	if x.DryRun {
		for _, line := range StepPlan(t, pw) {
			e.emit(x, "info", EventLog, "", "", line)
		}
	}
	return r.steps(ctx, pw, params, "")
}

// CheckPreconditions evaluates a step workflow's preconditions on every
// instance of their targets: the first that does not hold is the error,
// with its error_message.
func CheckPreconditions(t *Target, pw *blueprints.PlanWorkflow, params map[string]cty.Value) error {
	for _, pc := range pw.Preconditions {
		for _, node := range pc.Nodes {
			t.mu.Lock()
			insts := t.Of(node)
			var scopes []blueprints.RuntimeScope
			for _, inst := range insts {
				iv := values(inst)
				iv.State = inst.State
				scopes = append(scopes, blueprints.RuntimeScope{Self: iv, Attributes: t.attributesOf, Params: params})
			}
			t.mu.Unlock()
			for i, rs := range scopes {
				ok, err := t.Plan.PreconditionHolds(pc, rs)
				if err != nil {
					return fmt.Errorf("workflow %s: precondition on %s (%s): %w", pw.Name, insts[i].ID, pc.DeclRange, err)
				}
				if !ok {
					return fmt.Errorf("workflow %s refused, nothing was run: precondition on %s does not hold (state %s): %s", pw.Name, insts[i].ID, insts[i].State, pc.ErrorMessage)
				}
			}
		}
	}
	return nil
}

// StepPlan describes a step workflow as it would run: its steps in the
// order they start when every step succeeds, each with the instances it
// runs on and what follows it, then the steps only a failure runs.
func StepPlan(t *Target, pw *blueprints.PlanWorkflow) []string {
	order, failureOnly := stepOrder(pw)
	out := []string{fmt.Sprintf("workflow %s: %d step(s)", pw.Name, len(pw.Steps))}
	describe := func(prefix string, st *blueprints.PlanStep) string {
		line := fmt.Sprintf("%s%s: %s %s", prefix, st.Name, st.Activity, st.Value)
		if st.Activity != blueprints.Inline {
			line += " on " + strings.Join(instanceIDs(t, st.Nodes), ", ")
		}
		if len(st.OnSuccess) > 0 {
			line += "; then " + strings.Join(st.OnSuccess, ", ")
		}
		if len(st.OnFailure) > 0 {
			line += "; if it fails " + strings.Join(st.OnFailure, ", ")
		}
		return line
	}
	for i, st := range order {
		out = append(out, describe(fmt.Sprintf("  %d. ", i+1), st))
	}
	for _, st := range failureOnly {
		out = append(out, describe("  on failure only: ", st))
	}
	return out
}

// stepOrder is the steps in the order they start when every step
// succeeds (ties in declaration order), and the steps that then never
// run.
func stepOrder(pw *blueprints.PlanWorkflow) (order, failureOnly []*blueprints.PlanStep) {
	preds := predecessors(pw)
	outcome := map[string]string{}
	for progress := true; progress; {
		progress = false
		for _, st := range pw.Steps {
			if outcome[st.Name] != "" {
				continue
			}
			ready, fire := readiness(preds[st.Name], outcome)
			if !ready {
				continue
			}
			progress = true
			if fire {
				outcome[st.Name] = StepSucceeded
				order = append(order, st)
			} else {
				outcome[st.Name] = StepSkipped
				failureOnly = append(failureOnly, st)
			}
		}
	}
	return order, failureOnly
}

// edge is a step leading to another: on its success, or its failure.
type edge struct {
	from    string
	success bool
}

func predecessors(pw *blueprints.PlanWorkflow) map[string][]edge {
	preds := map[string][]edge{}
	for _, st := range pw.Steps {
		for _, n := range st.OnSuccess {
			preds[n] = append(preds[n], edge{st.Name, true})
		}
		for _, n := range st.OnFailure {
			preds[n] = append(preds[n], edge{st.Name, false})
		}
	}
	return preds
}

// readiness says whether every step leading to one has ended, and
// whether each ended the way its edge asks.
func readiness(preds []edge, outcome map[string]string) (ready, fire bool) {
	fire = true
	for _, ed := range preds {
		o := outcome[ed.from]
		if o == "" || o == StepStarted {
			return false, false
		}
		if ed.success && o != StepSucceeded || !ed.success && o != StepFailed {
			fire = false
		}
	}
	return true, fire
}

// unmet says which steps before a skipped one did not end the way it
// asks: "it runs if backup fails; backup succeeded".
func unmet(preds []edge, outcome map[string]string, prefix string) string {
	var parts []string
	for _, ed := range preds {
		o := outcome[ed.from]
		want := StepSucceeded
		if !ed.success {
			want = StepFailed
		}
		if o == want {
			continue
		}
		how := "succeeds"
		if !ed.success {
			how = "fails"
		}
		parts = append(parts, fmt.Sprintf("it runs if %s %s; %s %s", prefix+ed.from, how, prefix+ed.from, o))
	}
	return strings.Join(parts, "; ")
}

// instanceIDs are the instances of nodes, in node order.
func instanceIDs(t *Target, nodes []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, n := range nodes {
		for _, inst := range t.Of(n) {
			out = append(out, inst.ID)
		}
	}
	if len(out) == 0 {
		return []string{"(no instances)"}
	}
	return out
}

// steps runs the steps of pw (prefix names them inside an inline step).
func (r *stepRun) steps(ctx context.Context, pw *blueprints.PlanWorkflow, params map[string]cty.Value, prefix string) error {
	preds := predecessors(pw)
	byName := map[string]*blueprints.PlanStep{}
	for _, st := range pw.Steps {
		byName[st.Name] = st
	}
	outcome := map[string]string{}
	errs := map[string]error{}
	type result struct {
		name string
		err  error
	}
	done := make(chan result)
	running := 0
	stop := "" // a step that failed with no on_failure steps: nothing new starts
	for {
		for progress := true; progress; {
			progress = false
			for _, st := range pw.Steps {
				if outcome[st.Name] != "" {
					continue
				}
				key := prefix + st.Name
				if prior := r.outcome(key); prior == StepSucceeded || prior == StepFailed || prior == StepSkipped {
					// Resumed: what ended before is kept.
					outcome[st.Name] = prior
					r.e.emitStep(r.x, "info", EventStepSkipped, key, fmt.Sprintf("step %s already %s", key, prior))
					if prior == StepFailed {
						errs[st.Name] = errors.New("failed before the execution resumed")
					}
					progress = true
					continue
				}
				ready, fire := readiness(preds[st.Name], outcome)
				if !ready {
					continue
				}
				progress = true
				if !fire || stop != "" || ctx.Err() != nil {
					outcome[st.Name] = StepSkipped
					why := unmet(preds[st.Name], outcome, prefix)
					if stop != "" {
						why = fmt.Sprintf("step %s failed and has no on_failure steps", prefix+stop)
					}
					if r.x.DryRun && fire {
						why = "dry run"
					}
					if r.x.DryRun && !fire {
						why = "in a dry run every step succeeds, and " + why
					}
					r.record(ctx, key, StepSkipped)
					r.e.emitStep(r.x, "info", EventStepSkipped, key, fmt.Sprintf("step %s not run: %s", key, why))
					continue
				}
				outcome[st.Name] = StepStarted
				running++
				go func(st *blueprints.PlanStep) {
					done <- result{st.Name, r.step(ctx, pw, st, params, prefix)}
				}(st)
			}
		}
		if running == 0 {
			break
		}
		res := <-done
		running--
		st := byName[res.name]
		if res.err != nil {
			outcome[res.name], errs[res.name] = StepFailed, res.err
			if len(st.OnFailure) == 0 && stop == "" {
				stop = res.name
			}
		} else {
			outcome[res.name] = StepSucceeded
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return stepsError(pw, prefix, outcome, errs)
}

// stepsError sums up the failed steps (nil: none failed).
func stepsError(pw *blueprints.PlanWorkflow, prefix string, outcome map[string]string, errs map[string]error) error {
	var parts []string
	for _, st := range pw.Steps {
		err := errs[st.Name]
		if outcome[st.Name] != StepFailed || err == nil {
			continue
		}
		if len(st.OnFailure) == 0 {
			parts = append(parts, fmt.Sprintf("step %s failed: %v", prefix+st.Name, err))
			continue
		}
		var handled []string
		for _, h := range st.OnFailure {
			handled = append(handled, fmt.Sprintf("%s %s", prefix+h, outcome[h]))
		}
		parts = append(parts, fmt.Sprintf("step %s failed (handled by its on_failure steps: %s): %v", prefix+st.Name, strings.Join(handled, ", "), err))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; "))
}

// outcome is what the execution recorded of a step or instance.
func (r *stepRun) outcome(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.x.Steps[key]
}

// record stores a step's (or an instance's) progress in the execution.
func (r *stepRun) record(ctx context.Context, key, outcome string) error {
	if r.x.DryRun {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.x.Steps == nil {
		r.x.Steps = map[string]string{}
	}
	r.x.Steps[key] = outcome
	if err := r.e.store.PutExecution(context.WithoutCancel(ctx), r.x); err != nil {
		return fmt.Errorf("store the progress of step %s: %w", key, err)
	}
	return nil
}

// step runs one step: its activity, with events and its outcome stored.
func (r *stepRun) step(ctx context.Context, pw *blueprints.PlanWorkflow, st *blueprints.PlanStep, params map[string]cty.Value, prefix string) error {
	key := prefix + st.Name
	resumed := r.outcome(key) == StepStarted
	if err := r.record(ctx, key, StepStarted); err != nil {
		return err
	}
	what := st.Activity + " " + st.Value
	if st.Activity != blueprints.Inline {
		what += " on " + strings.Join(instanceIDs(r.t, st.Nodes), ", ")
	}
	r.e.emitStep(r.x, "info", EventStepStarted, key, fmt.Sprintf("step %s started: %s", key, what))
	err := r.activity(ctx, st, params, key, resumed)
	if err != nil {
		if rerr := r.record(ctx, key, StepFailed); rerr != nil {
			err = errors.Join(err, rerr)
		}
		r.e.emitStep(r.x, "error", EventStepFailed, key, fmt.Sprintf("step %s failed: %v", key, err))
		return err
	}
	if err := r.record(ctx, key, StepSucceeded); err != nil {
		return err
	}
	r.e.emitStep(r.x, "info", EventStepSucceeded, key, fmt.Sprintf("step %s succeeded", key))
	return nil
}

// activity runs a step's activity. resumed: the step was running when
// orch stopped.
func (r *stepRun) activity(ctx context.Context, st *blueprints.PlanStep, params map[string]cty.Value, key string, resumed bool) error {
	e, x, t := r.e, r.x, r.t
	switch st.Activity {
	case blueprints.Inline:
		return r.inline(ctx, st, params, key, resumed)
	case blueprints.Delegate:
		scope := set(instanceIDs(t, st.Nodes))
		switch st.Value {
		case Install:
			return e.install(ctx, x, t, scope)
		case Uninstall:
			return e.uninstall(ctx, x, t, scope)
		case Start:
			return e.startStop(ctx, x, t, []string{"start"}, scope)
		case Stop:
			return e.startStop(ctx, x, t, []string{"stop"}, scope)
		case Restart:
			return e.startStop(ctx, x, t, []string{"stop", "start"}, scope)
		}
		return fmt.Errorf("step %s: orch cannot delegate to %q", key, st.Value)
	}
	t.mu.Lock()
	var insts []*NodeInstance
	for _, n := range st.Nodes {
		insts = append(insts, t.Of(n)...)
	}
	t.mu.Unlock()
	if len(insts) == 0 {
		e.emitStep(x, "info", EventLog, key, fmt.Sprintf("step %s: %s has no instances; nothing to do", key, st.Target))
		return nil
	}
	tasks := make([]*Task, 0, len(insts))
	for _, inst := range insts {
		inst := inst
		tasks = append(tasks, &Task{ID: inst.ID, Run: func(ctx context.Context) error {
			done := key + "@" + inst.ID
			if r.outcome(done) == StepSucceeded {
				e.emitInst(x, "info", EventOperationSkipped, inst, st.Value, fmt.Sprintf("step %s already done on %s", key, inst.ID))
				return nil
			}
			if err := r.onInstance(ctx, st, params, inst); err != nil {
				return err
			}
			return r.record(ctx, done, StepSucceeded)
		}})
	}
	return RunGraph(ctx, tasks, e.Parallel)
}

// onInstance runs a call_operation or set_state on one instance.
func (r *stepRun) onInstance(ctx context.Context, st *blueprints.PlanStep, params map[string]cty.Value, inst *NodeInstance) error {
	e, x, t := r.e, r.x, r.t
	n := t.Node(inst.Node)
	if n == nil {
		return fmt.Errorf("instance %s: its node %s is not in the blueprint", inst.ID, inst.Node)
	}
	switch st.Activity {
	case blueprints.SetState:
		if x.DryRun {
			e.emitInst(x, "info", EventOperationSkipped, inst, "", fmt.Sprintf("would set %s to %s", inst.ID, st.Value))
			return nil
		}
		t.mu.Lock()
		from := inst.State
		inst.State = st.Value
		t.mu.Unlock()
		e.emitInst(x, "info", EventLog, inst, "", fmt.Sprintf("%s: %s -> %s", inst.ID, from, st.Value))
		return e.putInstance(ctx, t, inst)
	case blueprints.CallOperation:
		op := n.Operations[st.Value]
		if op == nil {
			return fmt.Errorf("%s has no operation %q", inst.ID, st.Value)
		}
		t.mu.Lock()
		rs := blueprints.RuntimeScope{Self: values(inst), Attributes: t.attributesOf, Params: params}
		t.mu.Unlock()
		inputs, err := t.Plan.OperationInputs(op, rs)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", inst.ID, op.Name, err)
		}
		extra, err := t.Plan.StepInputs(st, rs)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", inst.ID, op.Name, err)
		}
		if x.DryRun {
			e.emitInst(x, "info", EventOperationSkipped, inst, op.Name, fmt.Sprintf("would run %s.%s (%s)", inst.ID, op.Name, op.Implementation))
			return nil
		}
		if err := e.runOperation(ctx, x, t, n, inst, op.WithInputs(mergeObjects(inputs, extra)), rs, nil); err != nil {
			return err
		}
		return e.putInstance(ctx, t, inst)
	}
	return fmt.Errorf("step %s: unknown activity %q", st.Name, st.Activity)
}

// inline runs the workflow an inline step names, with its parameters.
func (r *stepRun) inline(ctx context.Context, st *blueprints.PlanStep, params map[string]cty.Value, key string, resumed bool) error {
	e, x, t := r.e, r.x, r.t
	pw := t.Plan.Workflows[st.Value]
	if pw == nil {
		return fmt.Errorf("step %s: deployment %s has no workflow %q", key, t.Deployment, st.Value)
	}
	raw, err := t.Plan.StepParameters(st, params)
	if err != nil {
		return err
	}
	var given map[string]cty.Value
	if raw, _ = raw.Unmark(); raw.IsKnown() && !raw.IsNull() && raw.LengthInt() > 0 {
		given = raw.AsValueMap()
	}
	bound, err := pw.BindValues(nil, given)
	if err != nil {
		return fmt.Errorf("step %s: %w", key, err)
	}
	switch {
	case pw.StepWorkflow():
		if !resumed && !r.started(key+"/") {
			if err := CheckPreconditions(t, pw, bound); err != nil {
				return err
			}
		}
		return r.steps(ctx, pw, bound, key+"/")
	case builtin(t, pw.Name):
		name := builtinName(t, pw.Name)
		if slices.Contains(uninlinable, name) {
			return fmt.Errorf("step %s: the built-in %s cannot be inlined (it keeps its plan in the execution); delegate, or run it on its own", key, name)
		}
		return e.runBuiltin(ctx, x, t, pw.Name, bound)
	}
	if resumed {
		impl, _ := e.registry.Workflow(pw.Uses)
		if rs, ok := impl.(plugins.Resumable); !ok || !rs.Resumable() {
			return fmt.Errorf("step %s was running %s when orch stopped; %s cannot resume safely, so it is not run again", key, pw.Name, pw.Uses)
		}
	}
	return e.runPlugin(ctx, x, t, pw, bound)
}

// started reports whether the execution recorded any step under prefix.
func (r *stepRun) started(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.x.Steps {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
