package policies

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/orchhq/orch/blueprints"
)

// A user-defined condition is compiled when its policy is: every part that
// reads no window is evaluated once, then (the parameters are the policy's,
// fixed), and the rest becomes a tree of Go closures that call the window
// reductions and cty's own operations and functions directly. Results are
// cty's, unknown (missing data) included, and so are the reductions a
// condition records for explaining it: both sides of && and ||, and both
// branches of ?:, are evaluated, as HCL evaluates them. What the compiler
// does not know (a for expression, a splat, a reduction whose extra
// argument reads a window) leaves that condition to HCL's interpreter.

// compiled evaluates one condition.
type compiled func(s *scope) (cty.Value, error)

// errNotCompiled says why a condition is left to the interpreter.
type errNotCompiled struct{ why string }

func (e *errNotCompiled) Error() string { return e.why }

func notCompiled(format string, args ...any) error {
	return &errNotCompiled{fmt.Sprintf(format, args...)}
}

// compiler compiles the conditions of one policy.
type compiler struct {
	ctx *hcl.EvalContext // param and the functions, for folding constants
	fns map[string]function.Function
	// reads are the windows of the reductions compiled, each once;
	// slots the reductions, each once (windowReduction.slot), and
	// slotReds the first reduction of each.
	reads    []*blueprints.WindowSpec
	slots    []reduceKey
	slotReds []*windowReduction
	// fnodes are the parts compiled for the float path (fnode).
	fnodes map[hclsyntax.Expression]*fastNode
}

func newCompiler(params cty.Value) *compiler {
	fns := blueprints.ConditionFunctions(nil)
	return &compiler{
		ctx: &hcl.EvalContext{Variables: map[string]cty.Value{"param": params}, Functions: fns},
		fns: fns,
	}
}

// compile compiles a condition's `when`, or says why it cannot.
func (c *compiler) compile(expr hcl.Expression) (compiled, error) {
	e, ok := expr.(hclsyntax.Expression)
	if !ok {
		return nil, notCompiled("not HCL native syntax")
	}
	return c.node(e)
}

func (c *compiler) node(e hclsyntax.Expression) (compiled, error) {
	if !readsWindows(e) {
		v, err := c.constant(e)
		if err != nil {
			return nil, err
		}
		return func(*scope) (cty.Value, error) { return v, nil }, nil
	}
	switch e := e.(type) {
	case *hclsyntax.ParenthesesExpr:
		return c.node(e.Expression)
	case *hclsyntax.BinaryOpExpr:
		return c.binary(e)
	case *hclsyntax.UnaryOpExpr:
		return c.unary(e)
	case *hclsyntax.ConditionalExpr:
		return c.conditional(e)
	case *hclsyntax.FunctionCallExpr:
		return c.call(e)
	}
	return nil, notCompiled("%T reading windows is not compiled", e)
}

// constant evaluates a part that reads no window, once, when the policy
// is compiled.
func (c *compiler) constant(e hclsyntax.Expression) (cty.Value, error) {
	v, diags := e.Value(c.ctx)
	if diags.HasErrors() {
		return cty.NilVal, notCompiled("%s", strings.TrimSpace(diags.Error()))
	}
	if !v.IsWhollyKnown() || v.IsMarked() {
		return cty.NilVal, notCompiled("a part without windows is not known when the policy is compiled")
	}
	return v, nil
}

// readsWindows reports whether e calls a window reduction (a one-argument
// min or max may be one).
func readsWindows(e hclsyntax.Expression) bool {
	found := false
	_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		if fc, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			if _, reducer := blueprints.WindowReducers[fc.Name]; reducer && (fc.Name != "min" && fc.Name != "max" || len(fc.Args) == 1) {
				found = true
			}
		}
		return nil
	})
	return found
}

// A node's error does not stop its siblings: HCL evaluates both sides of
// an operator and both branches of ?:, and drops the errors of the side
// that does not decide (false && 1/0 > 1 is false). A node that fails
// returns the unknown value HCL returns with its error.

