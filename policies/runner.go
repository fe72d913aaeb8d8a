package policies

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/orchhq/orch/blueprints"
)

// Queuer queues a workflow run; the orchestrator's engine implements it. A
// policy decides and queues; it never calls a plugin.
type Queuer interface {
	Queue(ctx context.Context, deployment, workflow string, params map[string]string) (execution string, err error)
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

// Runner evaluates the policies of deployments as metrics arrive and queues
// the workflows their triggers name.
type Runner struct {
	Pipeline *Pipeline
	Queue    Queuer
	State    StateStore
	// DryRun records decisions and triggers without queueing anything.
	DryRun bool
	// OnTrigger observes every trigger (fired or dry run).
	OnTrigger func(deployment, policy string, t Trigger)

	policies map[string]*runPolicy // deployment \x00 policy
	err      error
}

type runPolicy struct {
	deployment string
	plan       *blueprints.PlanPolicy
	instance   *Instance
	state      policyState
}

// NewRunner returns a runner over a pipeline.
func NewRunner(p *Pipeline, q Queuer, s StateStore) *Runner {
	r := &Runner{Pipeline: p, Queue: q, State: s, policies: map[string]*runPolicy{}}
	p.OnDecision = r.decide
	return r
}

func stateKey(deployment, policy string) string { return "policy/" + deployment + "/" + policy }

// AddDeployment compiles a deployment's policies and restores their state.
func (r *Runner) AddDeployment(ctx context.Context, deployment string, plan *blueprints.Plan) error {
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
				in.until[cond] = until
			}
		}
		r.policies[deployment+"\x00"+p.Name] = rp
		r.Pipeline.Add(deployment, in)
	}
	return nil
}

// Err returns the first error the runner met (a failing state store).
func (r *Runner) Err() error { return r.err }

// decide turns a fired decision into a queued workflow. The cooldown is
// stored before the workflow is queued: after a crash in between, the
// trigger is lost rather than fired twice.
func (r *Runner) decide(deployment string, d Decision) {
	if !d.Fired {
		return
	}
	rp := r.policies[deployment+"\x00"+d.Policy]
	if rp == nil {
		return
	}
	ctx := context.Background()
	var trig *blueprints.Trigger
	for _, t := range rp.plan.Triggers {
		if t.Condition == d.Condition {
			trig = t
		}
	}
	if trig == nil {
		return // a condition with no trigger only shows in decisions
	}
	t := Trigger{Time: d.Time, Condition: d.Condition, Workflow: trig.Workflow, DryRun: r.DryRun}
	if rp.state.Until == nil {
		rp.state.Until = map[string]float64{}
	}
	rp.state.Until[d.Condition] = rp.instance.until[d.Condition]
	if err := r.State.PutPolicyState(ctx, stateKey(deployment, d.Policy), &rp.state); err != nil {
		r.err = fmt.Errorf("store policy state of %s/%s: %w", deployment, d.Policy, err)
		return
	}
	params, err := triggerParams(trig, r.Pipeline.last)
	if err != nil {
		t.Error = err.Error()
	} else if !r.DryRun {
		id, err := r.Queue.Queue(ctx, deployment, trig.Workflow, params)
		t.Execution = id
		if err != nil {
			t.Error = err.Error()
		}
	}
	rp.state.Triggers = append(rp.state.Triggers, t)
	if n := len(rp.state.Triggers); n > maxTriggerHistory {
		rp.state.Triggers = rp.state.Triggers[n-maxTriggerHistory:]
	}
	if err := r.State.PutPolicyState(ctx, stateKey(deployment, d.Policy), &rp.state); err != nil {
		r.err = fmt.Errorf("store policy state of %s/%s: %w", deployment, d.Policy, err)
	}
	if r.OnTrigger != nil {
		r.OnTrigger(deployment, d.Policy, t)
	}
}

// eventValue is the triggering metric as the `event` variable of trigger
// parameters.
func eventValue(m *Metric) cty.Value {
	if m == nil {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(map[string]cty.Value{
		"node_id": cty.StringVal(m.NodeID), "node_name": cty.StringVal(m.NodeName),
		"deployment_id": cty.StringVal(m.DeploymentID), "name": cty.StringVal(m.Name),
		"path": cty.StringVal(m.Path), "metric": cty.NumberFloatVal(m.Value), "unit": cty.StringVal(m.Unit),
		"type": cty.StringVal(m.Type), "host": cty.StringVal(m.Host), "service": cty.StringVal(m.Service),
		"time": cty.NumberFloatVal(m.Time),
	})
}

// triggerParams evaluates a trigger's parameters with the triggering event
// and renders them as the engine takes parameters (as typed on a command
// line).
func triggerParams(t *blueprints.Trigger, event *Metric) (map[string]string, error) {
	out := map[string]string{}
	if t.Parameters == nil {
		return out, nil
	}
	v, diags := t.Parameters.Value(&hcl.EvalContext{
		Variables: map[string]cty.Value{"event": eventValue(event)},
		Functions: blueprints.Functions(),
	})
	if diags.HasErrors() {
		return nil, fmt.Errorf("trigger %s parameters: %s", t.Condition, diags.Error())
	}
	v, _ = v.UnmarkDeep()
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		switch {
		case e.IsNull():
			continue
		case e.Type() == cty.String:
			out[k.AsString()] = e.AsString()
		case e.Type() == cty.Number:
			f, _ := e.AsBigFloat().Float64()
			out[k.AsString()] = strconv.FormatFloat(f, 'f', -1, 64)
		case e.Type() == cty.Bool:
			out[k.AsString()] = strconv.FormatBool(e.True())
		default:
			b, err := ctyjson.Marshal(e, e.Type())
			if err != nil {
				return nil, err
			}
			out[k.AsString()] = string(b)
		}
	}
	return out, nil
}
