package blueprints

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// effectiveRelType is a relationship type with its chain resolved.
type effectiveRelType struct {
	chain []string              // most derived first
	kind  string                // contained_in, connected_to or depends_on
	ops   map[string]*Operation // by "side.name"
}

// resolveRelationshipTypes resolves derived_from chains of relationship
// types: every type derives from a built-in one, whose kind it has.
func (c *checker) resolveRelationshipTypes() {
	c.relEff = map[string]*effectiveRelType{}
	var resolve func(name string, visiting map[string]bool) *effectiveRelType
	resolve = func(name string, visiting map[string]bool) *effectiveRelType {
		if e, ok := c.relEff[name]; ok {
			return e
		}
		rt := c.relTypes[name]
		if rt == nil || visiting[name] {
			return nil
		}
		visiting[name] = true
		defer delete(visiting, name)
		e := &effectiveRelType{kind: DependsOn, ops: map[string]*Operation{}}
		parentName := rt.DerivedFrom
		if parentName == "" && name != DependsOnType {
			parentName = DependsOnType
		}
		if parentName != "" {
			parent := resolve(parentName, visiting)
			switch {
			case parent != nil:
				e.chain = slices.Clone(parent.chain)
				e.kind = parent.kind
				maps.Copy(e.ops, parent.ops)
			case c.relTypes[parentName] == nil:
				c.errorf(rt.DerivedRange, "Unknown relationship type",
					"Relationship type %q derives from %q, which is not declared.%s", name, parentName, suggestion(parentName, slices.Sorted(maps.Keys(c.relTypes))))
			default:
				c.errorf(rt.DerivedRange, "Relationship type inheritance cycle",
					"Relationship type %q derives, directly or through other types, from itself. Remove one derived_from.", name)
			}
		}
		e.chain = append([]string{name}, e.chain...)
		switch name {
		case ContainedInType:
			e.kind = ContainedIn
		case ConnectedToType:
			e.kind = ConnectedTo
		}
		for _, op := range rt.Operations {
			e.ops[op.Side+"."+op.Name] = op
			c.checkImplementation(op)
		}
		c.relEff[name] = e
		return e
	}
	for _, rt := range c.bp.RelationshipTypes {
		resolve(rt.Name, map[string]bool{})
	}
}

// checkTopology checks what relationships, instances and groups say
// beyond their syntax: relationship types exist and agree with the
// attribute used, a node has one host, groups name nodes once.
func (c *checker) checkTopology() {
	c.groupOf = map[string]*Group{}
	for _, n := range c.bp.Nodes {
		hosts := 0
		for i := range n.Relationships {
			r := &n.Relationships[i]
			e := c.relEff[r.Type]
			if e == nil {
				c.errorf(r.TypeRange, "Unknown relationship type", "Node %q has a relationship of type %q, which is not declared.%s",
					n.Name, r.Type, suggestion(r.Type, slices.Sorted(maps.Keys(c.relTypes))))
				continue
			}
			r.Kind = e.kind
			if r.Kind == ContainedIn {
				if hosts++; hosts > 1 {
					c.errorf(r.Range, "Several hosts", "Node %q is contained in more than one node; an instance runs in one host.", n.Name)
				}
				if r.ConnectionType != "" {
					c.errorf(r.ConnectionTypeRange, "connection_type on contained_in", "An instance is contained in its own host instance; connection_type applies to other relationships.")
				}
			}
			for _, op := range r.Operations {
				c.checkImplementation(op)
			}
		}
	}
	for _, g := range c.bp.Groups {
		if c.groups[g.Name] != g {
			continue // a duplicate, already reported
		}
		for i, m := range g.Members {
			n := c.nodes[m]
			if n == nil {
				c.errorf(g.MemberRanges[i], "Reference to undeclared node", "Group %q has member %q, which is not a declared node.%s", g.Name, m, suggestion(m, slices.Sorted(maps.Keys(c.nodes))))
				continue
			}
			if other := c.groupOf[m]; other != nil {
				c.errorf(g.MemberRanges[i], "Node in two groups", "Node %q is already a member of group %q; a node scales with one group.", m, other.Name)
				continue
			}
			c.groupOf[m] = g
		}
	}
	for _, g := range c.bp.Groups {
		for i, m := range g.Members {
			n := c.nodes[m]
			if n == nil || c.groupOf[m] != g {
				continue
			}
			if h := hostOf(n); h != "" && c.groupOf[h] != g {
				c.errorf(g.MemberRanges[i], "Group member outside its host's group",
					"Node %q is contained in %q, which is not a member of group %q. A group scales whole hosts with what they contain: add node.%s to its members, or leave %q out.", m, h, g.Name, h, m)
			}
		}
	}
}

