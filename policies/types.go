package policies

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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
	// the decision ("mean(cpu, 10s)" -> 83.2), in the order read. They are
	// the evaluator's, as the results are: valid until its next Evaluate
	// or Peek (an evaluation allocates nothing).
	Values []Reading
}

// Reading is a window value a condition read, by its label.
type Reading struct {
	Label string
	Value float64
}

// ValuesMap is a result's values as a map (nil for none): what a status
// keeps.
func ValuesMap(rs []Reading) map[string]float64 {
	if len(rs) == 0 {
		return nil
	}
	m := make(map[string]float64, len(rs))
	for _, r := range rs {
		m[r.Label] = r.Value
	}
	return m
}

// Values are the window values a decision was made on, each label once.
// A decision keeps a copy of its result's readings (one small slice, where
// a map would cost several allocations for every held-back decision); in
// JSON they are an object, labels sorted, as a map would be.
type Values []Reading

// Clone is a copy of the values that nothing else writes (nil for none).
func (v Values) Clone() Values {
	if len(v) == 0 {
		return nil
	}
	return slices.Clone(v)
}

// Get is the value of label.
func (v Values) Get(label string) (float64, bool) {
	for _, r := range v {
		if r.Label == label {
			return r.Value, true
		}
	}
	return 0, false
}

// Map is the values as a map (nil for none).
func (v Values) Map() map[string]float64 { return ValuesMap(v) }

func (v Values) MarshalJSON() ([]byte, error) { return json.Marshal(v.Map()) }

func (v *Values) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*v = nil
	for _, k := range slices.Sorted(maps.Keys(m)) {
		*v = append(*v, Reading{k, m[k]})
	}
	return nil
}

// Evaluator evaluates a policy's conditions over the windows at a time.
// Built-in (Go) and user-defined (HCL) policy types both implement it. The
// results it returns are its own, reused by its next evaluation.
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

// reader is implemented by evaluators that know every window they read:
// the pipeline evaluates them only on a metric one of those windows
// holds. nil: it cannot tell, so every metric of its deployment evaluates
// it.
type reader interface {
	Reads() []*blueprints.WindowSpec
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
	// nodesID names the set of Nodes (interned by NewInstance: policies
	// over the same nodes share their windows' reductions); 0: not known.
	nodesID uint64
}

// query is a window of metric over the target's nodes.
func (t Target) query(metric string, seconds, now float64) Query {
	return Query{Deployment: t.Deployment, Nodes: t.Nodes, MinHosts: t.MinHosts, Metric: metric, Seconds: seconds, Now: now, nodesID: t.nodesID}
}

// nodeSets numbers the node sets of targets, by their sorted names.
var nodeSets struct {
	sync.Mutex
	ids map[string]uint64
}

