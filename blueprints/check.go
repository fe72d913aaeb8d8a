package blueprints

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Catalog lists the implementations orch and its plugins provide, so a
// blueprint naming one that does not exist is refused before anything runs.
// A nil Catalog skips these checks.
type Catalog struct {
	Workflows   []string // workflow `uses`
	Operations  []string // operation `implementation`
	PolicyTypes []string // policy_type `uses`
	// Formats are the string formats plugins check (`format = "NAME"` on
	// a property or parameter), beside the built-in duration and regex.
	Formats map[string]func(string) error
	// MeshServiceTypes are the node types whose nodes are mesh services (a
	// calisti source's node must be of one).
	MeshServiceTypes []string
}

// SensitiveMark marks values derived from sensitive inputs; they are
// redacted wherever values are shown or stored.
const SensitiveMark = "sensitive"

// Validate checks a decoded blueprint: references, types, cycles, duplicates
// and implementations. Inputs without a default are unknown, so everything
// that depends on them is type-checked but not evaluated.
func Validate(bp *Blueprint, cat *Catalog) hcl.Diagnostics {
	_, diags := analyze(bp, cat, nil)
	return diags
}

// ValidatePlan is Validate returning the plan too (nil when there are
// errors): inputs without a default are unknown values in it.
func ValidatePlan(bp *Blueprint, cat *Catalog) (*Plan, hcl.Diagnostics) {
	return analyze(bp, cat, nil)
}

// Resolve validates the blueprint and evaluates it with the given input
// values into a Plan. Missing required inputs and unknown inputs are errors.
func Resolve(bp *Blueprint, cat *Catalog, inputs map[string]cty.Value) (*Plan, hcl.Diagnostics) {
	if inputs == nil {
		inputs = map[string]cty.Value{}
	}
	return analyze(bp, cat, inputs)
}

type checker struct {
	bp    *Blueprint
	cat   *Catalog
	diags hcl.Diagnostics

	inputs      map[string]*Input
	nodeTypes   map[string]*NodeType
	nodes       map[string]*Node
	workflows   map[string]*Workflow
	policyTypes map[string]*PolicyType
	eff         map[string]*effectiveType
	relTypes    map[string]*RelationshipType
	relEff      map[string]*effectiveRelType
	groups      map[string]*Group
	groupOf     map[string]*Group // by member node

	inputVals map[string]cty.Value
	nodeVals  map[string]cty.Value
	roots     map[string]cty.Value // workflow and policy_type objects
}

type effectiveType struct {
	chain  []string // most derived first
	props  []*Property
	byName map[string]*Property
	ops    map[string]*Operation
}

func (c *checker) add(d ...*hcl.Diagnostic) { c.diags = append(c.diags, d...) }

func (c *checker) errorf(subject hcl.Range, summary, detail string, args ...any) {
	c.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: subject.Ptr()})
}

