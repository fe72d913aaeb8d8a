package policies

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// Decision is a condition that held at an evaluation: fired, or held back
// (by a cooldown, for now; pause, limits and grace come with the runner).
type Decision struct {
	Time      float64            `json:"time"`
	Policy    string             `json:"policy"`
	Condition string             `json:"condition"`
	Fired     bool               `json:"fired"`
	Reason    string             `json:"reason,omitempty"` // why it was held back
	Values    map[string]float64 `json:"values,omitempty"`
	// CooldownLeft is the seconds left of the cooldown that held it back.
	CooldownLeft float64 `json:"cooldown_left,omitempty"`
	// Workflow and Execution are the workflow a fired decision queued (or
	// the error that kept it from being queued).
	Workflow  string `json:"workflow,omitempty"`
	Execution string `json:"execution,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Instance is a policy being evaluated: its evaluator and its cooldowns,
// kept per condition (scale up and scale down cool down separately).
type Instance struct {
	Name     string
	Eval     Evaluator
	Cooldown float64 // seconds, per condition
	// Shared is scale.clj's original cooldown: one flag for every shared
	// policy of the deployment, not persisted (cooldown_scope = "deployment").
	Shared bool
	until  map[string]float64
	shared *float64 // the deployment's flag, set by Pipeline.Add
	// pause, when set, holds back every firing (without starting a
	// cooldown) until it expires.
	pause *Pause
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
	ev, err := Compile(t, p)
	if err != nil {
		return nil, err
	}
	in := &Instance{Name: p.Name, Eval: ev, until: map[string]float64{}}
	props, _ := p.Properties.Unmark()
	if props == cty.NilVal || props.IsNull() {
		props = cty.EmptyObjectVal
	}
	if props.Type().IsObjectType() && props.Type().HasAttribute("cooldown_time") {
		if v := props.GetAttr("cooldown_time"); v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			if d, err := blueprints.ParseDuration(v.AsString()); err == nil {
				in.Cooldown = d.Seconds()
			}
		}
	}
	if props.Type().IsObjectType() && props.Type().HasAttribute("cooldown_scope") {
		v := props.GetAttr("cooldown_scope")
		scope := "policy"
		if v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			scope = v.AsString()
		}
		switch scope {
		case "policy":
		case "deployment":
			in.Shared = true
		default:
			return nil, fmt.Errorf("policy %s: cooldown_scope %q: want \"policy\" or \"deployment\"", p.Name, scope)
		}
	}
	return in, nil
}

// Step evaluates the policy at now and returns what held: fired, or held
// back by a cooldown.
func (in *Instance) Step(w *Windows, now float64) ([]Decision, error) {
	results, err := in.Eval.Evaluate(w, now)
	if err != nil {
		return nil, err
	}
	var out []Decision
	for _, r := range results {
		if !r.Known || !r.Holds {
			continue
		}
		d := Decision{Time: now, Policy: in.Name, Condition: r.Condition, Values: r.Values}
		until := in.until[r.Condition]
		if in.shared != nil {
			until = *in.shared
		}
		switch {
		case in.pause.Active(now):
			d.Reason = "paused"
		case now < until:
			d.Reason = "cooldown"
			d.CooldownLeft = until - now
		case in.shared != nil:
			d.Fired = true
			*in.shared = now + in.Cooldown
		default:
			d.Fired = true
			in.until[r.Condition] = now + in.Cooldown
		}
		out = append(out, d)
	}
	return out, nil
}
