package policies

import (
	"math"

	"github.com/orchhq/orch/blueprints"
)

// flatEval evaluates a user-defined policy type whose conditions are all
// flat (terms: comparisons of window reductions with constants, joined
// all by && or all by ||) the way a built-in type evaluates: from one
// small object, each reduction read once into a local, each comparison
// one line of straight code. Most user-defined types are one or two such
// conditions (scale.clj's is); through the hclEvaluator's scope, slots
// and terms list such an evaluation touched ten cache lines and took two
// to three times a built-in one's time. It gives what the hclEvaluator's
// float path gives, readings included; an evaluation the float path
// cannot decide (an infinite window value) is the hclEvaluator's, whole.
type flatEval struct {
	// An evaluation of one condition reading one slot touches the first
	// 280 bytes: five cache lines (TestFlatEvalLayout). Conditions and
	// slots are fields, not arrays, so the second ones come after.

	// full is its conditions compiled as the hclEvaluator, built when
	// first needed (hcl): an HCL policy's compiled closures, cty values
	// and functions are a hundred objects, which every garbage
	// collection would scan and most policies never run.
	full *hclEvaluator
	// floats counts the conditions it decided, as the hclEvaluator's
	// float path counts its own.
	floats   int64
	minHosts int32
	nconds   uint8
	// evaluated: it has read its windows (Window).
	evaluated bool
	slot0     flatSlot
	cond0     flatCond
	res       [flatConds]Result
	slot1     flatSlot
	cond1     flatCond
	// window is the longest window its terms read.
	window float64
	// What building full takes, and what it answers without it; tgt
	// is also read for a query (a reduction no other policy computed
	// at this time).
	tgt    Target
	policy *blueprints.PlanPolicy
	reads  []*blueprints.WindowSpec
}

// The most conditions and slots a flatEval holds, and terms a condition.
const (
	flatConds = 2
	flatSlots = 2
	flatTerms = 2
)

// flatCond is a condition: its terms, and the readings they record.
type flatCond struct {
	name     string
	n        uint8
	or       bool
	terms    [flatTerms]flatTerm
	readings [flatTerms]Reading
}

// flatSlot is a window reduction the terms read (a mean and hosts pair
// is one): what computing it needs, and the labels of its values (value,
// then hosts).
type flatSlot struct {
	sel     *selection
	red     *windowReduction
	seconds float64
	pair    bool
	labels  [2]string
}

// flatTerm is a term's comparison: value < hi is "less", value > lo
// "greater" (lo = hi = the constant when it is a float64; the float64s
// around it when not), value == eq "equal" (NaN: never; == of a window
// value and a constant compares their decimal texts, fconst.eq). first:
// the first term of its condition with its label, which records the
// reading.
type flatTerm struct {
	lo, hi, eq float64
	slot       uint8
	hosts      bool
	first      bool
	op         cmpOp
}

func (f *flatEval) cond(i uint8) *flatCond {
	if i == 0 {
		return &f.cond0
	}
	return &f.cond1
}

func (f *flatEval) slot(i uint8) *flatSlot {
	if i == 0 {
		return &f.slot0
	}
	return &f.slot1
}