func analyze(bp *Blueprint, cat *Catalog, given map[string]cty.Value) (*Plan, hcl.Diagnostics) {
	c := &checker{bp: bp, cat: cat, nodeVals: map[string]cty.Value{}}
	c.replaceBuiltinWorkflows()
	c.inputs = indexNamed(c, bp.Inputs, func(i *Input) (string, hcl.Range) { return i.Name, i.DeclRange }, "input")
	c.nodeTypes = indexNamed(c, bp.NodeTypes, func(t *NodeType) (string, hcl.Range) { return t.Name, t.DeclRange }, "node type")
	c.nodes = indexNamed(c, bp.Nodes, func(n *Node) (string, hcl.Range) { return n.Name, n.DeclRange }, "node")
	c.workflows = indexNamed(c, c.bp.Workflows, func(w *Workflow) (string, hcl.Range) { return w.Name, w.DeclRange }, "workflow")
	c.policyTypes = indexNamed(c, bp.PolicyTypes, func(t *PolicyType) (string, hcl.Range) { return t.Name, t.DeclRange }, "policy type")
	indexNamed(c, bp.Policies, func(p *Policy) (string, hcl.Range) { return p.Name, p.DeclRange }, "policy")
	indexNamed(c, bp.Outputs, func(o *Output) (string, hcl.Range) { return o.Name, o.DeclRange }, "output")
	sources := indexNamed(c, bp.MetricSources, func(s *Source) (string, hcl.Range) { return s.Name, s.DeclRange }, "source")
	c.relTypes = indexNamed(c, bp.RelationshipTypes, func(t *RelationshipType) (string, hcl.Range) { return t.Name, t.DeclRange }, "relationship type")
	c.groups = indexNamed(c, bp.Groups, func(g *Group) (string, hcl.Range) { return g.Name, g.DeclRange }, "group")
	for _, g := range bp.Groups {
		if _, clash := c.nodes[g.Name]; clash && c.groups[g.Name] == g {
			c.errorf(g.DeclRange, "Group named like a node", "Group %q has the name of a node; scale names one or the other, so they must differ.", g.Name)
		}
	}

	c.resolveNodeTypes()
	c.resolveRelationshipTypes()
	c.checkNodes()
	c.checkTopology()
	c.checkRelationshipCycles()
	c.checkWorkflows()
	c.checkPolicyTypes()

	c.bindInputs(given)
	c.roots = c.staticRoots()
	c.evalNodes()
	steps, pres := c.checkSteps()
	plan := &Plan{Inputs: c.inputVals, Workflows: map[string]*PlanWorkflow{}, Outputs: map[string]cty.Value{},
		roots: c.roots, nodeVals: c.nodeVals, outputs: map[string]*runtimeExpr{}}
	for _, g := range bp.Groups {
		if c.groups[g.Name] == g {
			plan.Groups = append(plan.Groups, &PlanGroup{Name: g.Name, Members: g.Members, Instances: g.Instances})
		}
	}
	for _, in := range bp.Inputs {
		_, given := given[in.Name]
		plan.InputDecls = append(plan.InputDecls, &PlanInput{Name: in.Name, Description: in.Description, Sensitive: in.Sensitive, Defaulted: !given && in.HasDefault})
	}
	for _, n := range bp.Nodes {
		if pn := c.planNode(n); pn != nil {
			plan.Nodes = append(plan.Nodes, pn)
		}
	}
	for _, w := range c.bp.Workflows {
		pw := c.planWorkflow(w)
		pw.Steps, pw.Preconditions = steps[w.Name], pres[w.Name]
		plan.Workflows[w.Name] = pw
	}
	for _, p := range bp.Policies {
		if pp := c.planPolicy(p); pp != nil {
			plan.Policies = append(plan.Policies, pp)
		}
	}
	for _, s := range bp.MetricSources {
		if sources[s.Name] == s {
			plan.MetricSources = append(plan.MetricSources, c.planSource(s))
		}
	}
	for _, o := range bp.Outputs {
		if o.Value == nil {
			continue
		}
		if v, ok := c.eval(o.Value, scope{runtime: true}); ok {
			if o.Sensitive {
				v = v.Mark(SensitiveMark) // shown and stored redacted
			}
			plan.Outputs[o.Name] = v
			plan.outputs[o.Name] = &runtimeExpr{expr: o.Value, runtime: readsRuntime(o.Value), sensitive: o.Sensitive}
		}
	}
	if c.diags.HasErrors() {
		return nil, c.diags
	}
	return plan, c.diags
}

// replaceBuiltinWorkflows drops the built-in workflows the blueprint
// declares its own of (checked on a copy: the blueprint is not changed);
// install and uninstall may not be replaced.
func (c *checker) replaceBuiltinWorkflows() {
	own := map[string]*Workflow{}
	for _, w := range c.bp.Workflows {
		if !w.Builtin {
			own[w.Name] = w
		}
	}
	var kept []*Workflow
	for _, w := range c.bp.Workflows {
		if w.Builtin && own[w.Name] != nil {
			if contains(ReservedWorkflows, w.Name) {
				c.errorf(own[w.Name].DeclRange, "Reserved workflow name", "Workflow %q is built in: orch deploy and undeploy run it. Give yours another name.", w.Name)
			}
			continue
		}
		kept = append(kept, w)
	}
	if len(kept) != len(c.bp.Workflows) {
		cp := *c.bp
		cp.Workflows = kept
		c.bp = &cp
	}
}

// indexNamed builds a name index and reports duplicates (across all files).
func indexNamed[T any](c *checker, items []T, key func(T) (string, hcl.Range), kind string) map[string]T {
	out := make(map[string]T, len(items))
	first := make(map[string]hcl.Range, len(items))
	for _, it := range items {
		name, rng := key(it)
		if prev, ok := first[name]; ok {
			c.errorf(rng, fmt.Sprintf("Duplicate %s %q", kind, name),
				"A %s named %q was already declared at %s. Names must be unique within a blueprint and its imports.", kind, name, prev)
			continue
		}
		first[name] = rng
		out[name] = it
	}
	return out
}

