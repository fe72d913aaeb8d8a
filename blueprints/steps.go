package blueprints

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// A workflow written in the blueprint is a graph of steps (TOSCA 1.3's
// imperative workflows): each runs one activity on every instance of its
// target, and names the steps to run after it succeeds (on_success) or
// fails (on_failure). What is checked here, each error where it is
// written: the references (steps, targets, inlined workflows, parameters),
// a cycle through either kind of edge, an operation the target's nodes do
// not have, a state or built-in workflow that does not exist, an inline
// cycle between workflows, and the parameters an inlined workflow needs.

// PlanStep is a step with its target resolved to nodes.
type PlanStep struct {
	Name string
	// Target names the node or group; Nodes are its nodes (a group's
	// members), none for an inline step.
	Target      string
	TargetGroup bool
	Nodes       []string
	// Activity is one of StepActivities; Value its operation, state,
	// delegated workflow or inlined workflow.
	Activity, Value string
	// Parameters (inline) and Inputs (call_operation) are evaluated when
	// the step runs, with the workflow's parameters as param.
	Parameters hcl.Expression
	Inputs     hcl.Expression
	OnSuccess  []string
	OnFailure  []string
	DeclRange  hcl.Range
}

// PlanPrecondition is a precondition with its target resolved to nodes.
type PlanPrecondition struct {
	Target       string
	Nodes        []string
	Condition    hcl.Expression
	ErrorMessage string
	DeclRange    hcl.Range
}

// StepWorkflow reports whether the workflow is written in the blueprint
// (steps), not implemented by orch or a plugin.
func (w *PlanWorkflow) StepWorkflow() bool { return w.Uses == "" && len(w.Steps) > 0 }

// targetNodes resolves a target to its nodes, reporting an undeclared one.
func (c *checker) targetNodes(name string, group bool, rng hcl.Range) ([]string, bool) {
	if group {
		g := c.groups[name]
		if g == nil {
			c.errorf(rng, "Reference to undeclared group", "There is no group named %q.%s", name, suggestion(name, slices.Sorted(maps.Keys(c.groups))))
			return nil, false
		}
		return g.Members, true
	}
	if c.nodes[name] == nil {
		c.errorf(rng, "Reference to undeclared node", "There is no node named %q.%s", name, suggestion(name, slices.Sorted(maps.Keys(c.nodes))))
		return nil, false
	}
	return []string{name}, true
}

// operationsOf are the operations a node has: its type chain's and its own.
func (c *checker) operationsOf(n *Node) []string {
	var ops []string
	if e := c.eff[n.Type]; e != nil {
		ops = slices.Collect(maps.Keys(e.ops))
	}
	for _, op := range n.Operations {
		if !slices.Contains(ops, op.Name) {
			ops = append(ops, op.Name)
		}
	}
	slices.Sort(ops)
	return ops
}

// paramValues are a workflow's parameters as unknown values of their
// types: what `param` is when its steps are checked.
func paramValues(w *Workflow) cty.Value {
	m := map[string]cty.Value{}
	for _, p := range w.Parameters {
		ty := p.Type
		if ty == cty.NilType {
			ty = cty.DynamicPseudoType
		}
		m[p.Name] = cty.UnknownVal(ty)
	}
	return cty.ObjectVal(m)
}