// hostOf is the node n is contained in, or "".
func hostOf(n *Node) string {
	for _, r := range n.Relationships {
		if r.Kind == ContainedIn {
			return r.Target
		}
	}
	return ""
}

// multiInstance reports whether node n can have more than one instance:
// its own max, its group's, or its host's.
func (c *checker) multiInstance(n *Node, depth int) bool {
	if n == nil || depth > len(c.nodes) {
		return false
	}
	if n.Instances.Max != 1 {
		return true
	}
	if g := c.groupOf[n.Name]; g != nil && g.Instances.Max != 1 {
		return true
	}
	return c.multiInstance(c.nodes[hostOf(n)], depth+1)
}

// readsAttributes reports whether trav reads `.attributes` at step i.
func readsAttributes(trav hcl.Traversal, i int) bool {
	name, _, ok := attrStep(trav, i)
	return ok && name == "attributes"
}

// withAttributes is a node's value as an instance of it: its id and
// runtime attributes beside name, type and properties.
func withAttributes(node cty.Value, id string, attrs cty.Value) cty.Value {
	if node == cty.NilVal || !node.Type().IsObjectType() {
		return cty.DynamicVal
	}
	m := node.AsValueMap()
	m["attributes"] = attrs
	m["id"] = cty.UnknownVal(cty.String)
	if id != "" {
		m["id"] = cty.StringVal(id)
	}
	return cty.ObjectVal(m)
}

// withState is an instance's value with its state.
func withState(inst, state cty.Value) cty.Value {
	if !inst.Type().IsObjectType() {
		return inst
	}
	m := inst.AsValueMap()
	m["state"] = state
	return cty.ObjectVal(m)
}

// PlanRelationship is a relationship of a node with its type resolved and
// its operations (the type chain's, then the block's own), by
// "side.name" ("source.establish").
type PlanRelationship struct {
	Kind           string
	Target         string
	Type           string
	Types          []string
	ConnectionType string
	Operations     map[string]*PlanOperation
}

// PlanGroup is a scaling group.
type PlanGroup struct {
	Name      string
	Members   []string
	Instances Instances
}

// planLinks resolves the relationships of n.
func (c *checker) planLinks(n *Node) []*PlanRelationship {
	out := make([]*PlanRelationship, 0, len(n.Relationships))
	for _, r := range n.Relationships {
		pr := &PlanRelationship{Kind: r.Kind, Target: r.Target, Type: r.Type, ConnectionType: r.ConnectionType, Operations: map[string]*PlanOperation{}}
		if pr.ConnectionType == "" {
			pr.ConnectionType = AllToAll
		}
		ops := map[string]*Operation{}
		own := map[string]bool{}
		if e := c.relEff[r.Type]; e != nil {
			pr.Types = e.chain
			maps.Copy(ops, e.ops)
		}
		for _, op := range r.Operations {
			ops[op.Side+"."+op.Name] = op
			own[op.Side+"."+op.Name] = true
		}
		ends := &relEnds{source: n, target: c.nodes[r.Target]}
		for _, key := range slices.Sorted(maps.Keys(ops)) {
			sc := scope{rel: ends, runtime: true, relType: !own[key]}
			if po := c.planOperation(ops[key], sc); po != nil {
				pr.Operations[key] = po
			}
		}
		out = append(out, pr)
	}
	return out
}

// RuntimeScope is what operation inputs and outputs read when they are
// evaluated as an execution runs: the instance an operation runs on (self),
// or the two ends of a relationship operation, and the runtime attributes
// of nodes that have one instance.
type RuntimeScope struct {
	Self           *InstanceValues
	Source, Target *InstanceValues
	// Attributes returns the runtime attributes of a node's instance
	// (validation made sure the node has at most one).
	Attributes func(node string) map[string]any
	// Params are a workflow's parameters, as param (its steps').
	Params map[string]cty.Value
}

// InstanceValues is a node instance as expressions see it.
type InstanceValues struct {
	ID, Node   string
	Attributes map[string]any
	// State is the instance's state, for a precondition ("": not shown).
	State string
}