// suggestion returns ` Did you mean "x"?` for the closest candidate, or "".
func suggestion(name string, candidates []string) string {
	best, bestDist := "", 4
	for _, cand := range candidates {
		d := levenshtein.Distance(name, cand, nil)
		if d < bestDist || (d == bestDist && cand < best) {
			best, bestDist = cand, d
		}
	}
	if best == "" || bestDist >= len(name) {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func (c *checker) resolveNodeTypes() {
	c.eff = map[string]*effectiveType{}
	var resolve func(name string, visiting map[string]bool) *effectiveType
	resolve = func(name string, visiting map[string]bool) *effectiveType {
		if e, ok := c.eff[name]; ok {
			return e
		}
		nt := c.nodeTypes[name]
		if nt == nil || visiting[name] {
			return nil
		}
		visiting[name] = true
		defer delete(visiting, name)
		e := &effectiveType{byName: map[string]*Property{}, ops: map[string]*Operation{}}
		if nt.DerivedFrom != "" {
			parent := resolve(nt.DerivedFrom, visiting)
			switch {
			case parent != nil:
				e.chain = append(e.chain, parent.chain...)
				e.props = append(e.props, parent.props...)
				for k, v := range parent.byName {
					e.byName[k] = v
				}
				for k, v := range parent.ops {
					e.ops[k] = v
				}
			case c.nodeTypes[nt.DerivedFrom] == nil:
				c.errorf(nt.DerivedRange, "Unknown node type",
					"Node type %q derives from %q, which is not declared.%s", name, nt.DerivedFrom, suggestion(nt.DerivedFrom, slices.Sorted(maps.Keys(c.nodeTypes))))
			default:
				c.errorf(nt.DerivedRange, "Node type inheritance cycle",
					"Node type %q derives, directly or through other types, from itself. Remove one derived_from.", name)
			}
		}
		e.chain = append([]string{name}, e.chain...)
		for _, p := range nt.Properties {
			if _, inherited := e.byName[p.Name]; inherited {
				// An override replaces the inherited declaration in place.
				for i, old := range e.props {
					if old.Name == p.Name {
						e.props[i] = p
					}
				}
			} else {
				e.props = append(e.props, p)
			}
			e.byName[p.Name] = p
		}
		for _, op := range nt.Operations {
			e.ops[op.Name] = op
			c.checkImplementation(op)
		}
		c.eff[name] = e
		return e
	}
	for _, nt := range c.bp.NodeTypes {
		resolve(nt.Name, map[string]bool{})
	}
	// Property defaults of node types must be static and of the right type.
	for _, nt := range c.bp.NodeTypes {
		for _, p := range nt.Properties {
			c.staticDefault(p)
			c.checkDeclaration(p, nt.Builtin)
		}
	}
}

// staticDefault checks a property/parameter default that may not reference anything.
func (c *checker) staticDefault(p *Property) cty.Value {
	if p.Default == nil {
		return cty.NullVal(p.Type)
	}
	if len(p.Default.Variables()) > 0 {
		c.errorf(p.Default.Range(), "Default must be a constant", "The default of %q cannot refer to other values; only constants and functions are allowed here.", p.Name)
		return cty.DynamicVal
	}
	v, d := p.Default.Value(staticEvalContext())
	c.add(d...)
	if d.HasErrors() {
		return cty.DynamicVal
	}
	return c.convertTo(v, p.Type, p.Default.Range(), fmt.Sprintf("default of %q", p.Name))
}

func (c *checker) convertTo(v cty.Value, ty cty.Type, rng hcl.Range, what string) cty.Value {
	cv, err := convert.Convert(v, ty)
	if err != nil {
		c.errorf(rng, "Wrong type", "The %s must be %s: %s.", what, typeexpr.TypeString(ty), err)
		return cty.UnknownVal(ty)
	}
	return cv
}

func (c *checker) checkImplementation(op *Operation) {
	if c.cat == nil || op.Implementation == "" {
		return
	}
	for _, impl := range c.cat.Operations {
		if impl == op.Implementation {
			return
		}
	}
	c.errorf(op.ImplRange, "Unknown operation implementation",
		"No plugin provides the operation implementation %q.%s%s",
		op.Implementation, suggestion(op.Implementation, c.cat.Operations), known(c.cat.Operations))
}

func (c *checker) checkNodes() {
	for _, n := range c.bp.Nodes {
		if _, ok := c.eff[n.Type]; !ok {
			c.errorf(n.TypeRange, "Unknown node type",
				"Node %q has type %q, which is neither declared in the blueprint nor provided by a plugin.%s", n.Name, n.Type, suggestion(n.Type, slices.Sorted(maps.Keys(c.nodeTypes))))
		}
		contained := 0
		for _, r := range n.Relationships {
			if r.Kind == ContainedIn {
				contained++
			}
			if _, ok := c.nodes[r.Target]; !ok {
				c.errorf(r.Range, "Reference to undeclared node",
					"Node %q has %s node %q, which is not declared.%s", n.Name, r.Kind, r.Target, suggestion(r.Target, slices.Sorted(maps.Keys(c.nodes))))
			}
		}
		for _, op := range n.Operations {
			c.checkImplementation(op)
		}
	}
}

func (c *checker) checkRelationshipCycles() {
	var roots []string
	for _, n := range c.bp.Nodes {
		roots = append(roots, n.Name)
	}
	reported := map[string]bool{}
	findCycles(roots, func(name string) []graphEdge {
		var out []graphEdge
		if n := c.nodes[name]; n != nil {
			for _, r := range n.Relationships {
				if c.nodes[r.Target] != nil {
					out = append(out, graphEdge{r.Target, r.Range})
				}
			}
		}
		return out
	}, func(cycle []string, closing graphEdge) bool {
		if key := strings.Join(cycle, ">"); !reported[key] {
			reported[key] = true
			c.errorf(closing.rng, "Relationship cycle",
				"Nodes depend on each other in a cycle: %s. Install needs an order; remove one of these relationships.", strings.Join(cycle, " -> "))
		}
		return true
	})
}

// graphEdge is an edge of a graph the checker looks for cycles in: to a
// node, written at rng.
type graphEdge struct {
	to  string
	rng hcl.Range
}

// findCycles walks the graph depth first from each root in order and calls
// found with every cycle an edge closes (its nodes, the first again at the
// end) and that edge; found returns false to stop looking.
func findCycles(roots []string, edges func(string) []graphEdge, found func(cycle []string, closing graphEdge) bool) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, e := range edges(n) {
			switch color[e.to] {
			case white:
				if !visit(e.to) {
					return false
				}
			case grey:
				start := slices.Index(stack, e.to)
				if !found(append(slices.Clone(stack[start:]), e.to), e) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return true
	}
	for _, r := range roots {
		if color[r] == white && !visit(r) {
			return
		}
	}
}

func (c *checker) checkWorkflows() {
	for _, w := range c.bp.Workflows {
		for _, p := range w.Parameters {
			if p.Default != nil && len(p.Default.Variables()) == 0 {
				c.checkDeclaration(p, false)
			}
		}
		if c.cat == nil || w.Uses == "" || w.Builtin {
			continue
		}
		if !contains(c.cat.Workflows, w.Uses) {
			c.errorf(w.UsesRange, "Unknown workflow implementation",
				"Workflow %q uses %q, which no plugin provides.%s%s",
				w.Name, w.Uses, suggestion(w.Uses, c.cat.Workflows), known(c.cat.Workflows))
		}
	}
}

// known lists the implementations there are, for an error's detail.
func known(impls []string) string {
	if len(impls) == 0 {
		return " No plugin provides any."
	}
	return " Known implementations: " + strings.Join(impls, ", ") + "."
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *checker) checkPolicyTypes() {
	fns := ConditionFunctions(nil)
	for _, pt := range c.bp.PolicyTypes {
		if pt.Uses != "" && c.cat != nil && !contains(c.cat.PolicyTypes, pt.Uses) {
			c.errorf(pt.DeclRange, "Unknown policy type implementation",
				"Policy type %q uses %q, which orch does not provide.%s", pt.Name, pt.Uses, suggestion(pt.Uses, c.cat.PolicyTypes))
		}
		params := map[string]cty.Value{}
		for _, p := range pt.Parameters {
			c.staticDefault(p)
			c.checkDeclaration(p, pt.Builtin)
			params[p.Name] = cty.UnknownVal(p.Type)
		}
		paramObj := cty.ObjectVal(params)
		c.checkValidationDecls(pt, paramObj)
		for _, cond := range pt.Conditions {
			if cond.When == nil {
				continue
			}
			if !c.checkRefs(cond.When, scope{policyType: pt}) {
				continue
			}
			v, d := cond.When.Value(&hcl.EvalContext{
				Variables: map[string]cty.Value{"param": paramObj},
				Functions: fns,
			})
			c.add(d...)
			if d.HasErrors() {
				continue
			}
			if _, err := convert.Convert(v, cty.Bool); err != nil {
				c.errorf(cond.When.Range(), "Condition is not true or false",
					"The condition %q must evaluate to a bool, such as `mean(window(\"cpu\", \"30s\")) > param.threshold`; this expression gives %s.", cond.Name, v.Type().FriendlyName())
			}
		}
	}
}

// scope says which roots an expression may refer to.
type scope struct {
	self       *Node       // operation inputs of a node
	selfType   bool        // operation inputs of a node type
	policyType *PolicyType // `param.` in conditions
	event      bool        // `event.` and `values.` in trigger parameters
	// condition is the trigger's condition (nil: unknown), whose declared
	// values `values.NAME` may read.
	condition *Condition
	// runtime: runtime attributes may be read (operation inputs and
	// outputs, evaluated when they run).
	runtime bool
	// rel: `source` and `target` of a relationship operation; relType
	// for one a relationship type declares (the nodes are not known).
	rel     *relEnds
	relType bool
	// workflow: `param.` of a workflow's steps and preconditions; state:
	// `self.state` (a precondition's instance).
	workflow *Workflow
	state    bool
}

// relEnds are the nodes of a relationship.
type relEnds struct{ source, target *Node }

var allRoots = []string{"input", "node", "workflow", "policy_type", "self", "param", "event", "values", "source", "target"}

// EventAttributes are the attributes of `event` in trigger parameters: the
// metric that was applied when the condition fired.
var EventAttributes = []string{"node_id", "node_name", "deployment_id", "name", "path", "metric", "unit", "type", "host", "service", "time"}

// checkRefs checks every reference of expr; it reports false when one is bad,
// so the expression is not evaluated (its errors would only repeat).
func (c *checker) checkRefs(expr hcl.Expression, sc scope) bool {
	ok := true
	for _, trav := range expr.Variables() {
		if !c.checkTraversal(trav, sc) {
			ok = false
		}
	}
	return ok
}

func attrStep(trav hcl.Traversal, i int) (string, hcl.Range, bool) {
	if len(trav) <= i {
		return "", hcl.Range{}, false
	}
	switch s := trav[i].(type) {
	case hcl.TraverseAttr:
		return s.Name, s.SrcRange, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString(), s.SrcRange, true
		}
	}
	return "", trav[i].SourceRange(), false
}

func (c *checker) checkTraversal(trav hcl.Traversal, sc scope) bool {
	root := trav.RootName()
	rootRange := trav[0].SourceRange()
	allowed := []string{"input", "node", "workflow", "policy_type"}
	if sc.self != nil || sc.selfType {
		allowed = append(allowed, "self")
	}
	if sc.workflow != nil {
		allowed = append(allowed, "param")
	}
	if sc.policyType != nil {
		allowed = []string{"param"}
	}
	if sc.event {
		allowed = append(allowed, "event", "values")
	}
	if sc.rel != nil {
		allowed = append(allowed, "source", "target")
	}
	if !contains(allowed, root) {
		if contains(allRoots, root) {
			c.errorf(rootRange, "Reference not available here", "%q cannot be used in this expression; available here: %s.", root, strings.Join(allowed, ", "))
		} else {
			c.errorf(rootRange, "Unknown variable", "There is no variable named %q.%s Available here: %s.", root, suggestion(root, allowed), strings.Join(allowed, ", "))
		}
		return false
	}
	name, nameRange, hasName := attrStep(trav, 1)
	switch root {
	case "self":
		if sc.self != nil {
			return c.checkNodeAttr(sc.self, trav, 1, sc, true)
		}
		return c.checkInstanceAttr(trav, sc)
	case "source", "target":
		if sc.relType {
			return c.checkInstanceAttr(trav, sc)
		}
		n := sc.rel.source
		if root == "target" {
			n = sc.rel.target
		}
		if n == nil {
			return true
		}
		return c.checkNodeAttr(n, trav, 1, sc, true)
	case "event":
		if hasName && !contains(EventAttributes, name) {
			c.errorf(nameRange, "Unknown event attribute", "The triggering metric has no attribute %q.%s Its attributes: %s.", name, suggestion(name, EventAttributes), strings.Join(EventAttributes, ", "))
			return false
		}
		return true
	case "values":
		if cd := sc.condition; hasName && cd != nil && cd.Values != nil && !contains(cd.Values, name) {
			c.errorf(nameRange, "Unknown condition value", "Condition %q reports no value %q.%s Its values: %s.", cd.Name, name, suggestion(name, cd.Values), strings.Join(cd.Values, ", "))
			return false
		}
		return true
	}
	if !hasName {
		c.errorf(trav.SourceRange(), "Invalid reference", "A reference to %s must name one, such as %s.NAME.", root, root)
		return false
	}
	var known []string
	switch root {
	case "input":
		if _, ok := c.inputs[name]; ok {
			return true
		}
		known = slices.Sorted(maps.Keys(c.inputs))
	case "node":
		if n, ok := c.nodes[name]; ok {
			return c.checkNodeAttr(n, trav, 2, sc, false)
		}
		known = slices.Sorted(maps.Keys(c.nodes))
	case "workflow":
		if _, ok := c.workflows[name]; ok {
			return true
		}
		known = slices.Sorted(maps.Keys(c.workflows))
	case "policy_type":
		if _, ok := c.policyTypes[name]; ok {
			return true
		}
		known = slices.Sorted(maps.Keys(c.policyTypes))
	case "param":
		var params []*Property
		if sc.policyType != nil {
			params = sc.policyType.Parameters
		} else if sc.workflow != nil {
			params = sc.workflow.Parameters
		}
		for _, p := range params {
			if p.Name == name {
				return true
			}
			known = append(known, p.Name)
		}
	}
	kind := map[string]string{"input": "input", "node": "node", "workflow": "workflow", "policy_type": "policy type", "param": "parameter"}[root]
	c.errorf(nameRange, fmt.Sprintf("Reference to undeclared %s", kind), "There is no %s named %q.%s", kind, name, suggestion(name, known))
	return false
}

// checkNodeAttr checks the attribute path after a node reference:
// name, type, properties, properties.P, attributes.A, and for an instance
// (self, source, target) its id.
func (c *checker) checkNodeAttr(n *Node, trav hcl.Traversal, i int, sc scope, instance bool) bool {
	attr, rng, ok := attrStep(trav, i)
	if !ok {
		return true
	}
	names := []string{"name", "type", "properties", "attributes"}
	if instance {
		names = append(names, "id")
	}
	if instance && sc.state {
		names = append(names, "state")
	}
	switch {
	case attr == "attributes":
		return c.checkAttributes(n, rng, sc, instance)
	case attr == "properties":
	case contains(names, attr):
		return true
	default:
		c.errorf(rng, "Unsupported node attribute", "A node has the attributes %s, not %q.%s", strings.Join(names, ", "), attr, suggestion(attr, names))
		return false
	}
	prop, rng, ok := attrStep(trav, i+1)
	if !ok {
		return true
	}
	known := c.knownProperties(n)
	if known == nil || contains(known, prop) {
		return true
	}
	c.errorf(rng, "Reference to undeclared property", "Node %q has no property named %q.%s", n.Name, prop, suggestion(prop, known))
	return false
}

// checkInstanceAttr checks a reference to an instance whose node is not
// known here (self in a node type's operation, source and target in a
// relationship type's).
func (c *checker) checkInstanceAttr(trav hcl.Traversal, sc scope) bool {
	attr, rng, ok := attrStep(trav, 1)
	if !ok {
		return true
	}
	names := []string{"id", "name", "type", "properties", "attributes"}
	switch {
	case attr == "attributes" && !sc.runtime:
		return c.checkAttributes(nil, rng, sc, true)
	case contains(names, attr):
		return true
	}
	c.errorf(rng, "Unsupported node attribute", "An instance has the attributes %s, not %q.%s", strings.Join(names, ", "), attr, suggestion(attr, names))
	return false
}

// checkAttributes checks a read of runtime attributes: only where
// operations run (operation inputs, outputs), and of a node with several
// instances only through an instance (self, source, target).
func (c *checker) checkAttributes(n *Node, rng hcl.Range, sc scope, instance bool) bool {
	if !sc.runtime {
		c.errorf(rng, "Attributes not available here", "Runtime attributes are known only when operations run: read them in operation inputs or outputs, not here.")
		return false
	}
	if !instance && c.multiInstance(n, 0) {
		c.errorf(rng, "Ambiguous attribute", "Node %q can have several instances, so node.%s.attributes does not say whose attributes to read. Read them in a relationship operation (source.attributes, target.attributes), or give the node instances { max = 1 }.", n.Name, n.Name)
		return false
	}
	return true
}

// knownProperties lists the properties a node has: its type's schema, or the
// keys of a literal properties object when the type has no schema. nil means
// unknown (anything goes).
func (c *checker) knownProperties(n *Node) []string {
	if e := c.eff[n.Type]; e != nil && len(e.props) > 0 {
		out := make([]string, len(e.props))
		for i, p := range e.props {
			out[i] = p.Name
		}
		return out
	}
	obj, ok := n.Properties.(*hclsyntax.ObjectConsExpr)
	if n.Properties == nil {
		return []string{}
	}
	if !ok {
		return nil
	}
	var out []string
	for _, item := range obj.Items {
		if k := objectKey(item.KeyExpr); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func objectKey(expr hclsyntax.Expression) string {
	if kw := hcl.ExprAsKeyword(expr); kw != "" {
		return kw
	}
	v, d := expr.Value(nil)
	if d.HasErrors() || v.Type() != cty.String || !v.IsKnown() || v.IsNull() {
		return ""
	}
	return v.AsString()
}

// itemRange finds the range of key in a literal object, falling back to
// the whole expression; itemValueRange that of its value.
func itemRange(expr hcl.Expression, key string) hcl.Range {
	if item := objectItem(expr, key); item != nil {
		return item.KeyExpr.Range()
	}
	return expr.Range()
}

func itemValueRange(expr hcl.Expression, key string) hcl.Range {
	if item := objectItem(expr, key); item != nil {
		return item.ValueExpr.Range()
	}
	return expr.Range()
}

// objectItem is key's item in a literal object, or nil.
func objectItem(expr hcl.Expression, key string) *hclsyntax.ObjectConsItem {
	if obj, ok := expr.(*hclsyntax.ObjectConsExpr); ok {
		for i := range obj.Items {
			if objectKey(obj.Items[i].KeyExpr) == key {
				return &obj.Items[i]
			}
		}
	}
	return nil
}

func (c *checker) bindInputs(given map[string]cty.Value) {
	c.inputVals = make(map[string]cty.Value, len(c.bp.Inputs))
	for name := range given {
		if _, ok := c.inputs[name]; !ok {
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown input",
				Detail:   fmt.Sprintf("The blueprint declares no input named %q.%s", name, suggestion(name, slices.Sorted(maps.Keys(c.inputs)))),
			})
		}
	}
	for _, in := range c.bp.Inputs {
		v, ok := given[in.Name]
		switch {
		case ok:
			cv, err := convert.Convert(v, in.Type)
			if err != nil {
				c.errorf(in.DeclRange, "Invalid value for input", "Input %q must be %s: %s.", in.Name, typeexpr.TypeString(in.Type), err)
				cv = cty.UnknownVal(in.Type)
			}
			v = cv
		case in.HasDefault:
			v = in.Default
		case given != nil:
			c.errorf(in.DeclRange, "Missing required input", "Input %q has no default; give it with -i %s=VALUE or in an inputs file.", in.Name, in.Name)
			v = cty.UnknownVal(in.Type)
		default:
			v = cty.UnknownVal(in.Type)
		}
		if in.Sensitive {
			v = v.Mark(SensitiveMark)
		}
		c.inputVals[in.Name] = v
	}
}

func (c *checker) staticRoots() map[string]cty.Value {
	roots := map[string]cty.Value{}
	wf := map[string]cty.Value{}
	for _, w := range c.bp.Workflows {
		wf[w.Name] = cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(w.Name), "uses": cty.StringVal(w.Uses)})
	}
	roots["workflow"] = cty.ObjectVal(wf)
	pt := map[string]cty.Value{}
	for _, t := range c.bp.PolicyTypes {
		pt[t.Name] = cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(t.Name)})
	}
	roots["policy_type"] = cty.ObjectVal(pt)
	roots["input"] = cty.ObjectVal(c.inputVals)
	return roots
}