// checkSteps checks the steps and preconditions of the blueprint's
// workflows and returns their plans, by workflow.
func (c *checker) checkSteps() (map[string][]*PlanStep, map[string][]*PlanPrecondition) {
	steps, pres := map[string][]*PlanStep{}, map[string][]*PlanPrecondition{}
	for _, w := range c.bp.Workflows {
		if c.workflows[w.Name] != w || len(w.Steps) == 0 && len(w.Preconditions) == 0 {
			continue
		}
		param := map[string]cty.Value{"param": paramValues(w)}
		declared := map[string]*Step{}
		for _, st := range w.Steps {
			if declared[st.Name] == nil {
				declared[st.Name] = st
			}
		}
		for _, st := range w.Steps {
			if declared[st.Name] != st {
				continue // a duplicate, already reported
			}
			ps := &PlanStep{Name: st.Name, Target: st.Target, TargetGroup: st.TargetGroup, Activity: st.Activity, Value: st.Value,
				Parameters: st.Parameters, Inputs: st.Inputs, DeclRange: st.DeclRange}
			if st.Target != "" {
				ps.Nodes, _ = c.targetNodes(st.Target, st.TargetGroup, st.TargetRange)
			}
			c.checkActivity(w, st, ps.Nodes, param)
			for _, edge := range []struct {
				refs []StepRef
				to   *[]string
			}{{st.OnSuccess, &ps.OnSuccess}, {st.OnFailure, &ps.OnFailure}} {
				for _, r := range edge.refs {
					switch {
					case declared[r.Name] == nil:
						c.errorf(r.Range, "Reference to undeclared step", "Workflow %q has no step named %q.%s", w.Name, r.Name, suggestion(r.Name, slices.Sorted(maps.Keys(declared))))
					case r.Name == st.Name:
						c.errorf(r.Range, "Step follows itself", "Step %q names itself after it: a step runs once per execution.", st.Name)
					case !slices.Contains(*edge.to, r.Name):
						*edge.to = append(*edge.to, r.Name)
					}
				}
			}
			steps[w.Name] = append(steps[w.Name], ps)
		}
		c.checkStepCycles(w, steps[w.Name])
		for _, pc := range w.Preconditions {
			pp := &PlanPrecondition{Target: pc.Target, Condition: pc.Condition, ErrorMessage: pc.ErrorMessage, DeclRange: pc.DeclRange}
			nodes, ok := c.targetNodes(pc.Target, pc.TargetGroup, pc.TargetRange)
			pp.Nodes = nodes
			if ok {
				for _, name := range nodes {
					sc := scope{self: c.nodes[name], runtime: true, workflow: w, state: true}
					if v, ok := c.eval(pc.Condition, sc, param); ok && !v.Type().Equals(cty.Bool) && v.Type() != cty.DynamicPseudoType {
						c.errorf(pc.Condition.Range(), "Precondition is not true or false", "The condition of a precondition must be a bool, such as self.state == \"started\"; this gives %s.", v.Type().FriendlyName())
						break
					}
				}
			}
			pres[w.Name] = append(pres[w.Name], pp)
		}
	}
	c.checkInlineCycles()
	return steps, pres
}