// OperationInputs are op's inputs for the instance (or the pair) it runs
// on: evaluated again with the runtime attributes when they read any, the
// plan's value otherwise.
func (p *Plan) OperationInputs(op *PlanOperation, rs RuntimeScope) (cty.Value, error) {
	if op.expr == nil || !op.runtime {
		return op.Inputs, nil
	}
	v, err := p.evalRuntime(op.expr, rs)
	if err != nil {
		return cty.NilVal, fmt.Errorf("inputs of %s: %w", op.Name, err)
	}
	return v, nil
}

// WithInputs is op with its inputs given (evaluated already, kwargs over
// them): it is not evaluated again when it runs.
func (op *PlanOperation) WithInputs(inputs cty.Value) *PlanOperation {
	cp := *op
	cp.Inputs, cp.expr, cp.runtime = inputs, nil, false
	return &cp
}

// OutputValues evaluates the outputs with the runtime attributes as they
// are now (sensitive ones marked).
func (p *Plan) OutputValues(rs RuntimeScope) (map[string]cty.Value, error) {
	out := make(map[string]cty.Value, len(p.Outputs))
	var errs []string
	for name, v := range p.Outputs {
		o := p.outputs[name]
		if o == nil || !o.runtime {
			out[name] = v
			continue
		}
		nv, err := p.evalRuntime(o.expr, rs)
		if err != nil {
			errs = append(errs, fmt.Sprintf("output %s: %v", name, err))
			continue
		}
		if o.sensitive {
			nv = nv.Mark(SensitiveMark)
		}
		out[name] = nv
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// runtimeExpr is an expression the plan evaluates again when it runs.
type runtimeExpr struct {
	expr      hcl.Expression
	runtime   bool // it reads runtime attributes, source or target
	sensitive bool
}

func (p *Plan) evalRuntime(expr hcl.Expression, rs RuntimeScope) (cty.Value, error) {
	vars := map[string]cty.Value{}
	nodes := map[string]cty.Value{}
	instance := func(iv *InstanceValues) cty.Value {
		if iv == nil {
			return cty.DynamicVal
		}
		v := withAttributes(p.nodeVals[iv.Node], iv.ID, attributesValue(iv.Attributes))
		if iv.State != "" {
			v = withState(v, cty.StringVal(iv.State))
		}
		return v
	}
	if rs.Params != nil {
		vars["param"] = cty.ObjectVal(rs.Params)
	}
	for _, trav := range expr.Variables() {
		switch root := trav.RootName(); root {
		case "node":
			name, _, _ := attrStep(trav, 1)
			v, ok := p.nodeVals[name]
			if !ok {
				continue
			}
			if readsAttributes(trav, 2) {
				var attrs map[string]any
				if rs.Attributes != nil {
					attrs = rs.Attributes(name)
				}
				v = withAttributes(v, "", attributesValue(attrs))
			} else if _, done := nodes[name]; done {
				continue
			}
			nodes[name] = v
		case "self":
			vars["self"] = instance(rs.Self)
		case "source":
			vars["source"] = instance(rs.Source)
		case "target":
			vars["target"] = instance(rs.Target)
		default:
			if v, ok := p.roots[root]; ok {
				vars[root] = v
			}
		}
	}
	if len(nodes) > 0 {
		vars["node"] = cty.ObjectVal(nodes)
	}
	v, diags := expr.Value(&hcl.EvalContext{Variables: vars, Functions: Functions()})
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return v, nil
}

// attributesValue converts runtime attributes (as stored: JSON values) to
// an object.
func attributesValue(attrs map[string]any) cty.Value {
	if len(attrs) == 0 {
		return cty.EmptyObjectVal
	}
	data, err := json.Marshal(attrs)
	if err != nil {
		return cty.EmptyObjectVal
	}
	ty, err := ctyjson.ImpliedType(data)
	if err != nil {
		return cty.EmptyObjectVal
	}
	v, err := ctyjson.Unmarshal(data, ty)
	if err != nil {
		return cty.EmptyObjectVal
	}
	return v
}

// readsRuntime reports whether expr reads runtime attributes, source or
// target.
func readsRuntime(expr hcl.Expression) bool {
	for _, trav := range expr.Variables() {
		switch trav.RootName() {
		case "source", "target":
			return true
		case "self":
			if readsAttributes(trav, 1) {
				return true
			}
			if name, _, ok := attrStep(trav, 1); ok && name == "id" {
				return true
			}
		case "node":
			if readsAttributes(trav, 2) {
				return true
			}
		}
	}
	return false
}