// eval evaluates expr with the variables it refers to. It reports false
// (and no value) when a reference is bad or evaluation failed.
func (c *checker) eval(expr hcl.Expression, sc scope, extra ...map[string]cty.Value) (cty.Value, bool) {
	if !c.checkRefs(expr, sc) {
		return cty.DynamicVal, false
	}
	vars := map[string]cty.Value{}
	nodes := map[string]cty.Value{}
	for _, trav := range expr.Variables() {
		switch root := trav.RootName(); root {
		case "node":
			name, _, _ := attrStep(trav, 1)
			if _, done := nodes[name]; done && !readsAttributes(trav, 2) {
				continue
			}
			if v, ok := c.nodeVals[name]; ok {
				nodes[name] = v
				if readsAttributes(trav, 2) {
					nodes[name] = withAttributes(v, "", cty.DynamicVal)
				}
			} else {
				nodes[name] = cty.DynamicVal
			}
		case "self":
			if sc.self != nil {
				vars["self"] = withAttributes(c.nodeVals[sc.self.Name], "", cty.DynamicVal)
				if sc.state {
					vars["self"] = withState(vars["self"], cty.UnknownVal(cty.String))
				}
			} else {
				vars["self"] = cty.DynamicVal
			}
		case "source", "target":
			vars[root] = cty.DynamicVal
			if sc.rel != nil {
				if n := map[string]*Node{"source": sc.rel.source, "target": sc.rel.target}[root]; n != nil {
					vars[root] = withAttributes(c.nodeVals[n.Name], "", cty.DynamicVal)
				}
			}
		case "event", "values":
			vars[root] = cty.DynamicVal
		default:
			if v, ok := c.roots[root]; ok {
				vars[root] = v
			}
		}
	}
	if len(nodes) > 0 {
		vars["node"] = cty.ObjectVal(nodes)
	}
	for _, m := range extra {
		for k, v := range m {
			vars[k] = v
		}
	}
	v, d := expr.Value(&hcl.EvalContext{Variables: vars, Functions: Functions()})
	c.add(d...)
	return v, !d.HasErrors()
}