// checkActivity checks a step's activity against its target's nodes.
func (c *checker) checkActivity(w *Workflow, st *Step, nodes []string, param map[string]cty.Value) {
	switch st.Activity {
	case CallOperation:
		for _, name := range nodes {
			n := c.nodes[name]
			if ops := c.operationsOf(n); !slices.Contains(ops, st.Value) {
				c.errorf(st.ActivityRange, "Unknown operation", "Step %q calls operation %q, which node %q (type %s) does not have.%s Its operations: %s.",
					st.Name, st.Value, n.Name, n.Type, suggestion(st.Value, ops), orNone(ops))
				return
			}
		}
		if st.Inputs != nil {
			for _, name := range nodes {
				c.eval(st.Inputs, scope{self: c.nodes[name], runtime: true, workflow: w}, param)
			}
		}
	case SetState:
		if !slices.Contains(InstanceStates, st.Value) {
			c.errorf(st.ActivityRange, "Unknown state", "Step %q sets state %q; a node instance is %s.%s", st.Name, st.Value, strings.Join(InstanceStates, ", "), suggestion(st.Value, InstanceStates))
		}
	case Delegate:
		if !slices.Contains(DelegateWorkflows, st.Value) {
			c.errorf(st.ActivityRange, "Unknown built-in workflow", "Step %q delegates to %q; a step delegates to %s.%s", st.Name, st.Value, strings.Join(DelegateWorkflows, ", "), suggestion(st.Value, DelegateWorkflows))
		}
	case Inline:
		iw := c.workflows[st.Value]
		if iw == nil {
			if st.Value != "" {
				c.errorf(st.ActivityRange, "Reference to undeclared workflow", "There is no workflow named %q.%s", st.Value, suggestion(st.Value, slices.Sorted(maps.Keys(c.workflows))))
			}
			return
		}
		raw := cty.EmptyObjectVal
		if st.Parameters != nil {
			v, ok := c.eval(st.Parameters, scope{workflow: w}, param)
			if !ok {
				return
			}
			raw = v
		}
		c.conform(raw, st.Parameters, st.DeclRange, givenParameters(iw), fmt.Sprintf("workflow %q", iw.Name), "parameter")
	}
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// checkStepCycles refuses a cycle through on_success and on_failure (the
// first one, at the step it comes back to).
func (c *checker) checkStepCycles(w *Workflow, steps []*PlanStep) {
	byName := map[string]*PlanStep{}
	var roots []string
	for _, s := range steps {
		byName[s.Name] = s
		roots = append(roots, s.Name)
	}
	findCycles(roots, func(name string) []graphEdge {
		var out []graphEdge
		for _, next := range slices.Concat(byName[name].OnSuccess, byName[name].OnFailure) {
			if n := byName[next]; n != nil {
				out = append(out, graphEdge{next, n.DeclRange})
			}
		}
		return out
	}, func(cycle []string, closing graphEdge) bool {
		c.errorf(closing.rng, "Cycle in workflow steps", "The steps of workflow %q run in a circle: %s. A step runs once per execution; break the cycle.", w.Name, strings.Join(cycle, " -> "))
		return false
	})
}

// checkInlineCycles refuses workflows that inline each other (the first
// cycle, at the inline that closes it).
func (c *checker) checkInlineCycles() {
	edges := map[string][]graphEdge{}
	var roots []string
	for _, w := range c.bp.Workflows {
		roots = append(roots, w.Name)
		for _, st := range w.Steps {
			if st.Activity == Inline && c.workflows[st.Value] != nil {
				edges[w.Name] = append(edges[w.Name], graphEdge{st.Value, st.ActivityRange})
			}
		}
	}
	findCycles(roots, func(name string) []graphEdge { return edges[name] }, func(cycle []string, closing graphEdge) bool {
		c.errorf(closing.rng, "Workflows inline each other", "Inlining runs in a circle: %s; it would never end.", strings.Join(cycle, " -> "))
		return false
	})
}

// StepParameters are an inline step's parameters for its workflow,
// evaluated with the running workflow's parameters.
func (p *Plan) StepParameters(st *PlanStep, params map[string]cty.Value) (cty.Value, error) {
	if st.Parameters == nil {
		return cty.EmptyObjectVal, nil
	}
	v, err := p.evalRuntime(st.Parameters, RuntimeScope{Params: params})
	if err != nil {
		return cty.NilVal, fmt.Errorf("parameters of step %s: %w", st.Name, err)
	}
	return v, nil
}

// StepInputs are a call_operation step's inputs on one instance.
func (p *Plan) StepInputs(st *PlanStep, rs RuntimeScope) (cty.Value, error) {
	if st.Inputs == nil {
		return cty.EmptyObjectVal, nil
	}
	v, err := p.evalRuntime(st.Inputs, rs)
	if err != nil {
		return cty.NilVal, fmt.Errorf("inputs of step %s: %w", st.Name, err)
	}
	return v, nil
}

// PreconditionHolds evaluates a precondition on one instance (rs.Self,
// its state included).
func (p *Plan) PreconditionHolds(pc *PlanPrecondition, rs RuntimeScope) (bool, error) {
	v, err := p.evalRuntime(pc.Condition, rs)
	if err != nil {
		return false, err
	}
	v, _ = v.Unmark()
	if !v.IsKnown() || v.IsNull() || !v.Type().Equals(cty.Bool) {
		return false, fmt.Errorf("the condition is not true or false")
	}
	return v.True(), nil
}