func (c *compiler) binary(e *hclsyntax.BinaryOpExpr) (compiled, error) {
	lhs, err := c.node(e.LHS)
	if err != nil {
		return nil, err
	}
	rhs, err := c.node(e.RHS)
	if err != nil {
		return nil, err
	}
	op := e.Op
	params := op.Impl.Params()
	lt, rt := params[0].Type, params[1].Type
	// Comparisons and logic call cty's methods, which is what HCL's
	// operator functions do (arithmetic keeps the functions: they turn
	// 0/0 into an error).
	direct := directOps[op]
	return func(s *scope) (cty.Value, error) {
		l, lerr := lhs(s)
		r, rerr := rhs(s)
		l, cerr := convert.Convert(l, lt)
		if cerr != nil {
			return cty.UnknownVal(op.Type), fmt.Errorf("unsuitable value for left operand: %w", cerr)
		}
		r, cerr = convert.Convert(r, rt)
		if cerr != nil {
			return cty.UnknownVal(op.Type), fmt.Errorf("unsuitable value for right operand: %w", cerr)
		}
		switch op {
		case hclsyntax.OpLogicalAnd:
			if forced, err, ok := shortCircuit(l, r, lerr, rerr, cty.False); ok {
				return forced, err
			}
		case hclsyntax.OpLogicalOr:
			if forced, err, ok := shortCircuit(l, r, lerr, rerr, cty.True); ok {
				return forced, err
			}
		}
		if err := errors.Join(lerr, rerr); err != nil {
			return cty.UnknownVal(op.Type), err
		}
		if direct != nil && (l.IsKnown() && r.IsKnown() || op != hclsyntax.OpLogicalAnd && op != hclsyntax.OpLogicalOr) {
			return direct(l, r), nil
		}
		v, err := op.Impl.Call([]cty.Value{l, r})
		if err != nil {
			return cty.UnknownVal(op.Type), fmt.Errorf("error during operation: %w", err)
		}
		return v, nil
	}, nil
}

// shortCircuit is HCL's short circuit of && (decider false) and ||
// (decider true), with the controlling side's error: a known decider on
// either side decides; an unknown side against the other value decides
// unknown. ok is false when both are known and neither decides. Values are
// compared as they are (cty's True and False go through Equals, which is
// slow here).
func shortCircuit(l, r cty.Value, lerr, rerr error, decider cty.Value) (cty.Value, error, bool) {
	unknown := cty.UnknownVal(cty.Bool).RefineNotNull()
	lk, rk := l.IsKnown(), r.IsKnown()
	switch {
	case !lk && !rk:
		if lerr == nil {
			return unknown, nil, true
		}
		return cty.NilVal, nil, false
	case lk && l == decider:
		return decider, lerr, true
	case rk && r == decider:
		return decider, rerr, true
	case !lk:
		return unknown, lerr, true
	case !rk:
		return unknown, rerr, true
	}
	return cty.NilVal, nil, false
}

// directOps are the operators whose HCL functions only call a cty method.
var directOps = map[*hclsyntax.Operation]func(a, b cty.Value) cty.Value{
	hclsyntax.OpGreaterThan:        cty.Value.GreaterThan,
	hclsyntax.OpGreaterThanOrEqual: cty.Value.GreaterThanOrEqualTo,
	hclsyntax.OpLessThan:           cty.Value.LessThan,
	hclsyntax.OpLessThanOrEqual:    cty.Value.LessThanOrEqualTo,
	hclsyntax.OpEqual:              cty.Value.Equals,
	hclsyntax.OpNotEqual:           cty.Value.NotEqual,
	hclsyntax.OpLogicalAnd:         cty.Value.And,
	hclsyntax.OpLogicalOr:          cty.Value.Or,
}

func (c *compiler) unary(e *hclsyntax.UnaryOpExpr) (compiled, error) {
	val, err := c.node(e.Val)
	if err != nil {
		return nil, err
	}
	op := e.Op
	ty := op.Impl.Params()[0].Type
	return func(s *scope) (cty.Value, error) {
		v, err := val(s)
		v, cerr := convert.Convert(v, ty)
		if err = errors.Join(err, cerr); err != nil {
			return cty.UnknownVal(op.Type), err
		}
		v, err = op.Impl.Call([]cty.Value{v})
		if err != nil {
			return cty.UnknownVal(op.Type), fmt.Errorf("error during operation: %w", err)
		}
		return v, nil
	}, nil
}

