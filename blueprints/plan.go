package blueprints

import (
	"cmp"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Plan is a blueprint resolved with its inputs: every value evaluated, every
// reference checked. Deployments store it (redacted) and run workflows from it.
type Plan struct {
	Inputs map[string]cty.Value
	// InputDecls are the inputs as declared, in order, with whether the
	// value is the default, for showing a deployment.
	InputDecls []*PlanInput
	Nodes      []*PlanNode
	Workflows  map[string]*PlanWorkflow
	Policies   []*PlanPolicy
	Groups     []*PlanGroup
	// MetricSources are the sources serve polls for the policies.
	MetricSources []*PlanSource
	// Outputs are the outputs as the plan evaluates them (runtime
	// attributes unknown); OutputValues evaluates them as they are now.
	Outputs map[string]cty.Value

	// What runtime evaluation needs: the roots, the nodes' values, the
	// outputs' expressions.
	roots    map[string]cty.Value
	nodeVals map[string]cty.Value
	outputs  map[string]*runtimeExpr
}

// PlanInput is an input of a resolved blueprint.
type PlanInput struct {
	Name        string
	Description string
	Sensitive   bool
	// Defaulted is true when no value was given: the default is used.
	Defaulted bool
}

// PlanNode is a node with evaluated properties and its effective operations
// (its own, then its type chain's).
type PlanNode struct {
	Name          string
	Type          string
	Types         []string // type chain, most derived first
	Properties    cty.Value
	Relationships []Relationship
	// Links are the relationships resolved, in the order of Relationships.
	Links      []*PlanRelationship
	Operations map[string]*PlanOperation
	// Instances are how many instances the node has per instance of its
	// host (or of its group, for a group's member that no other member
	// contains); Group the group it scales with ("": none); Host the node
	// it is contained in ("": none).
	Instances Instances
	Group     string
	Host      string
}

// PlanOperation is an operation with evaluated inputs.
type PlanOperation struct {
	Name string
	// Side is "source" or "target" for a relationship operation.
	Side           string
	Implementation string
	Inputs         cty.Value
	Timeout        time.Duration
	MaxRetries     int
	RetryInterval  time.Duration
	// expr is the inputs' expression; runtime says it reads runtime
	// attributes (or source, target), so OperationInputs evaluates it
	// again when the operation runs.
	expr    hcl.Expression
	runtime bool
}

// PlanWorkflow is a workflow with evaluated parameter defaults.
type PlanWorkflow struct {
	Name        string
	Uses        string
	Description string
	Parameters  []*PlanParameter
	Timeout     time.Duration
	// Steps and Preconditions are a workflow written in the blueprint.
	Steps         []*PlanStep
	Preconditions []*PlanPrecondition
	DeclRange     hcl.Range
}

// PlanParameter is a workflow parameter.
type PlanParameter struct {
	Name        string
	Description string
	Type        cty.Type
	Default     cty.Value
	HasDefault  bool
	Check       *ValueCheck
}

// PlanPolicy is a policy with its type resolved and properties conformed.
type PlanPolicy struct {
	Name       string
	Type       *PolicyType
	Targets    []string
	Properties cty.Value
	Triggers   []*Trigger
	// OnMissingData is what it does while its data is missing.
	OnMissingData MissingData
	MinHosts      int
	// InitialDelay is the start-up grace; nil: one window length.
	InitialDelay *time.Duration
	// DeclRange is the policy block's, for diagnostics of what compiles it.
	DeclRange hcl.Range
}

// Dependencies returns the names of the nodes n must be installed after.
func (n *PlanNode) Dependencies() []string {
	var out []string
	for _, r := range n.Relationships {
		if !contains(out, r.Target) {
			out = append(out, r.Target)
		}
	}
	return out
}

func (c *checker) planNode(n *Node) *PlanNode {
	if c.nodes[n.Name] != n {
		return nil // a duplicate, already reported
	}
	e := c.eff[n.Type]
	pn := &PlanNode{
		Name:          n.Name,
		Type:          n.Type,
		Properties:    c.nodeVals[n.Name].GetAttr("properties"),
		Relationships: n.Relationships,
		Operations:    map[string]*PlanOperation{},
	}
	ops := map[string]*Operation{}
	if e != nil {
		pn.Types = e.chain
		for k, v := range e.ops {
			ops[k] = v
		}
	}
	own := map[string]bool{}
	for _, op := range n.Operations {
		ops[op.Name] = op
		own[op.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		sc := scope{self: n, runtime: true, selfType: !own[name]}
		if po := c.planOperation(ops[name], sc); po != nil {
			pn.Operations[name] = po
		}
	}
	pn.Links = c.planLinks(n)
	pn.Instances = n.Instances
	pn.Host = hostOf(n)
	if g := c.groupOf[n.Name]; g != nil {
		pn.Group = g.Name
	}
	return pn
}

// planOperation evaluates an operation's inputs (runtime attributes are
// unknown now; OperationInputs reads them when it runs).
func (c *checker) planOperation(op *Operation, sc scope) *PlanOperation {
	inputs := cty.EmptyObjectVal
	if op.Inputs != nil {
		v, ok := c.eval(op.Inputs, sc)
		if !ok {
			return nil
		}
		if u, _ := v.Unmark(); !u.IsNull() && u.IsKnown() && !u.Type().IsObjectType() && !u.Type().IsMapType() {
			c.errorf(op.Inputs.Range(), "Wrong type", "Operation inputs must be an object, such as { command = [\"true\"] }.")
			return nil
		}
		inputs = v
	}
	po := &PlanOperation{
		Name:           op.Name,
		Side:           op.Side,
		Implementation: op.Implementation,
		Inputs:         inputs,
		Timeout:        op.Timeout,
		MaxRetries:     op.MaxRetries,
		RetryInterval:  op.RetryInterval,
		expr:           op.Inputs,
	}
	if op.Inputs != nil {
		po.runtime = readsRuntime(op.Inputs)
	}
	return po
}

func (c *checker) planWorkflow(w *Workflow) *PlanWorkflow {
	pw := &PlanWorkflow{Name: w.Name, Uses: w.Uses, Description: w.Description, Timeout: w.Timeout, DeclRange: w.DeclRange}
	for _, p := range w.Parameters {
		pp := &PlanParameter{Name: p.Name, Description: p.Description, Type: p.Type, Check: p.Check}
		if p.Default != nil {
			if v, ok := c.eval(p.Default, scope{}); ok {
				pp.Default = c.convertTo(v, p.Type, p.Default.Range(), fmt.Sprintf("default of parameter %q", p.Name))
				pp.HasDefault = true
			}
		}
		pw.Parameters = append(pw.Parameters, pp)
	}
	return pw
}

func (c *checker) planPolicy(p *Policy) *PlanPolicy {
	pt := c.policyTypes[p.Type]
	if pt == nil {
		c.errorf(p.TypeRange, "Unknown policy type", "Policy %q has type %q, which is neither declared in the blueprint nor built in.%s",
			p.Name, p.Type, suggestion(p.Type, slices.Sorted(maps.Keys(c.policyTypes))))
	}
	for i, t := range p.Targets {
		if _, ok := c.nodes[t]; !ok {
			c.errorf(p.TargetRanges[i], "Reference to undeclared node", "Policy %q targets node %q, which is not declared.%s", p.Name, t, suggestion(t, slices.Sorted(maps.Keys(c.nodes))))
		}
	}
	pp := &PlanPolicy{Name: p.Name, Type: pt, Targets: p.Targets, Triggers: p.Triggers,
		OnMissingData: p.OnMissingData, MinHosts: p.MinHosts, InitialDelay: p.InitialDelay, DeclRange: p.DeclRange}
	if pp.OnMissingData == "" {
		pp.OnMissingData = MissingHold
	}
	c.checkMissingData(p, pt)
	raw := cty.EmptyObjectVal
	ok := true
	if p.Properties != nil {
		raw, ok = c.eval(p.Properties, scope{})
	}
	if ok && pt != nil {
		before := len(c.diags)
		pp.Properties = c.conform(raw, p.Properties, p.DeclRange, nonNil(pt.Parameters), fmt.Sprintf("policy %q", p.Name), "property")
		if !c.diags[before:].HasErrors() {
			c.checkValidations(p, pt, pp.Properties)
			c.checkConditionsWith(p, pt, pp.Properties)
		}
	}
	for _, t := range p.Triggers {
		if pt != nil {
			var conds []string
			for _, cd := range pt.Conditions {
				conds = append(conds, cd.Name)
			}
			if !contains(conds, t.Condition) && t.Condition != MissingDataCondition {
				c.errorf(t.DeclRange, "Unknown condition", "Policy type %q has no condition named %q.%s Its conditions: %s.",
					pt.Name, t.Condition, suggestion(t.Condition, conds), strings.Join(conds, ", "))
			}
		}
		w := c.workflows[t.Workflow]
		if w == nil {
			if t.Workflow != "" {
				c.errorf(t.WorkflowRange, "Reference to undeclared workflow", "There is no workflow named %q.%s", t.Workflow, suggestion(t.Workflow, slices.Sorted(maps.Keys(c.workflows))))
			}
			continue
		}
		raw := cty.EmptyObjectVal
		ok := true
		if t.Parameters != nil {
			sc := scope{event: true}
			if pt != nil {
				for _, cd := range pt.Conditions {
					if cd.Name == t.Condition {
						sc.condition = cd
					}
				}
			}
			raw, ok = c.eval(t.Parameters, sc)
		}
		if !ok {
			continue
		}
		c.conform(raw, t.Parameters, t.DeclRange, givenParameters(w), fmt.Sprintf("workflow %q", w.Name), "parameter")
	}
	return pp
}

// givenParameters is the schema of the parameters a trigger or an inline
// step gives a workflow: those with a default need not be given.
func givenParameters(w *Workflow) []*Property {
	schema := make([]*Property, len(w.Parameters))
	for i, wp := range w.Parameters {
		cp := *wp
		if cp.Default != nil {
			cp.Default, cp.Required = nil, false
		}
		schema[i] = &cp
	}
	return nonNil(schema)
}

// nonNil turns a nil schema into an empty one: "no keys allowed", not "anything".
func nonNil(props []*Property) []*Property {
	if props == nil {
		return []*Property{}
	}
	return props
}

// Bind turns user-given parameters (strings, as on the command line) and
// defaults into the workflow's parameter values.
func (w *PlanWorkflow) Bind(given map[string]string) (map[string]cty.Value, error) {
	return w.BindValues(given, nil)
}

// BindValues binds parameters given as strings (a command line) and as
// typed values (a policy trigger's expression), converted to each
// parameter's type and checked, and the defaults of the rest.
func (w *PlanWorkflow) BindValues(given map[string]string, values map[string]cty.Value) (map[string]cty.Value, error) {
	out := map[string]cty.Value{}
	var names []string
	for _, p := range w.Parameters {
		names = append(names, p.Name)
	}
	for _, k := range slices.Concat(slices.Sorted(maps.Keys(given)), slices.Sorted(maps.Keys(values))) {
		if !contains(names, k) {
			return nil, fmt.Errorf("workflow %q has no parameter %q.%s", w.Name, k, suggestion(k, names))
		}
	}
	for _, p := range w.Parameters {
		v, typed := values[p.Name]
		raw, ok := given[p.Name]
		if typed || ok {
			var err error
			if typed {
				if v, err = convert.Convert(v, p.Type); err != nil {
					return nil, fmt.Errorf("parameter %q must be %s: %v", p.Name, typeexpr.TypeString(p.Type), err)
				}
			} else if v, err = ParseValue(raw, p.Type); err != nil {
				return nil, fmt.Errorf("parameter %q: %w", p.Name, err)
			}
			if msg := problem(p.Check, v, builtinFormat); msg != "" {
				return nil, fmt.Errorf("parameter %q: %s", p.Name, msg)
			}
			out[p.Name] = v
			continue
		}
		if !p.HasDefault {
			return nil, fmt.Errorf("workflow %q needs parameter %q (%s); give it with -p %s=VALUE", w.Name, p.Name, typeexpr.TypeString(p.Type), p.Name)
		}
		out[p.Name] = p.Default
	}
	return out, nil
}

// ParseValue converts a command-line string to ty: strings stay as they are
// ("+1" is a string, not a number), numbers and bools are converted, and
// collections are read as JSON or as HCL literals (`["db"]`, `{ port = 80 }`).
// A value of type any that starts with `{` or `[` is read as a literal too.
func ParseValue(raw string, ty cty.Type) (cty.Value, error) {
	trimmed := strings.TrimSpace(raw)
	literal := strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[")
	if ty == cty.String || (ty == cty.DynamicPseudoType && !literal) {
		return cty.StringVal(raw), nil
	}
	if ty.IsPrimitiveType() {
		v, err := convert.Convert(cty.StringVal(raw), ty)
		if err != nil {
			return cty.NilVal, fmt.Errorf("%q is not a valid %s", raw, typeexpr.TypeString(ty))
		}
		return v, nil
	}
	if ty != cty.DynamicPseudoType {
		if v, err := ctyjson.Unmarshal([]byte(raw), ty); err == nil {
			return v, nil
		}
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), "value", hcl.InitialPos)
	if !diags.HasErrors() {
		if len(expr.Variables()) > 0 {
			return cty.NilVal, fmt.Errorf("%q refers to variables; give a literal value, such as [\"a\"] or { a = 1 }", raw)
		}
		v, d := expr.Value(nil)
		if !d.HasErrors() {
			cv, err := convert.Convert(v, ty)
			if err != nil {
				return cty.NilVal, fmt.Errorf("%q is not a %s: %v", raw, typeexpr.TypeString(ty), err)
			}
			return cv, nil
		}
		diags = d
	}
	return cty.NilVal, fmt.Errorf("%q is neither JSON nor an HCL literal for %s: %s", raw, typeexpr.TypeString(ty), diags[0].Summary)
}

// Redacted is the text shown in place of a sensitive value.
const Redacted = "(sensitive)"

// GoValue converts a cty value to plain Go values (string, float64, int64,
// bool, []any, map[string]any, nil) for plugins and JSON. With redact,
// values marked sensitive become "(sensitive)"; without, they are unmarked.
func GoValue(v cty.Value, redact bool) any {
	if v == cty.NilVal {
		return nil
	}
	if v.IsMarked() {
		if redact && v.HasMark(SensitiveMark) {
			return Redacted
		}
		v, _ = v.Unmark()
	}
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return v.AsString()
	case ty == cty.Bool:
		return v.True()
	case ty == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			if i, acc := bf.Int64(); acc == big.Exact {
				return i
			}
		}
		f, _ := bf.Float64()
		return f
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		out := make([]any, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, GoValue(e, redact))
		}
		return out
	case ty.IsMapType() || ty.IsObjectType():
		out := make(map[string]any, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = GoValue(e, redact)
		}
		return out
	case ty.IsCapsuleType():
		return fmt.Sprintf("%v", v.EncapsulatedValue())
	}
	return nil
}