// intern gives the target the number of its node set (every node: 1).
func (t *Target) intern() {
	if t.Nodes == nil {
		t.nodesID = 1
		return
	}
	key := strings.Join(slices.Sorted(maps.Keys(t.Nodes)), "\x00")
	nodeSets.Lock()
	defer nodeSets.Unlock()
	if nodeSets.ids == nil {
		nodeSets.ids = map[string]uint64{}
	}
	id, ok := nodeSets.ids[key]
	if !ok {
		id = uint64(len(nodeSets.ids)) + 2
		nodeSets.ids[key] = id
	}
	t.nodesID = id
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

// hclEvaluator evaluates a policy type written in the blueprint. What an
// evaluation reads comes first.
type hclEvaluator struct {
	scope *scope
	conds []condition
	res   []Result
	// floats counts the evaluations the float paths decided.
	floats int64
	*hclCold
}

// hclCold is what a compiled evaluation does not read.
type hclCold struct {
	// fallbacks counts the evaluations the float paths gave back to the
	// cty closures.
	fallbacks int64
	params    cty.Value
	fns       map[string]function.Function
	ctx       *hcl.EvalContext
	// reads are the windows its conditions read, all of them compiled
	// (nil: one is interpreted, so any window may be read, or none is).
	reads []*blueprints.WindowSpec
}

// condition is a condition of a user-defined policy type as evaluated:
// what an evaluation reads of it, in one array.
type condition struct {
	name string
	// flat is its float path when it is comparisons of reductions with
	// constants (flat.list nil: it is not); float its float path
	// (nil: none).
	flat  terms
	float fastFn
	// compiled is it compiled (nil: HCL's interpreter runs it, for the
	// reason in why).
	compiled compiled
	when     hcl.Expression
	why      string
}

// Reads is every window the conditions read, when all are compiled.
func (e *hclEvaluator) Reads() []*blueprints.WindowSpec { return e.reads }

// scope answers the window functions for one policy: it binds them to the
// policy's deployment and nodes and to the evaluation time.
type scope struct {
	w   *Windows
	now float64
	gen uint64 // the evaluation's number (a slot is valid at its gen)
	// readings are this evaluation's values, of every condition, the
	// current condition's from mark.
	readings []Reading
	mark     int
	// longest is the longest window read so far.
	longest float64
	// memo keeps this evaluation's reductions: a condition often reads the
	// same window more than once (and HCL evaluates both branches of ?:).
	// A compiled reduction has a slot instead, valid while its gen is
	// the evaluation's. nil until an interpreted condition reads a
	// window (a compiled policy never touches it).
	memo   map[reduceKey]reduced
	slots  []slot
	target Target
}

// slot is a compiled reduction's: its value at evaluation gen, its
// window's selection, and what computing it reads (red; its window's
// seconds and whether it is a pair here, as they are read each
// evaluation): one line of memory. mean and hosts of a window share one
// (hosts is the pair's second value), as they are computed together.
type slot struct {
	r       reduced
	hosts   float64
	gen     uint64
	sel     *selection
	seconds float64
	red     *windowReduction
	pair    bool
}

// fread is a compiled reduction as a condition reads it: its slot, which
// of a mean and hosts pair (hosts), and its label among the condition's
// values.
type fread struct {
	label string
	slot  int32
	hosts bool
}

type reduceKey struct {
	fn, metric, pattern string
	seconds, arg        float64
}

type reduced struct {
	v  float64
	ok bool
}

// reductionLabel names a reduction in a condition's values ("mean(cpu,
// 30s)"), for explaining a decision.
func reductionLabel(fn string, spec *blueprints.WindowSpec, arg float64) string {
	name := spec.Metric
	if spec.Pattern != "" {
		name = "services(" + spec.Pattern + ")"
	}
	if fn == "percentile" || fn == "ewma" {
		return fmt.Sprintf("%s(%s, %gs, %g)", fn, name, spec.Duration, arg)
	}
	return fmt.Sprintf("%s(%s, %gs)", fn, name, spec.Duration)
}

// Reduce answers a window function of a condition HCL's interpreter
// evaluates.
func (s *scope) Reduce(fn string, spec *blueprints.WindowSpec, arg float64) (float64, bool) {
	key := reduceKey{fn, spec.Metric, spec.Pattern, spec.Duration, arg}
	s.widen(spec.Duration)
	r, seen := s.memo[key]
	if !seen {
		if s.memo == nil {
			s.memo = map[reduceKey]reduced{}
		}
		var re *regexp.Regexp
		if spec.Pattern != "" {
			re, _ = pattern(spec.Pattern)
		}
		if q, ok := s.query(spec.Metric, spec.Duration, spec.Pattern != "", re, nil); ok {
			r.v, r.ok = s.w.Reduce(fn, q, arg)
		}
		s.memo[key] = r
	}
	if r.ok {
		s.note(reductionLabel(fn, spec, arg), r.v)
	}
	return r.v, r.ok
}

// widen notes a window of seconds read: the longest so far, and the
// history the windows keep (Windows.keep).
func (s *scope) widen(seconds float64) {
	s.longest = max(s.longest, seconds)
	if s.w != nil {
		s.w.keep(seconds)
	}
}

// reduceCompiled is Reduce for a compiled reduction, memoized in its slot.
func (s *scope) reduceCompiled(rd fread) (float64, bool) {
	sl := &s.slots[rd.slot]
	if sl.gen != s.gen {
		s.widen(sl.seconds)
		s.reduceInto(sl)
		sl.gen = s.gen
	}
	r := sl.r
	if rd.hosts {
		r.v = sl.hosts
	}
	if r.ok {
		s.note(rd.label, r.v)
	}
	return r.v, r.ok
}

// reduceInto computes a slot's reduction.
func (s *scope) reduceInto(sl *slot) {
	sl.r.v, sl.hosts, sl.r.ok = reduceWindow(s.w, s.now, s.target.MinHosts, &s.target, sl.red, sl.seconds, sl.pair, &sl.sel)
}

// reduceWindow is a compiled reduction of the target's (pair: a mean and
// hosts, over seconds) at now: from its selection's memo when another
// policy read it at this time, else through a query (sel keeps the
// selection). minHosts is the target's, read apart from it: the target
// itself is read only for a query.
func reduceWindow(w *Windows, now float64, minHosts int, t *Target, red *windowReduction, seconds float64, pair bool, sel **selection) (v, hosts float64, ok bool) {
	k := memoKey{fn: meanHostsFn, seconds: seconds, now: now, minHosts: minHosts} // as MeanHosts keeps it
	if !pair {
		k.fn, k.arg = red.fn, red.arg
	}
	if m, seen := (*sel).recall(w, k); seen {
		return m.v, m.hosts, m.ok
	}
	q, qok := t.windowQuery(w, now, red.metric, red.seconds, red.byPattern, red.re, sel)
	switch {
	case !qok:
		return 0, 0, false
	case pair:
		return w.MeanHosts(q)
	}
	v, ok = w.Reduce(red.fn, q, red.arg)
	return v, 0, ok
}

// note records a value the current condition read (once per label).
func (s *scope) note(label string, v float64) {
	for i := s.mark; i < len(s.readings); i++ {
		if s.readings[i].Label == label {
			s.readings[i].Value = v
			return
		}
	}
	s.readings = append(s.readings, Reading{label, v})
}

// current is what the current condition read (nil: nothing), capped so
// the next condition's readings do not write over it.
func (s *scope) current() []Reading {
	n := len(s.readings)
	if n == s.mark {
		return nil
	}
	return s.readings[s.mark:n:n]
}

// query is the policy's query of a window (Target.windowQuery).
func (s *scope) query(metric string, seconds float64, byPattern bool, re *regexp.Regexp, sel **selection) (Query, bool) {
	return s.target.windowQuery(s.w, s.now, metric, seconds, byPattern, re, sel)
}

// windowQuery is the target's query of a window of metric (or,
// byPattern, of the services re matches) over seconds at now (not ok:
// its pattern does not compile, so no data); sel is where its selection
// is kept (nil: looked up).
func (t *Target) windowQuery(w *Windows, now float64, metric string, seconds float64, byPattern bool, re *regexp.Regexp, sel **selection) (Query, bool) {
	q := t.query(metric, seconds, now)
	if byPattern {
		if re == nil {
			return q, false
		}
		q.Pattern = re
	}
	q.sel = w.selectionOf(&q, sel)
	return q, true
}

// patterns interns the compiled services() patterns: every policy with the
// same pattern shares one, so a series remembers whether it matches once.
var patterns sync.Map // string -> *regexp.Regexp

func pattern(p string) (*regexp.Regexp, error) {
	if re, ok := patterns.Load(p); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	actual, _ := patterns.LoadOrStore(p, re)
	return actual.(*regexp.Regexp), nil
}

// hclAlloc is what an evaluation of a user-defined policy reads, in one
// allocation (a metric's evaluation finds it cold: adjacent memory is
// fetched together): the evaluator, its scope and, for the few
// conditions and reductions most types have, their arrays. The order
// and the padding put what an evaluation of one condition reading one
// slot touches on 8 cache lines (TestHCLAllocLayout): the object's
// size class (896) is a multiple of 64 and its data starts 8 bytes in
// (Go's heap header of an object over 512 bytes with pointers), so the
// first slot, the first condition's hot part and the first result each
// sit on a line of their own.
type hclAlloc struct {
	e        hclEvaluator
	sc       scope
	_        [8]byte
	readings [4]Reading
	slots    [2]slot
	conds    [2]condition
	res      [2]Result
	cold     hclCold
}

// within is buf[:n] when n fits in it, else a new slice of n.
func within[T any](buf []T, n int) []T {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]T, n)
}