// newFlatEval is he's conditions (policy p's, for t) as a flatEval, when
// they are all flat and fit (nil: they do not). It keeps what it reads of
// he, not he.
func newFlatEval(he *hclEvaluator, t Target, p *blueprints.PlanPolicy) *flatEval {
	if len(he.conds) == 0 || len(he.conds) > flatConds || len(he.scope.slots) > flatSlots || he.reads == nil {
		return nil
	}
	f := &flatEval{tgt: t, policy: p, reads: he.reads, minHosts: int32(t.MinHosts), nconds: uint8(len(he.conds))}
	for i := range he.scope.slots {
		sl := &he.scope.slots[i]
		*f.slot(uint8(i)) = flatSlot{red: sl.red, seconds: sl.seconds, pair: sl.pair}
	}
	for ci := range he.conds {
		c := &he.conds[ci]
		if c.float == nil || c.flat.list == nil || len(c.flat.list) > flatTerms {
			return nil
		}
		fc := f.cond(uint8(ci))
		*fc = flatCond{name: c.name, n: uint8(len(c.flat.list)), or: c.flat.or}
		for ti := range c.flat.list {
			t := &c.flat.list[ti]
			k := &t.k
			ft := flatTerm{lo: k.f, hi: k.f, eq: math.NaN(), slot: uint8(t.slot), hosts: t.hosts, first: true, op: t.op}
			if !k.exact {
				ft.lo, ft.hi = k.lo, k.hi
			}
			if k.eqOK {
				ft.eq = k.eq
			}
			for _, prev := range c.flat.list[:ti] {
				if prev.label == t.label {
					ft.first = false
				}
			}
			fc.terms[ti] = ft
			which := 0
			if t.hosts {
				which = 1
			}
			sl := f.slot(ft.slot)
			sl.labels[which] = t.label
			f.window = max(f.window, sl.seconds)
		}
	}
	return f
}

// Evaluate is the hclEvaluator's float path, term by term.
func (f *flatEval) Evaluate(w *Windows, now float64) ([]Result, error) {
	// This evaluation's reductions, each computed at its first read.
	var vals [flatSlots]struct {
		v, hosts    float64
		ok, wasRead bool
	}
	out := f.res[:0]
	for ci := range f.nconds {
		c := f.cond(ci)
		rd := c.readings[:0]
		decided, unknown := false, false
		for ti := range c.n {
			t := &c.terms[ti&(flatTerms-1)]
			sv := &vals[t.slot&(flatSlots-1)]
			sl := f.slot(t.slot)
			if !sv.wasRead {
				w.keep(sl.seconds)
				sv.v, sv.hosts, sv.ok = reduceWindow(w, now, int(f.minHosts), &f.tgt, sl.red, sl.seconds, sl.pair, &sl.sel)
				sv.wasRead = true
			}
			v, label := sv.v, sl.labels[0]
			if t.hosts {
				v, label = sv.hosts, sl.labels[1]
			}
			if sv.ok && t.first {
				rd = append(rd, Reading{label, v})
			}
			switch {
			case !sv.ok || v != v: // no data, or NaN
				unknown = true
				continue
			case math.IsInf(v, 0):
				return f.hcl().Evaluate(w, now) // which counts the fallback
			}
			if compare(t.op, v < t.hi, v > t.lo, v == t.eq) == c.or {
				decided = true
			}
		}
		out = append(out, Result{})
		r := &out[len(out)-1]
		r.Condition, r.Values = c.name, nil
		if len(rd) > 0 {
			r.Values = rd[:len(rd):len(rd)]
		}
		switch {
		case decided:
			r.Known, r.Holds = true, c.or
		case unknown:
			r.Known, r.Holds = false, false
		default:
			r.Known, r.Holds = true, !c.or
		}
	}
	f.floats += int64(f.nconds)
	f.evaluated = true
	return out, nil
}

// Window is the longest window its conditions have read, as the
// hclEvaluator's: none before its first evaluation.
func (f *flatEval) Window() float64 {
	var w float64
	if f.full != nil {
		w = f.full.Window()
	}
	if f.evaluated {
		w = max(w, f.window)
	}
	return w
}

// Reads is every window its conditions read.
func (f *flatEval) Reads() []*blueprints.WindowSpec { return f.reads }

// hcl is its conditions as the hclEvaluator, built at the first call.
func (f *flatEval) hcl() *hclEvaluator {
	if f.full == nil {
		f.full = buildHCL(f.tgt, f.policy)
	}
	return f.full
}

// hclOf is the hclEvaluator of a user-defined policy's evaluator (false:
// it is a built-in one).
func hclOf(ev Evaluator) (*hclEvaluator, bool) {
	switch e := ev.(type) {
	case *hclEvaluator:
		return e, true
	case *flatEval:
		return e.hcl(), true
	}
	return nil, false
}
