package blueprints

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Formats of string values every blueprint has; plugins add theirs through
// Catalog.Formats. "duration" is checked by ParseDuration and the bounds.
const (
	FormatDuration = "duration"
	FormatRegex    = "regex"
)

func checkRegex(s string) error {
	if _, err := regexp.Compile(s); err != nil {
		return fmt.Errorf("%q is not a regular expression: %s", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return nil
}

// builtinFormat returns the check of a built-in format.
func builtinFormat(name string) (func(string) error, bool) {
	switch name {
	case FormatRegex:
		return checkRegex, true
	case FormatDuration:
		return nil, true
	}
	return nil, false
}

// formatCheck returns the check of a named format, and whether there is one.
func (c *checker) formatCheck(name string) (func(string) error, bool) {
	if f, ok := builtinFormat(name); ok {
		return f, true
	}
	if c.cat != nil {
		if f, ok := c.cat.Formats[name]; ok {
			return f, true
		}
	}
	return nil, false
}

// formatNames lists the formats known, for "did you mean".
func (c *checker) formatNames() []string {
	names := []string{FormatDuration, FormatRegex}
	if c.cat != nil {
		names = append(names, slices.Sorted(maps.Keys(c.cat.Formats))...)
	}
	return names
}

// checkDeclaration checks a property's declared constraints: a format that
// exists, and a default that meets them.
func (c *checker) checkDeclaration(p *Property, builtin bool) {
	vc := p.Check
	if vc == nil {
		return
	}
	if _, ok := c.formatCheck(vc.Format); vc.Format != "" && !ok {
		// A built-in type file may name a plugin's format without that
		// plugin loaded: its values go unchecked. A user's typo is an error.
		if !builtin && c.cat != nil {
			c.errorf(vc.FormatRange, "Unknown format", "There is no format named %q.%s Known formats: %s.",
				vc.Format, suggestion(vc.Format, c.formatNames()), strings.Join(c.formatNames(), ", "))
		}
		vc.Format = ""
	}
	if p.Default == nil || len(p.Default.Variables()) > 0 {
		return
	}
	c.checkValue(p, c.staticDefaultQuiet(p), p.Default.Range(), fmt.Sprintf("default of %q", p.Name))
}

// checkValue checks a known value against the property's constraints; the
// diagnostic is on rng.
func (c *checker) checkValue(p *Property, v cty.Value, rng hcl.Range, who string) {
	detail := problem(p.Check, v, c.formatCheck)
	if detail == "" {
		return
	}
	if p.Description != "" {
		detail += " Hint: " + p.Description
	}
	c.errorf(rng, "Invalid value for "+p.Name, "The %s: %s", who, detail)
}

// problem says what is wrong with v for a check, or "", with the formats
// as a lookup (Bind has no catalog: its plugin formats are not checked
// there). A sensitive value is not shown.
func problem(vc *ValueCheck, v cty.Value, formats func(string) (func(string) error, bool)) string {
	if vc == nil || v == cty.NilVal {
		return ""
	}
	v, marks := v.Unmark()
	_, sensitive := marks[SensitiveMark]
	if !v.IsWhollyKnown() || v.IsNull() {
		return ""
	}
	show := func(x cty.Value) string {
		if sensitive {
			return Redacted
		}
		return display(x)
	}
	if len(vc.OneOf) > 0 {
		found := false
		for _, allowed := range vc.OneOf {
			if cv, err := convert.Convert(v, allowed.Type()); err == nil && cv.Equals(allowed).True() {
				found = true
				break
			}
		}
		if !found {
			names := make([]string, len(vc.OneOf))
			for i, a := range vc.OneOf {
				names[i] = display(a)
			}
			hint := ""
			if v.Type() == cty.String && !sensitive {
				var plain []string
				for _, a := range vc.OneOf {
					if a.Type() == cty.String {
						plain = append(plain, a.AsString())
					}
				}
				hint = suggestion(v.AsString(), plain)
			}
			return fmt.Sprintf("%s is not one of %s.%s", show(v), strings.Join(names, ", "), hint)
		}
	}
	var num float64
	hasNum := false
	switch {
	case vc.Format != "" && v.Type() == cty.String:
		s := v.AsString()
		if vc.Format == FormatDuration {
			d, err := parseDuration(s, vc.Minimum != nil && *vc.Minimum <= 0 && !vc.ExclusiveMinimum)
			if err != nil {
				if sensitive {
					return "the value is not a duration longer than zero"
				}
				return err.Error() + "."
			}
			num, hasNum = d.Seconds(), true
			break
		}
		check, ok := formats(vc.Format)
		if ok && check != nil {
			if err := check(s); err != nil {
				if sensitive {
					return "the value is not a " + vc.Format
				}
				return err.Error() + "."
			}
		}
	case v.Type() == cty.Number:
		num, _ = v.AsBigFloat().Float64()
		hasNum = true
	}
	if !hasNum {
		return ""
	}
	unit := ""
	if vc.Format == FormatDuration {
		unit = " seconds"
	}
	if vc.Minimum != nil && (num < *vc.Minimum || (vc.ExclusiveMinimum && num == *vc.Minimum)) {
		op := "at least"
		if vc.ExclusiveMinimum {
			op = "above"
		}
		return fmt.Sprintf("%s must be %s %g%s.", show(v), op, *vc.Minimum, unit)
	}
	if vc.Maximum != nil && (num > *vc.Maximum || (vc.ExclusiveMaximum && num == *vc.Maximum)) {
		op := "at most"
		if vc.ExclusiveMaximum {
			op = "below"
		}
		return fmt.Sprintf("%s must be %s %g%s.", show(v), op, *vc.Maximum, unit)
	}
	return ""
}

// display renders a primitive value as written in HCL.
func display(v cty.Value) string {
	switch {
	case v.Type() == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('g', -1)
	case v.Type() == cty.Bool:
		return fmt.Sprintf("%t", v.True())
	}
	return v.GoString()
}

// inferChecks gives the parameters of a policy type written in HCL the
// checks their use implies, where they declare none: a parameter passed as
// the duration of window() or services() is a duration, the pattern of
// services() a regex, the argument of percentile() in [0, 100], of ewma()
// in (0, 1]. A policy giving `throttle_delay = "2 minutes"` is then refused
// on that line, not when its condition is evaluated.
func inferChecks(pt *PolicyType) {
	byName := map[string]*Property{}
	for _, p := range pt.Parameters {
		byName[p.Name] = p
	}
	zero, hundred, one := 0.0, 100.0, 1.0
	imply := func(arg hclsyntax.Expression, vc ValueCheck) {
		st, ok := arg.(*hclsyntax.ScopeTraversalExpr)
		if !ok || st.Traversal.RootName() != "param" || len(st.Traversal) != 2 {
			return
		}
		attr, ok := st.Traversal[1].(hcl.TraverseAttr)
		if !ok {
			return
		}
		if p := byName[attr.Name]; p != nil && p.Check == nil {
			vc.FormatRange, vc.OneOfRange, vc.RangeRange = p.DeclRange, p.DeclRange, p.DeclRange
			p.Check = &vc
		}
	}
	for _, cond := range pt.Conditions {
		expr, ok := cond.When.(hclsyntax.Expression)
		if !ok {
			continue
		}
		hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
			call, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || len(call.Args) != 2 {
				return nil
			}
			switch call.Name {
			case "window":
				imply(call.Args[1], ValueCheck{Format: FormatDuration})
			case "services":
				imply(call.Args[0], ValueCheck{Format: FormatRegex})
				imply(call.Args[1], ValueCheck{Format: FormatDuration})
			case "percentile":
				imply(call.Args[1], ValueCheck{Minimum: &zero, Maximum: &hundred})
			case "ewma":
				imply(call.Args[1], ValueCheck{Minimum: &zero, ExclusiveMinimum: true, Maximum: &one})
			}
			return nil
		})
	}
}