func compileHCL(t Target, p *blueprints.PlanPolicy) (Evaluator, error) {
	e := buildHCL(t, p)
	if f := newFlatEval(e, t, p); f != nil {
		return f, nil
	}
	return e, nil
}

// buildHCL compiles a user-defined policy type's conditions for a policy.
func buildHCL(t Target, p *blueprints.PlanPolicy) *hclEvaluator {
	a := &hclAlloc{}
	sc := &a.sc
	sc.target = t
	params, _ := p.Properties.Unmark()
	if params == cty.NilVal || params.IsNull() {
		params = cty.EmptyObjectVal
	}
	e := &a.e
	e.hclCold = &a.cold
	e.params, e.scope, e.fns = params, sc, blueprints.ConditionFunctions(sc)
	e.conds = within(a.conds[:], len(p.Type.Conditions))
	e.res, sc.readings = a.res[:0], a.readings[:0]
	e.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{"param": params}, Functions: e.fns}
	c := newCompiler(params)
	all := true
	for i, cond := range p.Type.Conditions {
		ec := &e.conds[i]
		ec.name, ec.when = cond.Name, cond.When
		fn, err := c.compile(cond.When)
		if err != nil {
			ec.why = err.Error()
			all = false
			continue
		}
		ec.compiled = fn
		if se, ok := cond.When.(hclsyntax.Expression); ok {
			if ec.float = c.fast(se); ec.float != nil {
				if ts := c.flat(se); ts != nil {
					ec.flat = *ts
				}
			}
		}
	}
	sc.slots = within(a.slots[:], len(c.slots))
	for i, red := range c.slotReds {
		sc.slots[i] = slot{seconds: red.seconds, red: red, pair: red.pair}
	}
	if all {
		// None read (constant conditions): every metric evaluates it,
		// as before windows were indexed.
		e.reads = c.reads
	}
	return e
}