// evalNodes evaluates node properties in reference order (a node's
// properties may use another node's), reporting reference cycles.
func (c *checker) evalNodes() {
	deps := map[string][]string{}
	for _, n := range c.bp.Nodes {
		if n.Properties == nil {
			continue
		}
		for _, trav := range n.Properties.Variables() {
			if trav.RootName() == "node" {
				if name, _, ok := attrStep(trav, 1); ok {
					deps[n.Name] = append(deps[n.Name], name)
				}
			}
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var visit func(n *Node) bool
	visit = func(n *Node) bool {
		switch color[n.Name] {
		case black:
			return true
		case grey:
			return false
		}
		color[n.Name] = grey
		ok := true
		for _, d := range deps[n.Name] {
			if dn := c.nodes[d]; dn != nil && !visit(dn) {
				if ok {
					c.errorf(n.Properties.Range(), "Reference cycle in node properties",
						"The properties of node %q depend, directly or through other nodes, on themselves (via node %q).", n.Name, d)
				}
				ok = false
			}
		}
		c.nodeVals[n.Name] = c.nodeValue(n, ok)
		color[n.Name] = black
		return true
	}
	for _, n := range c.bp.Nodes {
		if c.nodes[n.Name] == n {
			visit(n)
		}
	}
}

func (c *checker) nodeValue(n *Node, evaluate bool) cty.Value {
	props := cty.DynamicVal
	if evaluate {
		raw := cty.EmptyObjectVal
		var ok = true
		if n.Properties != nil {
			raw, ok = c.eval(n.Properties, scope{})
		}
		if ok {
			props = c.conform(raw, n.Properties, n.DeclRange, c.schema(n), fmt.Sprintf("node %q", n.Name), "property")
		}
	}
	return cty.ObjectVal(map[string]cty.Value{
		"name":       cty.StringVal(n.Name),
		"type":       cty.StringVal(n.Type),
		"properties": props,
	})
}

func (c *checker) schema(n *Node) []*Property {
	if e := c.eff[n.Type]; e != nil {
		return e.props
	}
	return nil
}

// conform checks an object value against a schema: unknown keys, missing
// required ones, defaults and types. With no schema any object is accepted.
func (c *checker) conform(v cty.Value, expr hcl.Expression, owner hcl.Range, schema []*Property, who, kind string) cty.Value {
	rng := owner
	if expr != nil {
		rng = expr.Range()
	}
	v, marks := v.Unmark()
	if v.IsNull() {
		v = cty.EmptyObjectVal
	}
	if !v.IsKnown() {
		return cty.DynamicVal.WithMarks(marks)
	}
	ty := v.Type()
	if !ty.IsObjectType() && !ty.IsMapType() {
		c.errorf(rng, "Wrong type", "The %s of %s must be an object, such as { name = \"value\" }.", kind+" values", who)
		return cty.DynamicVal
	}
	if schema == nil {
		return v.WithMarks(marks)
	}
	names := make([]string, len(schema))
	for i, p := range schema {
		names[i] = p.Name
	}
	out := map[string]cty.Value{}
	given := map[string]cty.Value{}
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		given[k.AsString()] = val
	}
	for k := range given {
		if !contains(names, k) {
			kr := owner
			if expr != nil {
				kr = itemRange(expr, k)
			}
			c.errorf(kr, fmt.Sprintf("Unsupported %s", kind), "%s has no %s named %q.%s Declared: %s.", capitalize(who), kind, k, suggestion(k, names), strings.Join(names, ", "))
		}
	}
	for _, p := range schema {
		val, ok := given[p.Name]
		switch {
		case ok:
			vr := owner
			if expr != nil {
				vr = itemRange(expr, p.Name)
			}
			out[p.Name] = c.convertTo(val, p.Type, vr, fmt.Sprintf("%s %q of %s", kind, p.Name, who))
			if expr != nil {
				vr = itemValueRange(expr, p.Name)
			}
			c.checkValue(p, out[p.Name], vr, fmt.Sprintf("%s %q of %s", kind, p.Name, who))
		case p.Default != nil:
			out[p.Name] = c.staticDefaultQuiet(p)
		case p.Required:
			c.errorf(owner, fmt.Sprintf("Missing required %s", kind), "%s needs the %s %q (%s), which has no default.", capitalize(who), kind, p.Name, typeexpr.TypeString(p.Type))
			out[p.Name] = cty.UnknownVal(p.Type)
		default:
			out[p.Name] = cty.NullVal(p.Type)
		}
	}
	return cty.ObjectVal(out).WithMarks(marks)
}

// staticDefaultQuiet evaluates a default already checked by staticDefault.
func (c *checker) staticDefaultQuiet(p *Property) cty.Value {
	v, d := p.Default.Value(staticEvalContext())
	if d.HasErrors() {
		return cty.UnknownVal(p.Type)
	}
	cv, err := convert.Convert(v, p.Type)
	if err != nil {
		return cty.UnknownVal(p.Type)
	}
	return cv
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