func (c *compiler) conditional(e *hclsyntax.ConditionalExpr) (compiled, error) {
	cond, err := c.node(e.Condition)
	if err != nil {
		return nil, err
	}
	yes, err := c.node(e.TrueResult)
	if err != nil {
		return nil, err
	}
	no, err := c.node(e.FalseResult)
	if err != nil {
		return nil, err
	}
	dynNull := cty.NullVal(cty.DynamicPseudoType)
	return func(s *scope) (cty.Value, error) {
		// Both branches, then the condition, as HCL does; the errors of
		// the branch not taken are dropped.
		t, terr := yes(s)
		f, ferr := no(s)
		ty := cty.DynamicPseudoType
		convs := make([]convert.Conversion, 2)
		switch {
		case t.RawEquals(dynNull):
			ty = f.Type()
			convs[0] = convert.GetConversionUnsafe(cty.DynamicPseudoType, ty)
		case f.RawEquals(dynNull):
			ty = t.Type()
			convs[1] = convert.GetConversionUnsafe(cty.DynamicPseudoType, ty)
		case t.Type() == cty.DynamicPseudoType, f.Type() == cty.DynamicPseudoType:
		default:
			ty, convs = convert.UnifyUnsafe([]cty.Type{t.Type(), f.Type()})
		}
		if ty == cty.NilType {
			return cty.DynamicVal, errors.New("inconsistent conditional result types")
		}
		b, berr := cond(s)
		if b.IsNull() {
			return cty.UnknownVal(ty), errors.Join(berr, errors.New("the condition value is null"))
		}
		if !b.IsKnown() {
			return unknownChoice(ty, t, f), berr
		}
		b, cerr := convert.Convert(b, cty.Bool)
		if cerr != nil {
			return cty.UnknownVal(ty), errors.Join(berr, errors.New("the condition expression must be of type bool"))
		}
		pick, perr, conv := f, ferr, convs[1]
		if b == cty.True {
			pick, perr, conv = t, terr, convs[0]
		}
		err := errors.Join(berr, perr)
		if conv != nil {
			var cverr error
			if pick, cverr = conv(pick); cverr != nil {
				return cty.UnknownVal(ty), errors.Join(err, cverr)
			}
		}
		return pick, err
	}, nil
}

func (c *compiler) call(e *hclsyntax.FunctionCallExpr) (compiled, error) {
	if e.ExpandFinal {
		return nil, notCompiled("a function call with expanded arguments (...)")
	}
	if _, reducer := blueprints.WindowReducers[e.Name]; reducer {
		if red, err := c.reduction(e); red != nil || err != nil {
			return red, err
		}
	}
	fn, ok := c.fns[e.Name]
	if !ok {
		return nil, notCompiled("unknown function %s", e.Name)
	}
	spec := fn.Params()
	variadic := fn.VarParam()
	types := make([]cty.Type, len(e.Args))
	for i := range e.Args {
		switch {
		case i < len(spec):
			types[i] = spec[i].Type
		case variadic != nil:
			types[i] = variadic.Type
		default:
			return nil, notCompiled("too many arguments to %s", e.Name)
		}
	}
	if len(e.Args) < len(spec) {
		return nil, notCompiled("too few arguments to %s", e.Name)
	}
	args := make([]compiled, len(e.Args))
	for i, a := range e.Args {
		var err error
		if args[i], err = c.node(a); err != nil {
			return nil, err
		}
	}
	name := e.Name
	return func(s *scope) (cty.Value, error) {
		vals := make([]cty.Value, len(args))
		var errs error
		for i, a := range args {
			v, err := a(s)
			v, cerr := convert.Convert(v, types[i])
			errs = errors.Join(errs, err, cerr)
			vals[i] = v
		}
		if errs != nil {
			return cty.DynamicVal, errs
		}
		v, err := fn.Call(vals)
		if err != nil {
			return cty.DynamicVal, fmt.Errorf("%s: %w", name, err)
		}
		return v, nil
	}, nil
}

// windowReduction is a reduction whose window and extra argument are
// known when the policy is compiled.
type windowReduction struct {
	fn string
	// Its window: metric's (or, byPattern, the services re matches) over
	// the last seconds.
	metric    string
	seconds   float64
	byPattern bool
	arg       float64
	label     string
	slot      int // its memo in the scope
	// re is the services() pattern compiled once (nil: none, or one
	// that does not compile, which reads no data).
	re *regexp.Regexp
	// pair: a mean or hosts, whose slot holds both (Windows.MeanHosts).
	pair bool
}