// ConditionCompilation says, per condition of a user-defined policy type,
// whether it is compiled or left to HCL's interpreter, and why.
type ConditionCompilation struct {
	Policy, Condition string
	Compiled          bool
	// Float: a compiled condition that is evaluated in float64 (where
	// that gives what cty gives; in cty otherwise).
	Float bool
	Why   string
}

// Compilation reports how the conditions of a plan's user-defined policies
// are evaluated (orch validate -v prints it).
func Compilation(plan *blueprints.Plan) []ConditionCompilation {
	var out []ConditionCompilation
	for _, p := range plan.Policies {
		if p.Type == nil || p.Type.Uses != "" {
			continue
		}
		if v, _ := p.Properties.UnmarkDeep(); v != cty.NilVal && !v.IsWhollyKnown() {
			continue
		}
		he := buildHCL(Target{Deployment: "validate"}, p)
		for _, cd := range he.conds {
			out = append(out, ConditionCompilation{Policy: p.Name, Condition: cd.name, Compiled: cd.compiled != nil, Float: cd.float != nil, Why: cd.why})
		}
	}
	return out
}

// Window is the longest window its conditions have read.
func (e *hclEvaluator) Window() float64 { return e.scope.longest }

func (e *hclEvaluator) Evaluate(w *Windows, now float64) ([]Result, error) {
	e.scope.w, e.scope.now = w, now
	e.scope.gen++
	if e.scope.memo != nil { // made by the first interpreted reduction
		clear(e.scope.memo)
	}
	out := e.res[:0]
	sc := e.scope
	sc.readings = sc.readings[:0]
	for i := range e.conds {
		c := &e.conds[i]
		sc.mark = len(sc.readings)
		if c.float != nil {
			var fv fval
			var ok bool
			if c.flat.list != nil {
				fv, ok = c.flat.eval(sc)
			} else {
				fv, ok = c.float(sc)
			}
			if ok {
				e.floats++
				out = append(out, Result{}) // and filled in place (see scaleThreshold)
				r := &out[len(out)-1]
				r.Condition, r.Known, r.Holds, r.Values = c.name, fv.known, fv.known && fv.b, sc.current()
				continue
			}
			e.fallbacks++
			sc.readings = sc.readings[:sc.mark]
		}
		var v cty.Value
		if c.compiled != nil {
			var err error
			if v, err = c.compiled(e.scope); err != nil {
				return nil, fmt.Errorf("condition %s: %w", c.name, err)
			}
		} else {
			var diags hcl.Diagnostics
			if v, diags = c.when.Value(e.ctx); diags.HasErrors() {
				return nil, fmt.Errorf("condition %s: %s", c.name, strings.TrimSpace(diags.Error()))
			}
		}
		r := Result{Condition: c.name, Values: sc.current()}
		switch {
		case v.Type() == cty.Bool && (v == cty.True || v == cty.False): // most conditions: no conversion
			r.Known, r.Holds = true, v == cty.True
		default:
			if b, err := convert.Convert(v, cty.Bool); err == nil && b.IsKnown() && !b.IsNull() {
				r.Known = true
				r.Holds = b.True()
			}
		}
		out = append(out, r)
	}
	e.res = out
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