// SensitiveStrings are the texts of the parts of vs marked sensitive
// (strings as they are, numbers and bools as written), for scrubbing them
// out of what a plugin prints. Texts shorter than 3 characters are left
// out: replacing every "1" would garble output and hide nothing.
func SensitiveStrings(vs ...cty.Value) []string {
	var out []string
	for _, v := range vs {
		if v == cty.NilVal {
			continue
		}
		unmarked, paths := v.UnmarkDeepWithPaths()
		for _, pm := range paths {
			if _, ok := pm.Marks[SensitiveMark]; !ok {
				continue
			}
			leaf, err := pm.Path.Apply(unmarked)
			if err != nil {
				continue
			}
			_ = cty.Walk(leaf, func(_ cty.Path, x cty.Value) (bool, error) {
				if x.IsNull() || !x.IsKnown() || !x.Type().IsPrimitiveType() {
					return true, nil
				}
				text := display(x)
				if x.Type() == cty.String {
					text = x.AsString()
				}
				if len(text) >= 3 && !slices.Contains(out, text) {
					out = append(out, text)
				}
				return true, nil
			})
		}
	}
	return out
}

// GoMap is GoValue for an object, always returning a map.
func GoMap(v cty.Value, redact bool) map[string]any {
	if m, ok := GoValue(v, redact).(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// InputValue converts a command-line string for the blueprint's input name.
func InputValue(bp *Blueprint, name, raw string) (cty.Value, error) {
	in := bp.Input(name)
	if in == nil {
		var names []string
		for _, i := range bp.Inputs {
			names = append(names, i.Name)
		}
		return cty.NilVal, fmt.Errorf("the blueprint declares no input %q.%s", name, suggestion(name, names))
	}
	return in.Parse(raw)
}

// Parse converts a command-line string (or an environment variable's) for
// the input. A sensitive input's error does not show the value.
func (in *Input) Parse(raw string) (cty.Value, error) {
	v, err := ParseValue(raw, in.Type)
	if err != nil && in.Sensitive {
		return v, fmt.Errorf("the value is not a valid %s (not shown: the input is sensitive)", typeexpr.TypeString(in.Type))
	}
	return v, err
}

// ReadInputsFile reads input values from an HCL or JSON file of attributes
// (`name = value`), as Terraform's .tfvars.
func ReadInputsFile(filename string, src []byte) (map[string]cty.Value, *hcl.File, hcl.Diagnostics) {
	f, diags := parseAny(filename, src)
	if diags.HasErrors() {
		return nil, f, diags
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	out := map[string]cty.Value{}
	for name, attr := range attrs {
		v, d := attr.Expr.Value(staticEvalContext())
		diags = append(diags, d...)
		if !d.HasErrors() {
			out[name] = v
		}
	}
	return out, f, diags
}

// checkMissingData checks that on_missing_data has what it fires: the
// policy's trigger "missing_data" for "trigger", a condition that scales
// up (with a trigger) for "scale_up".
func (c *checker) checkMissingData(p *Policy, pt *PolicyType) {
	var missing *Trigger
	for _, t := range p.Triggers {
		if t.Condition == MissingDataCondition {
			missing = t
		}
	}
	switch {
	case p.OnMissingData == MissingTrigger && missing == nil:
		c.errorf(p.OnMissingDataRange, "Missing trigger", "Policy %q has on_missing_data = \"trigger\" but no `trigger %q { workflow = ... }` block naming the workflow to run while its data is missing.", p.Name, MissingDataCondition)
	case p.OnMissingData != MissingTrigger && missing != nil:
		c.errorf(missing.DeclRange, "Trigger never fires", "The trigger %q runs only with on_missing_data = \"trigger\"; policy %q has on_missing_data = %q.", MissingDataCondition, p.Name, cmp.Or(p.OnMissingData, MissingHold))
	}
	if p.OnMissingData != MissingScaleUp || pt == nil {
		return
	}
	up := ""
	for _, cd := range pt.Conditions {
		if cd.Direction == "up" {
			up = cd.Name
		}
	}
	if up == "" {
		if pt.Uses == "" {
			c.errorf(p.OnMissingDataRange, "No condition scales up", "Policy %q has on_missing_data = \"scale_up\", but no condition of policy type %q says `direction = \"up\"`.", p.Name, pt.Name)
		}
		return // a built-in type whose direction depends on its parameters: checked when it is compiled
	}
	for _, t := range p.Triggers {
		if t.Condition == up {
			return
		}
	}
	c.errorf(p.OnMissingDataRange, "No trigger to scale up", "Policy %q has on_missing_data = \"scale_up\", which fires condition %q, but the policy has no `trigger %q` block.", p.Name, up, up)
}