// reductionOf reads a window reduction whose window (and extra argument)
// reads no window: both are known now. It returns nil, nil for a min or
// max over numbers.
func (c *compiler) reductionOf(e *hclsyntax.FunctionCallExpr) (*windowReduction, error) {
	extra := blueprints.WindowReducers[e.Name]
	if len(e.Args) != 1+extra {
		if e.Name == "min" || e.Name == "max" {
			return nil, nil
		}
		return nil, notCompiled("%s takes %d arguments", e.Name, 1+extra)
	}
	for _, a := range e.Args {
		if readsWindows(a) {
			if e.Name == "min" || e.Name == "max" {
				return nil, nil
			}
			return nil, notCompiled("an argument of %s reads a window", e.Name)
		}
	}
	w, diags := e.Args[0].Value(c.ctx)
	if diags.HasErrors() {
		return nil, notCompiled("%s", strings.TrimSpace(diags.Error()))
	}
	if !w.Type().Equals(blueprints.WindowType) {
		if e.Name == "min" || e.Name == "max" {
			return nil, nil // over a number
		}
		return nil, notCompiled("the first argument of %s is not a window", e.Name)
	}
	if !w.IsKnown() {
		return nil, notCompiled("the window of %s is not known when the policy is compiled", e.Name)
	}
	spec := w.EncapsulatedValue().(*blueprints.WindowSpec)
	var arg float64
	if extra == 1 {
		a, diags := e.Args[1].Value(c.ctx)
		if diags.HasErrors() || !a.IsKnown() || a.IsNull() {
			return nil, notCompiled("the argument of %s is not known when the policy is compiled", e.Name)
		}
		a, err := convert.Convert(a, cty.Number)
		if err != nil {
			return nil, notCompiled("the argument of %s is not a number", e.Name)
		}
		arg, _ = a.AsBigFloat().Float64()
		if e.Name == "percentile" && (arg < 0 || arg > 100) || e.Name == "ewma" && (arg <= 0 || arg > 1) {
			return nil, notCompiled("the argument of %s is out of range", e.Name)
		}
	}
	if !slices.ContainsFunc(c.reads, func(r *blueprints.WindowSpec) bool { return *r == *spec }) {
		c.reads = append(c.reads, spec)
	}
	key := reduceKey{e.Name, spec.Metric, spec.Pattern, spec.Duration, arg}
	pair := e.Name == "mean" || e.Name == "hosts"
	if pair {
		key.fn = meanHostsFn
	}
	slot := slices.Index(c.slots, key)
	red := &windowReduction{fn: e.Name, metric: spec.Metric, seconds: spec.Duration, byPattern: spec.Pattern != "", arg: arg, label: reductionLabel(e.Name, spec, arg), pair: pair}
	if spec.Pattern != "" {
		red.re, _ = pattern(spec.Pattern)
	}
	if slot < 0 {
		slot = len(c.slots)
		c.slots = append(c.slots, key)
		c.slotReds = append(c.slotReds, red)
	}
	red.slot = slot
	return red, nil
}

// read is how an evaluation reads the reduction from its slot.
func (r *windowReduction) read() fread {
	return fread{label: r.label, slot: int32(r.slot), hosts: r.fn == "hosts"}
}

// reduction compiles a window reduction (nil, nil: a min or max over
// numbers).
func (c *compiler) reduction(e *hclsyntax.FunctionCallExpr) (compiled, error) {
	red, err := c.reductionOf(e)
	if red == nil || err != nil {
		return nil, err
	}
	rd := red.read()
	return func(s *scope) (cty.Value, error) {
		v, ok := s.reduceCompiled(rd)
		if !ok || math.IsNaN(v) {
			return cty.UnknownVal(cty.Number), nil
		}
		return cty.NumberFloatVal(v), nil
	}, nil
}

// unknownChoice is what HCL makes of `c ? t : f` when c is unknown: an
// unknown refined by both results (a number between their bounds, not null
// when neither is), so a comparison of it may still be known.
func unknownChoice(ty cty.Type, t, f cty.Value) cty.Value {
	tr, fr := t.Range(), f.Range()
	if t.IsNull() && f.IsNull() {
		return cty.NullVal(ty)
	}
	if t.Type() == cty.Number && f.Type() == cty.Number {
		ref := cty.UnknownVal(cty.Number).Refine()
		if tr.DefinitelyNotNull() && fr.DefinitelyNotNull() {
			ref = ref.NotNull()
		}
		fLo, fLoInc := fr.NumberLowerBound()
		fHi, fHiInc := fr.NumberUpperBound()
		tLo, tLoInc := tr.NumberLowerBound()
		tHi, tHiInc := tr.NumberUpperBound()
		if fLo.IsKnown() && tLo.IsKnown() {
			lo, loInc := fLo, fLoInc
			switch {
			case tLo.LessThan(fLo).True():
				lo, loInc = tLo, tLoInc
			case tLo.Equals(fLo).True():
				loInc = tLoInc || fLoInc
			}
			ref = ref.NumberRangeLowerBound(lo, loInc)
		}
		if fHi.IsKnown() && tHi.IsKnown() {
			hi, hiInc := fHi, fHiInc
			switch {
			case tHi.GreaterThan(fHi).True():
				hi, hiInc = tHi, tHiInc
			case tHi.Equals(fHi).True():
				hiInc = tHiInc || fHiInc
			}
			ref = ref.NumberRangeUpperBound(hi, hiInc)
		}
		return ref.NewValue()
	}
	ret := cty.UnknownVal(ty)
	if tr.DefinitelyNotNull() && fr.DefinitelyNotNull() {
		ret = ret.RefineNotNull()
	}
	return ret
}