// CooldownParameter is the policy-type parameter that sets the cooldown of
// every condition: a duration, "0s" for none.
const CooldownParameter = "cooldown_time"

// checkValidations evaluates a policy type's validation blocks with a
// policy's properties; a rule that is false is an error on the first
// property it reads that the policy sets (or on the policy).
func (c *checker) checkValidations(p *Policy, pt *PolicyType, props cty.Value) {
	props, _ = props.UnmarkDeep()
	if props == cty.NilVal || !props.IsWhollyKnown() || !props.Type().IsObjectType() {
		return
	}
	for _, val := range pt.Validations {
		v, d := val.Condition.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"param": props}, Functions: Functions()})
		if d.HasErrors() {
			c.add(d...)
			continue
		}
		if !v.IsKnown() || v.IsNull() || v.Type() != cty.Bool || v.True() {
			continue
		}
		subject := p.DeclRange
		if p.Properties != nil {
			subject = p.Properties.Range()
			for _, trav := range val.Condition.Variables() {
				if name, _, ok := attrStep(trav, 1); ok && hasItem(p.Properties, name) {
					subject = itemRange(p.Properties, name)
					break
				}
			}
		}
		c.errorf(subject, "Invalid policy properties", "Policy %q: %s (a rule of policy type %q, at %s)", p.Name, val.ErrorMessage, pt.Name, val.DeclRange)
	}
}

