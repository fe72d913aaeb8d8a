package policies

import (
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// The float path: most conditions compare window values with numbers, and
// cty's big.Float arithmetic is most of their cost. A compiled condition
// whose parts the float path knows is evaluated a second way, in float64,
// wherever float64 gives exactly what cty gives, and the evaluation goes
// back to the cty closures whenever it might not (the whole condition: its
// values are recorded again, from the memo).
//
// What cty does, and the float path with it:
//   - A window value is a big.Float of 53 bits (NumberFloatVal); a literal
//     or parameter one of 512 (ParseNumberVal). Arithmetic rounds to the
//     larger precision of its operands, with no overflow and no subnormal
//     numbers: at 53 bits that is float64's rounding in the normal range;
//     above, the float64 result must be exact (error-free transforms). A
//     product is exact at any precision.
//   - <, >, compare exact values; so does float64, on exact values.
//   - == compares the numbers' shortest decimal text at their own
//     precision, so 0.1 read from a window equals the literal 0.1 (which is
//     not the same number); <= and >= are < or ==, and so inherit it. The
//     float path compares texts only where that is a comparison of values
//     (same precision, or an integer) or was worked out at compile time (a
//     window value against a constant).
//   - Missing data is an unknown number: arithmetic and comparisons give
//     unknown, && and || decide where a known side decides, ! keeps it
//     unknown. Anything that would refine an unknown (a function, a ?:
//     on an unknown condition) goes back to cty.
//   - An error (division by zero), an infinity or a NaN goes back to cty.

// fval is a value on the float path: a number (f, prec) or a bool (b),
// known or not (missing data).
type fval struct {
	f     float64
	b     bool
	known bool
	prec  uint32 // a number's big.Float precision in cty
}

// prec53 is the precision of a window value in cty (NumberFloatVal).
const prec53 = 53

// fastFn evaluates a node; ok is false where it cannot say what cty says.
type fastFn func(s *scope) (v fval, ok bool)

type fastKind uint8

const (
	fastNum fastKind = iota
	fastBool
)

// fastNode is a compiled node of the float path: its closure and type, and
// for a constant number, what comparisons with it need.
type fastNode struct {
	fn    fastFn
	kind  fastKind
	konst *fconst
	// red is the read of the window reduction fn reads, when that is
	// all it does: a comparison with a constant reads it without fn.
	red *fread
}

// fconst is a constant number: its nearest float64 (exact or not), the
// float64s around it when inexact, and the one float64 (eq) whose decimal
// text at 53 bits is the constant's text (eqOK false: none is), which is
// what == with a window value means.
type fconst struct {
	f, lo, hi, eq float64
	prec          uint32
	exact, eqOK   bool
}

func newFconst(v cty.Value) (*fconst, bool) {
	bf := v.AsBigFloat()
	if bf.IsInf() {
		return nil, false
	}
	f, acc := bf.Float64()
	if math.IsInf(f, 0) || f != 0 && math.Abs(f) < 0x1p-1022 {
		return nil, false
	}
	c := &fconst{f: f, exact: acc == big.Exact, prec: uint32(bf.Prec()), lo: f, hi: f}
	switch acc {
	case big.Above:
		c.lo = math.Nextafter(f, math.Inf(-1))
	case big.Below:
		c.hi = math.Nextafter(f, math.Inf(1))
	}
	text := bf.Text('f', -1)
	if text == "-0" {
		text = "0"
	}
	if eq, err := strconv.ParseFloat(text, 64); err == nil {
		s := strconv.FormatFloat(eq, 'f', -1, 64)
		if s == "-0" {
			s = "0"
		}
		c.eq, c.eqOK = eq, s == text
	}
	return c, true
}

// cmpTerm is a comparison of a window reduction with a constant, as a
// condition that is one, or several joined all by && or all by ||,
// evaluates it (most conditions are): one line of memory, read in place
// of three closures. Its read is fread's fields.
type cmpTerm struct {
	k     fconst
	label string
	slot  int32
	hosts bool
	op    cmpOp
}

// constComparison is l op r as one term when one side is a window
// reduction alone and the other a constant (nil: it is not).
func constComparison(op cmpOp, l, r *fastNode) *cmpTerm {
	l, r, op = constRight(op, l, r)
	if r.konst == nil || l.red == nil {
		return nil
	}
	return &cmpTerm{k: *r.konst, label: l.red.label, slot: l.red.slot, hosts: l.red.hosts, op: op}
}

// constRight turns a comparison with a constant on the left around:
// c < x is x > c.
func constRight(op cmpOp, l, r *fastNode) (*fastNode, *fastNode, cmpOp) {
	if l.konst != nil && r.konst == nil {
		return r, l, flipped[op]
	}
	return l, r, op
}

// eval is the term's comparison on the float path.
func (t *cmpTerm) eval(s *scope) (fval, bool) {
	a, ok := reductionValue(s, fread{t.label, t.slot, t.hosts})
	return compareConst(t.op, a, ok, &t.k)
}

// terms is a condition's comparisons: one, or several joined all by &&
// (or false) or all by || (or true).
type terms struct {
	list []cmpTerm
	or   bool
}

// eval is the float path of the comparisons joined: what the closures of
// the same && or || tree give. Every comparison is read, as HCL reads
// both sides of && and ||, in the order written; && and || are
// associative, so the tree's shape does not matter.
func (ts *terms) eval(s *scope) (fval, bool) {
	decided, unknown := false, false
	for i := range ts.list {
		v, ok := ts.list[i].eval(s)
		switch {
		case !ok:
			return fval{}, false
		case !v.known:
			unknown = true
		case v.b == ts.or:
			decided = true
		}
	}
	switch {
	case decided:
		return fval{b: ts.or, known: true}, true
	case unknown:
		return fval{}, true
	}
	return fval{b: !ts.or, known: true}, true
}

// flat compiles a condition whose float path exists into its terms when
// it is comparisons of reductions with constants joined all by && or all
// by || (nil: it is not).
func (c *compiler) flat(e hclsyntax.Expression) *terms {
	ts := &terms{}
	logic := 0 // 1: &&, 2: ||
	var walk func(e hclsyntax.Expression) bool
	walk = func(e hclsyntax.Expression) bool {
		switch e := e.(type) {
		case *hclsyntax.ParenthesesExpr:
			return walk(e.Expression)
		case *hclsyntax.ConditionalExpr:
			// As fconditional compiles it: only one that always takes
			// a branch.
			if c.takes(e, true) {
				return walk(e.TrueResult)
			}
			return c.takes(e, false) && walk(e.FalseResult)
		case *hclsyntax.BinaryOpExpr:
			if e.Op == hclsyntax.OpLogicalAnd || e.Op == hclsyntax.OpLogicalOr {
				l := 1
				if e.Op == hclsyntax.OpLogicalOr {
					l = 2
				}
				if logic != 0 && logic != l {
					return false
				}
				logic = l
				return walk(e.LHS) && walk(e.RHS)
			}
			op, isCmp := cmpOps[e.Op]
			if !isCmp {
				return false
			}
			l, r := c.operands(e, fastNum, true)
			if l == nil {
				return false
			}
			t := constComparison(op, l, r)
			if t == nil {
				return false
			}
			ts.list = append(ts.list, *t)
			return true
		}
		return false
	}
	if !walk(e) {
		return nil
	}
	ts.or = logic == 2
	return ts
}

// fast compiles the float path of a condition's `when`, or returns nil.
func (c *compiler) fast(e hclsyntax.Expression) fastFn {
	n := c.fnode(e)
	if n == nil || n.kind != fastBool || n.fn == nil {
		return nil
	}
	return n.fn
}

// fnode compiles a part once: fconditional, takes and flat ask for the
// same parts again, and a constant's fconst costs a decimal text.
func (c *compiler) fnode(e hclsyntax.Expression) *fastNode {
	if n, seen := c.fnodes[e]; seen {
		return n
	}
	n := c.compileFnode(e)
	if c.fnodes == nil {
		c.fnodes = map[hclsyntax.Expression]*fastNode{}
	}
	c.fnodes[e] = n
	return n
}

func (c *compiler) compileFnode(e hclsyntax.Expression) *fastNode {
	if !readsWindows(e) {
		v, err := c.constant(e)
		if err != nil || v.IsNull() {
			return nil
		}
		switch v.Type() {
		case cty.Bool:
			b := v.True()
			return &fastNode{kind: fastBool, fn: func(*scope) (fval, bool) { return fval{b: b, known: true}, true }}
		case cty.Number:
			k, ok := newFconst(v)
			if !ok {
				return nil
			}
			n := &fastNode{kind: fastNum, konst: k}
			if k.exact {
				val := fval{f: k.f, known: true, prec: k.prec}
				n.fn = func(*scope) (fval, bool) { return val, true }
			}
			return n
		}
		return nil
	}
	switch e := e.(type) {
	case *hclsyntax.ParenthesesExpr:
		return c.fnode(e.Expression)
	case *hclsyntax.BinaryOpExpr:
		return c.fbinary(e)
	case *hclsyntax.UnaryOpExpr:
		return c.funary(e)
	case *hclsyntax.ConditionalExpr:
		return c.fconditional(e)
	case *hclsyntax.FunctionCallExpr:
		return c.fcall(e)
	}
	return nil
}

// operands compiles both sides of an operator of kind k; a constant that is
// not a float64 is allowed only where allowInexact says so.
func (c *compiler) operands(e *hclsyntax.BinaryOpExpr, k fastKind, allowInexact bool) (l, r *fastNode) {
	l, r = c.fnode(e.LHS), c.fnode(e.RHS)
	if l == nil || r == nil || l.kind != k || r.kind != k {
		return nil, nil
	}
	if !allowInexact && (l.fn == nil || r.fn == nil) {
		return nil, nil
	}
	return l, r
}

func (c *compiler) fbinary(e *hclsyntax.BinaryOpExpr) *fastNode {
	switch e.Op {
	case hclsyntax.OpAdd, hclsyntax.OpSubtract, hclsyntax.OpMultiply, hclsyntax.OpDivide:
		l, r := c.operands(e, fastNum, false)
		if l == nil {
			return nil
		}
		return &fastNode{kind: fastNum, fn: arithmetic(e.Op, l.fn, r.fn)}
	case hclsyntax.OpLessThan, hclsyntax.OpLessThanOrEqual, hclsyntax.OpGreaterThan, hclsyntax.OpGreaterThanOrEqual,
		hclsyntax.OpEqual, hclsyntax.OpNotEqual:
		if l, r := c.operands(e, fastNum, true); l != nil {
			return &fastNode{kind: fastBool, fn: comparison(e.Op, l, r)}
		}
		if e.Op != hclsyntax.OpEqual && e.Op != hclsyntax.OpNotEqual {
			return nil
		}
		l, r := c.operands(e, fastBool, false)
		if l == nil {
			return nil
		}
		lf, rf, not := l.fn, r.fn, e.Op == hclsyntax.OpNotEqual
		return &fastNode{kind: fastBool, fn: func(s *scope) (fval, bool) {
			a, b, known, ok := both(s, lf, rf)
			if !known {
				return fval{}, ok
			}
			return fval{b: (a.b == b.b) != not, known: true}, true
		}}
	case hclsyntax.OpLogicalAnd, hclsyntax.OpLogicalOr:
		l, r := c.operands(e, fastBool, false)
		if l == nil {
			return nil
		}
		lf, rf := l.fn, r.fn
		decider := e.Op == hclsyntax.OpLogicalOr // || is decided by true, && by false
		return &fastNode{kind: fastBool, fn: func(s *scope) (fval, bool) {
			a, ok1 := lf(s)
			b, ok2 := rf(s)
			if !ok1 || !ok2 {
				return fval{}, false
			}
			switch {
			case a.known && a.b == decider, b.known && b.b == decider:
				return fval{b: decider, known: true}, true
			case !a.known || !b.known:
				return fval{}, true
			}
			return fval{b: !decider, known: true}, true
		}}
	}
	return nil
}

// both evaluates two operands: known is false when either is unknown (ok
// then says whether that is what cty says, or the float path gives up).
func both(s *scope, lf, rf fastFn) (a, b fval, known, ok bool) {
	a, ok1 := lf(s)
	b, ok2 := rf(s)
	if !ok1 || !ok2 {
		return a, b, false, false
	}
	return a, b, a.known && b.known, true
}

// arithmetic is + - * / as cty computes them on the operands' values.
func arithmetic(op *hclsyntax.Operation, lf, rf fastFn) fastFn {
	return func(s *scope) (fval, bool) {
		a, ok1 := lf(s)
		b, ok2 := rf(s)
		if !ok1 || !ok2 {
			return fval{}, false
		}
		if !a.known || !b.known {
			return fval{prec: max(a.prec, b.prec)}, true
		}
		prec := max(a.prec, b.prec)
		var r float64
		exact := true
		switch op {
		case hclsyntax.OpAdd:
			r = a.f + b.f
			exact = sumExact(a.f, b.f, r)
		case hclsyntax.OpSubtract:
			r = a.f - b.f
			exact = sumExact(a.f, -b.f, r)
		case hclsyntax.OpMultiply:
			// cty's product is exact, whatever the precision.
			r = a.f * b.f
			if math.FMA(a.f, b.f, -r) != 0 || r == 0 && a.f != 0 && b.f != 0 {
				return fval{}, false
			}
		default:
			if b.f == 0 {
				return fval{}, false // cty's error
			}
			r = a.f / b.f
			exact = math.FMA(r, b.f, -a.f) == 0
			if r == 0 && a.f != 0 {
				return fval{}, false
			}
		}
		if math.IsInf(r, 0) || math.IsNaN(r) || r != 0 && math.Abs(r) < 0x1p-1022 || !exact && prec != prec53 {
			return fval{}, false
		}
		return fval{f: r, known: true, prec: prec}, true
	}
}

// sumExact reports whether r = a + b in float64 is the exact sum (Knuth's
// TwoSum: the rounding error is zero).
func sumExact(a, b, r float64) bool {
	bb := r - a
	return (a-(r-bb))+(b-bb) == 0
}

// comparison compiles < <= > >= == != over numbers (either side may be a
// constant that is not a float64).
func comparison(hop *hclsyntax.Operation, l, r *fastNode) fastFn {
	op := cmpOps[hop]
	if t := constComparison(op, l, r); t != nil {
		// A condition's comparisons of a window with a number are most
		// of what it evaluates: the read, the constant and the
		// operator in one line of memory.
		return t.eval
	}
	l, r, op = constRight(op, l, r)
	lf := l.fn
	if k := r.konst; k != nil && lf != nil {
		return func(s *scope) (fval, bool) {
			a, ok := lf(s)
			return compareConst(op, a, ok, k)
		}
	}
	rf := r.fn
	if lf == nil || rf == nil {
		return func(*scope) (fval, bool) { return fval{}, false }
	}
	return func(s *scope) (fval, bool) {
		a, b, known, ok := both(s, lf, rf)
		if !known {
			return fval{}, ok
		}
		less, greater := a.f < b.f, a.f > b.f
		eq := a.f == b.f
		if a.prec != b.prec && !isSmallInt(a.f) && !isSmallInt(b.f) && eq {
			return fval{}, false // the same value, texts at two precisions
		}
		return fval{b: compare(op, less, greater, eq), known: true}, true
	}
}

// compareConst compares a (ok: as its operand gave it) with constant k.
func compareConst(op cmpOp, a fval, ok bool, k *fconst) (fval, bool) {
	if !ok {
		return fval{}, false
	}
	if !a.known {
		return fval{}, true
	}
	less, greater := a.f < k.f, a.f > k.f
	if !k.exact {
		less, greater = a.f <= k.lo, a.f >= k.hi
	}
	var eq bool
	switch {
	case a.prec == prec53:
		eq = k.eqOK && a.f == k.eq
	case a.prec == k.prec || isSmallInt(a.f) || k.exact && isSmallInt(k.f):
		eq = k.exact && a.f == k.f
	default:
		if less || greater {
			eq = false // a different value has a different text
		} else {
			return fval{}, false
		}
	}
	return fval{b: compare(op, less, greater, eq), known: true}, true
}

// cmpOp is a comparison operator.
type cmpOp uint8

const (
	cmpLT cmpOp = iota
	cmpLE
	cmpGT
	cmpGE
	cmpEQ
	cmpNE
)

var (
	cmpOps = map[*hclsyntax.Operation]cmpOp{
		hclsyntax.OpLessThan: cmpLT, hclsyntax.OpLessThanOrEqual: cmpLE, hclsyntax.OpGreaterThan: cmpGT,
		hclsyntax.OpGreaterThanOrEqual: cmpGE, hclsyntax.OpEqual: cmpEQ, hclsyntax.OpNotEqual: cmpNE,
	}
	// flipped is a comparison with its sides swapped.
	flipped = [...]cmpOp{cmpLT: cmpGT, cmpLE: cmpGE, cmpGT: cmpLT, cmpGE: cmpLE, cmpEQ: cmpEQ, cmpNE: cmpNE}
)

func compare(op cmpOp, less, greater, eq bool) bool {
	switch op {
	case cmpLT:
		return less
	case cmpLE:
		return less || eq
	case cmpGT:
		return greater
	case cmpGE:
		return greater || eq
	case cmpEQ:
		return eq
	}
	return !eq
}

// isSmallInt reports whether f is an integer whose decimal text is the
// same at every precision.
func isSmallInt(f float64) bool { return f == math.Trunc(f) && math.Abs(f) < 1<<53 }

func (c *compiler) funary(e *hclsyntax.UnaryOpExpr) *fastNode {
	v := c.fnode(e.Val)
	if v == nil || v.fn == nil {
		return nil
	}
	vf := v.fn
	switch {
	case e.Op == hclsyntax.OpNegate && v.kind == fastNum:
		return &fastNode{kind: fastNum, fn: func(s *scope) (fval, bool) {
			a, ok := vf(s)
			a.f = -a.f
			return a, ok
		}}
	case e.Op == hclsyntax.OpLogicalNot && v.kind == fastBool:
		return &fastNode{kind: fastBool, fn: func(s *scope) (fval, bool) {
			a, ok := vf(s)
			a.b = !a.b
			return a, ok
		}}
	}
	return nil
}

func (c *compiler) fconditional(e *hclsyntax.ConditionalExpr) *fastNode {
	cond, yes, no := c.fnode(e.Condition), c.fnode(e.TrueResult), c.fnode(e.FalseResult)
	if cond == nil || yes == nil || no == nil || cond.fn == nil || yes.fn == nil || no.fn == nil ||
		cond.kind != fastBool || yes.kind != no.kind {
		return nil
	}
	if c.takes(e, true) {
		return yes
	}
	if c.takes(e, false) {
		return no
	}
	cf, yf, nf := cond.fn, yes.fn, no.fn
	return &fastNode{kind: yes.kind, fn: func(s *scope) (fval, bool) {
		// Both branches, then the condition, as HCL evaluates them.
		t, ok1 := yf(s)
		f, ok2 := nf(s)
		b, ok3 := cf(s)
		if !ok3 || !b.known {
			return fval{}, false // an unknown choice is refined by both branches
		}
		if b.b {
			return t, ok1
		}
		return f, ok2
	}}
}

// takes reports whether a conditional always takes one branch (yes: the
// true one) and skipping the other changes nothing a decision shows: its
// condition reads no window and is that, and the other branch reads no
// window the taken one does not read, in the order the readings are
// noted (scale.clj's two directions read the same two windows).
func (c *compiler) takes(e *hclsyntax.ConditionalExpr, yes bool) bool {
	if readsWindows(e.Condition) {
		return false
	}
	v, err := c.constant(e.Condition)
	if err != nil || v.Type() != cty.Bool || v.IsNull() || v.True() != yes {
		return false
	}
	t, ok1 := c.readOrder(e.TrueResult, nil)
	f, ok2 := c.readOrder(e.FalseResult, nil)
	if !ok1 || !ok2 {
		return false
	}
	taken := f
	if yes {
		taken = t
	}
	return slices.Equal(firstOnly(append(t, f...)), firstOnly(taken))
}

// readOrder appends the labels of the reductions e reads to out, in the
// order evaluating it reads them (both sides of an operator, left first;
// both branches of ?:, then its condition, as HCL does). false: e has a
// part it does not know.
func (c *compiler) readOrder(e hclsyntax.Expression, out []string) ([]string, bool) {
	if !readsWindows(e) {
		return out, true
	}
	var parts []hclsyntax.Expression
	switch e := e.(type) {
	case *hclsyntax.ParenthesesExpr:
		parts = []hclsyntax.Expression{e.Expression}
	case *hclsyntax.BinaryOpExpr:
		parts = []hclsyntax.Expression{e.LHS, e.RHS}
	case *hclsyntax.UnaryOpExpr:
		parts = []hclsyntax.Expression{e.Val}
	case *hclsyntax.ConditionalExpr:
		parts = []hclsyntax.Expression{e.TrueResult, e.FalseResult, e.Condition}
	case *hclsyntax.FunctionCallExpr:
		if _, reducer := blueprints.WindowReducers[e.Name]; reducer {
			red, err := c.reductionOf(e)
			if err != nil {
				return out, false
			}
			if red != nil {
				return append(out, red.label), true
			}
		}
		parts = e.Args
	default:
		return out, false
	}
	for _, p := range parts {
		var ok bool
		if out, ok = c.readOrder(p, out); !ok {
			return out, false
		}
	}
	return out, true
}

// firstOnly is labels with each one only where it first appears.
func firstOnly(labels []string) []string {
	var out []string
	for _, l := range labels {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// fastFuncs are the functions the float path computes as cty does.
var fastFuncs = map[string]bool{"abs": true, "ceil": true, "floor": true, "signum": true, "min": true, "max": true, "pow": true}

// reductionValue is a window reduction on the float path: unknown for no
// data, back to cty for an infinity.
func reductionValue(s *scope, rd fread) (fval, bool) {
	v, ok := s.reduceCompiled(rd)
	if !ok || math.IsNaN(v) {
		return fval{prec: prec53}, true
	}
	if math.IsInf(v, 0) {
		return fval{}, false
	}
	return fval{f: v, known: true, prec: prec53}, true
}

func (c *compiler) fcall(e *hclsyntax.FunctionCallExpr) *fastNode {
	if e.ExpandFinal {
		return nil
	}
	if _, reducer := blueprints.WindowReducers[e.Name]; reducer {
		red, err := c.reductionOf(e)
		if err != nil {
			return nil
		}
		if red != nil {
			rd := red.read()
			read := rd // the closure's own copy
			return &fastNode{kind: fastNum, red: &rd, fn: func(s *scope) (fval, bool) { return reductionValue(s, read) }}
		}
	}
	if !fastFuncs[e.Name] || len(e.Args) == 0 {
		return nil
	}
	args := make([]fastFn, len(e.Args))
	for i, a := range e.Args {
		n := c.fnode(a)
		if n == nil || n.fn == nil || n.kind != fastNum {
			return nil
		}
		args[i] = n.fn
	}
	name := e.Name
	switch {
	case (name == "min" || name == "max") && len(args) >= 1:
	case name == "pow" && len(args) == 2:
	case len(args) == 1 && name != "min" && name != "max" && name != "pow":
	default:
		return nil
	}
	return &fastNode{kind: fastNum, fn: func(s *scope) (fval, bool) {
		var vals [4]fval
		vs := vals[:0]
		ok := true
		for _, a := range args {
			v, aok := a(s)
			ok = ok && aok && v.known // a function of an unknown refines it: cty's
			vs = append(vs, v)
		}
		if !ok {
			return fval{}, false
		}
		x := vs[0]
		switch name {
		case "abs":
			x.f = math.Abs(x.f)
		case "ceil", "floor":
			if name == "ceil" {
				x.f = math.Ceil(x.f)
			} else {
				x.f = math.Floor(x.f)
			}
			if math.Abs(x.f) >= 1<<53 {
				return fval{}, false
			}
			x.f += 0 // no -0: cty's comes from an integer; its precision stays
		case "signum":
			switch {
			case x.f > 0:
				x.f = 1
			case x.f < 0:
				x.f = -1
			default:
				x.f = 0
			}
			x.prec = 64 // NumberIntVal
		case "min", "max":
			for _, v := range vs[1:] {
				if name == "max" && v.f > x.f || name == "min" && v.f < x.f {
					x = v // the first of equal ones stays, as in cty
				}
			}
		case "pow":
			x = fval{f: math.Pow(vs[0].f, vs[1].f), known: true, prec: prec53}
			if math.IsInf(x.f, 0) || math.IsNaN(x.f) {
				return fval{}, false
			}
		}
		return x, true
	}}
}
