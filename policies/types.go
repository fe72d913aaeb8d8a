package policies

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/orchhq/orch/blueprints"
)

// Result is one condition's outcome at one evaluation.
type Result struct {
	Condition string
	Holds     bool
	// Known is false when a window the condition reads had no data: missing
	// data never makes a condition true (nor a scale-down happen).
	Known bool
	// Values are the window reductions the condition read, for explaining
	// the decision ("mean(cpu, 10s)" -> 83.2).
	Values map[string]float64
}

// Evaluator evaluates a policy's conditions over the windows at a time.
// Built-in (Go) and user-defined (HCL) policy types both implement it.
type Evaluator interface {
	Evaluate(w *Windows, now float64) ([]Result, error)
}

// peeker is implemented by evaluators that keep state from one evaluation
// to the next (rps_burst's hysteresis): Peek evaluates without changing
// it, so reading a policy's status decides nothing.
type peeker interface {
	Peek(w *Windows, now float64) ([]Result, error)
}

// windowed is implemented by evaluators that know the longest window they
// read: a policy's default start-up grace (initial_delay).
type windowed interface {
	Window() float64
}

// firer is implemented by evaluators that need to know which condition
// fired (not merely held: one held back may fire later).
type firer interface {
	Fired(condition string)
}

// scaler is implemented by built-in evaluators whose scale-up condition
// depends on their parameters (scale_threshold's scale_direction).
type scaler interface {
	ScaleUp() string
}

// peek evaluates for a status read.
func peek(e Evaluator, w *Windows, now float64) ([]Result, error) {
	if p, ok := e.(peeker); ok {
		return p.Peek(w, now)
	}
	return e.Evaluate(w, now)
}

// Target is what a policy watches: a deployment and (optionally) nodes.
type Target struct {
	Deployment string
	Nodes      map[string]bool // nil: every node
	// MinHosts is the policy's min_hosts: fewer hosts in a window is no data.
	MinHosts int
}

// query is a window of metric over the target's nodes.
func (t Target) query(metric string, seconds, now float64) Query {
	return Query{Deployment: t.Deployment, Nodes: t.Nodes, MinHosts: t.MinHosts, Metric: metric, Seconds: seconds, Now: now}
}

// Compile builds the evaluator of a resolved policy.
func Compile(t Target, p *blueprints.PlanPolicy) (Evaluator, error) {
	if p.Type == nil {
		return nil, fmt.Errorf("policy %s: no type", p.Name)
	}
	if p.Type.Uses != "" {
		build, ok := builtins[p.Type.Uses]
		if !ok {
			return nil, fmt.Errorf("policy %s: unknown built-in policy type %q", p.Name, p.Type.Uses)
		}
		return build(t, p)
	}
	return compileHCL(t, p)
}

// hclEvaluator evaluates a policy type written in the blueprint.
type hclEvaluator struct {
	conds  []*blueprints.Condition
	params cty.Value
	scope  *scope
	fns    map[string]function.Function
}

// scope answers the window functions for one policy: it binds them to the
// policy's deployment and nodes and to the evaluation time.
type scope struct {
	target   Target
	w        *Windows
	now      float64
	patterns map[string]*regexp.Regexp
	values   map[string]float64
	// longest is the longest window read so far.
	longest float64
	// memo keeps this evaluation's reductions: a condition often reads the
	// same window more than once (and HCL evaluates both branches of ?:).
	memo map[reduceKey]reduced
}

type reduceKey struct {
	fn, metric, pattern string
	seconds, arg        float64
}

type reduced struct {
	v  float64
	ok bool
}

func (s *scope) Reduce(fn string, spec *blueprints.WindowSpec, arg float64) (float64, bool) {
	key := reduceKey{fn, spec.Metric, spec.Pattern, spec.Duration, arg}
	s.longest = max(s.longest, spec.Duration)
	if s.w != nil && spec.Duration > s.w.Horizon {
		// A window longer than the history kept: keep that much from now
		// on (the start-up grace covers its first filling).
		s.w.Horizon = spec.Duration
	}
	r, seen := s.memo[key]
	if !seen {
		r.v, r.ok = s.reduce(fn, spec, arg)
		s.memo[key] = r
	}
	if r.ok && s.values != nil {
		name := spec.Metric
		if spec.Pattern != "" {
			name = "services(" + spec.Pattern + ")"
		}
		label := fmt.Sprintf("%s(%s, %gs)", fn, name, spec.Duration)
		if fn == "percentile" || fn == "ewma" {
			label = fmt.Sprintf("%s(%s, %gs, %g)", fn, name, spec.Duration, arg)
		}
		s.values[label] = r.v
	}
	return r.v, r.ok
}

func (s *scope) reduce(fn string, spec *blueprints.WindowSpec, arg float64) (float64, bool) {
	q := s.target.query(spec.Metric, spec.Duration, s.now)
	if spec.Pattern != "" {
		re := s.patterns[spec.Pattern]
		if re == nil {
			var err error
			if re, err = regexp.Compile(spec.Pattern); err != nil {
				return 0, false
			}
			s.patterns[spec.Pattern] = re
		}
		q.Pattern = re
	}
	return s.w.Reduce(fn, q, arg)
}

func compileHCL(t Target, p *blueprints.PlanPolicy) (Evaluator, error) {
	sc := &scope{target: t, patterns: map[string]*regexp.Regexp{}, memo: map[reduceKey]reduced{}}
	params, _ := p.Properties.Unmark()
	if params == cty.NilVal || params.IsNull() {
		params = cty.EmptyObjectVal
	}
	return &hclEvaluator{conds: p.Type.Conditions, params: params, scope: sc, fns: blueprints.ConditionFunctions(sc)}, nil
}

// Window is the longest window its conditions have read.
func (e *hclEvaluator) Window() float64 { return e.scope.longest }

func (e *hclEvaluator) Evaluate(w *Windows, now float64) ([]Result, error) {
	e.scope.w, e.scope.now = w, now
	clear(e.scope.memo)
	out := make([]Result, 0, len(e.conds))
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"param": e.params}, Functions: e.fns}
	for _, c := range e.conds {
		e.scope.values = map[string]float64{}
		v, diags := c.When.Value(ctx)
		if diags.HasErrors() {
			return nil, fmt.Errorf("condition %s: %s", c.Name, strings.TrimSpace(diags.Error()))
		}
		r := Result{Condition: c.Name, Values: e.scope.values}
		if b, err := convert.Convert(v, cty.Bool); err == nil && b.IsKnown() && !b.IsNull() {
			r.Known = true
			r.Holds = b.True()
		}
		out = append(out, r)
	}
	return out, nil
}

// Validate compiles every policy of a plan as orch serve compiles it, so
// what `orch validate` and `orch deploy` accept is what serve runs. A
// policy whose properties are not all known yet (inputs without a value,
// at validate) is compiled when it is deployed. Problems are errors on the
// policy block.
func Validate(plan *blueprints.Plan) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, p := range plan.Policies {
		if v, _ := p.Properties.UnmarkDeep(); v != cty.NilVal && !v.IsWhollyKnown() {
			continue
		}
		if _, err := NewInstance(Target{Deployment: "validate"}, p); err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Policy does not compile",
				Detail:   err.Error() + ".",
				Subject:  p.DeclRange.Ptr(),
			})
		}
	}
	return diags
}