// hasItem reports whether a literal object sets key.
func hasItem(expr hcl.Expression, key string) bool { return objectItem(expr, key) != nil }

// checkValidationDecls checks the rules of a policy type: they may read only
// its parameters, and must give a bool.
func (c *checker) checkValidationDecls(pt *PolicyType, params cty.Value) {
	for _, val := range pt.Validations {
		if !c.checkRefs(val.Condition, scope{policyType: pt}) {
			continue
		}
		v, d := val.Condition.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"param": params}, Functions: Functions()})
		c.add(d...)
		if d.HasErrors() {
			continue
		}
		if _, err := convert.Convert(v, cty.Bool); err != nil {
			c.errorf(val.Condition.Range(), "Validation is not true or false", "A validation condition must evaluate to a bool, such as `param.low < param.high`; this one gives %s.", v.Type().FriendlyName())
		}
		if val.ErrorMessage == "" {
			c.errorf(val.DeclRange, "Validation without a message", "Say what is wrong and how to fix it in `error_message`; it is what the user sees.")
		}
	}
}

// checkConditionsWith evaluates the conditions of a policy type written in
// HCL with a policy's properties and no metrics (every window reduction
// unknown): what the properties give the window functions (a duration, a
// pattern, a percentile) is checked before anything runs. A problem is an
// error on the policy's properties.
func (c *checker) checkConditionsWith(p *Policy, pt *PolicyType, props cty.Value) {
	props, _ = props.UnmarkDeep()
	if pt.Uses != "" || props == cty.NilVal || !props.IsWhollyKnown() {
		return
	}
	subject := p.DeclRange
	if p.Properties != nil {
		subject = p.Properties.Range()
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"param": props}, Functions: ConditionFunctions(nil)}
	for _, cond := range pt.Conditions {
		if cond.When == nil {
			continue
		}
		_, d := cond.When.Value(ctx)
		for _, diag := range d {
			if diag.Severity != hcl.DiagError {
				continue
			}
			where := ""
			if diag.Subject != nil {
				where = " at " + diag.Subject.String()
			}
			c.errorf(subject, "Invalid policy properties", "With these properties, condition %q of policy type %q fails%s: %s: %s",
				cond.Name, pt.Name, where, diag.Summary, diag.Detail)
		}
	}
}
