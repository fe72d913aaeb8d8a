package policies

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/hashicorp/hcl/v2"

	"github.com/orchhq/orch/blueprints"
)

// interpreted is ev with every condition left to HCL's interpreter.
func interpreted(ev Evaluator) Evaluator {
	he, ok := hclOf(ev)
	if !ok {
		return ev
	}
	return copyEvaluator(he, true)
}

// withoutFloats is ev with the float path off: the cty closures only.
func withoutFloats(ev Evaluator) Evaluator {
	he, _ := hclOf(ev)
	return copyEvaluator(he, false)
}

// withoutFlat is ev with the float path's closures in place of its flat
// comparisons.
func withoutFlat(ev Evaluator) Evaluator {
	he, _ := hclOf(ev)
	cp := copyEvaluator(he, false)
	for i := range cp.conds {
		cp.conds[i].float = he.conds[i].float
	}
	return cp
}

// copyEvaluator is a copy of he with its own scope, without its float
// paths and (interpret) its closures.
func copyEvaluator(he *hclEvaluator, interpret bool) *hclEvaluator {
	cp := *he
	cold := *he.hclCold
	cp.hclCold = &cold
	cp.conds = slices.Clone(he.conds)
	for i := range cp.conds {
		if interpret {
			cp.conds[i].compiled = nil
		}
		cp.conds[i].float, cp.conds[i].flat = nil, terms{}
	}
	sc := *he.scope
	sc.memo = map[reduceKey]reduced{}
	sc.slots = slices.Clone(sc.slots)
	// Results and readings of its own: he's are written in place, and
	// would be the copy's too.
	cp.res, sc.readings = nil, nil
	cp.scope = &sc
	cp.fns = blueprints.ConditionFunctions(&sc)
	cp.ctx = &hcl.EvalContext{Variables: he.ctx.Variables, Functions: cp.fns}
	return &cp
}

// diffFloats counts the evaluations of the differential test that the
// float path decided, and those it gave back to cty, and the conditions
// it compiled, and of those the flat ones (comparisons joined).
var diffFloats struct{ floats, fallbacks, conds, flat, flatEvals int64 }

// condGen writes random conditions over two metrics' windows, literals
// and parameters: numbers, comparisons, logic, ?:, functions.
type condGen struct{ r *rand.Rand }

var (
	genReductions = []string{
		`mean(window("cpu", "30s"))`, `max(window("cpu", param.w))`, `min(window("mem", "10s"))`,
		`percentile(window("cpu", "30s"), 90)`, `ewma(window("mem", "30s"), 0.5)`, `count(window("cpu", "30s"))`,
		`sum(window("mem", "30s"))`, `last(window("cpu", "10s"))`, `rate(window("cpu", "30s"))`,
		`hosts(window("mem", "30s"))`, `mean(services("\\.cpu\\.", "30s"))`, `percentile(window("mem", "30s"), param.q)`,
	}
	genLiterals = []string{"0", "1", "80", "0.1", "0.2", "0.3", "-5", "1e-3", "100", "79.9", "param.t", "param.z"}
)

func (g *condGen) num(depth int) string {
	if depth <= 0 || g.r.IntN(3) == 0 {
		if g.r.IntN(2) == 0 {
			return genReductions[g.r.IntN(len(genReductions))]
		}
		return genLiterals[g.r.IntN(len(genLiterals))]
	}
	a, b := g.num(depth-1), g.num(depth-1)
	switch g.r.IntN(14) {
	case 0:
		return "(" + a + " + " + b + ")"
	case 1:
		return "(" + a + " - " + b + ")"
	case 2:
		return "(" + a + " * " + b + ")"
	case 3:
		return "(" + a + " / " + b + ")"
	case 4:
		return "-(" + a + ")"
	case 5:
		return "abs(" + a + ")"
	case 6:
		return "max(" + a + ", " + b + ")"
	case 7:
		return "min(" + a + ", " + b + ")"
	case 8:
		return "floor(" + a + ")"
	case 9:
		return "(" + a + " % " + b + ")"
	case 10:
		return "ceil(" + a + ")"
	case 11:
		return "signum(" + a + ")"
	case 12:
		return "pow(" + a + ", " + []string{"2", "0.5", "-1", b}[g.r.IntN(4)] + ")"
	default:
		return "(" + g.boolean(depth-1) + " ? " + a + " : " + b + ")"
	}
}

func (g *condGen) boolean(depth int) string {
	if depth <= 0 {
		return []string{"param.on", "true", "false", "(" + g.num(0) + " > " + g.num(0) + ")"}[g.r.IntN(4)]
	}
	switch g.r.IntN(10) {
	case 0:
		return "(" + g.boolean(depth-1) + " && " + g.boolean(depth-1) + ")"
	case 1:
		return "(" + g.boolean(depth-1) + " || " + g.boolean(depth-1) + ")"
	case 2:
		return "!" + g.boolean(depth-1)
	case 3:
		return "(" + g.boolean(depth-1) + " ? " + g.boolean(depth-1) + " : " + g.boolean(depth-1) + ")"
	}
	op := []string{">", ">=", "<", "<=", "==", "!="}[g.r.IntN(6)]
	return "(" + g.num(depth-1) + " " + op + " " + g.num(depth-1) + ")"
}

// chain writes what most conditions are: comparisons of reductions with
// literals joined all by && or all by || (flat on the float path), at
// times in parentheses, or under a ?: that always takes one branch.
func (g *condGen) chain() string { return g.chainOf(genReductions, 4) }

// chainOf is chain of at most most comparisons, each of a reduction of
// reds.
func (g *condGen) chainOf(reds []string, most int) string {
	join := []string{" && ", " || "}[g.r.IntN(2)]
	var b strings.Builder
	for i := range 1 + g.r.IntN(most) {
		if i > 0 {
			b.WriteString(join)
		}
		red, lit := reds[g.r.IntN(len(reds))], genLiterals[g.r.IntN(len(genLiterals))]
		op := []string{">", ">=", "<", "<=", "==", "!="}[g.r.IntN(6)]
		if g.r.IntN(2) == 0 {
			red, lit = lit, red
		}
		fmt.Fprintf(&b, "(%s %s %s)", red, op, lit)
	}
	c := b.String()
	switch g.r.IntN(4) {
	case 0:
		return "(" + c + ")"
	case 1:
		return "(param.on ? " + c + " : " + c + ")"
	}
	return c
}

const diffBlueprint = `
node "web" {}
workflow "scale" { uses = "test.scale" }
policy_type "gen" {
  parameter "t" { default = 80 }
  parameter "z" { default = 0 }
  parameter "q" { default = 95 }
  parameter "on" { default = true }
  parameter "w" { default = "20s" }
%s
}
policy "p" {
  type    = policy_type.gen
  targets = [node.web]
  trigger "c0" { workflow = workflow.scale }
}
`

var diffValues = []float64{0, 1, 0.1, 0.2, 0.3, 79.9, 80, 80.00000000000001, -3, 1e6, 2.5, 1e300, 1e-310, 1<<53 + 2, 0.5}

// checkSame evaluates a policy type of conditions both ways over random
// windows and fails on the first difference: holds, known, the values the
// condition read, or whether it errs. It reports false for conditions orch
// validate refuses (a constant 0/0, say): nothing to compare.
func checkSame(tb testing.TB, conds []string, r *rand.Rand, rounds int) bool {
	return checkSameOver(tb, conds, r, rounds, diffValues)
}

// checkSameOver is checkSame with the windows' values drawn from values.
func checkSameOver(tb testing.TB, conds []string, r *rand.Rand, rounds int, values []float64) bool {
	tb.Helper()
	var decls strings.Builder
	for i, c := range conds {
		fmt.Fprintf(&decls, "  condition \"c%d\" { when = %s }\n", i, c)
	}
	plan, diags := resolveSource(fmt.Sprintf(diffBlueprint, decls.String()))
	if diags.HasErrors() {
		return false // a constant 0/0 or inf % n, refused where it is written
	}
	p := plan.Policies[0]
	target := Target{Deployment: "shop", Nodes: map[string]bool{"web": true}}
	fast, err := Compile(target, p)
	if err != nil {
		tb.Fatal(err)
	}
	slow := interpreted(fast)
	closures := withoutFloats(fast)
	tree := withoutFlat(fast)
	full, _ := hclOf(fast)
	flat, isFlat := fast.(*flatEval)
	if isFlat {
		diffFloats.flatEvals++
	}
	// The hclEvaluator's own float path, which a flatEval stands in for.
	hclFloats := withoutFloats(fast).(*hclEvaluator)
	for i := range hclFloats.conds {
		hclFloats.conds[i].float, hclFloats.conds[i].flat = full.conds[i].float, full.conds[i].flat
	}
	for _, c := range full.conds {
		if c.float != nil {
			diffFloats.conds++
		}
		if c.flat.list != nil {
			diffFloats.flat++
		}
	}
	defer func() {
		diffFloats.floats += full.floats
		diffFloats.fallbacks += full.fallbacks
		if isFlat {
			diffFloats.floats += flat.floats
		}
	}()
	for round := range rounds {
		w := NewWindows(60)
		now := 1.7e9 + float64(round)
		for _, metric := range []string{"cpu", "mem"} {
			for h := range r.IntN(4) {
				for k := range 1 + r.IntN(3) {
					v := values[r.IntN(len(values))]
					_ = w.Add(&Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: fmt.Sprintf("h%d", h),
						Name: metric, Path: "total", Value: v, Time: now - float64(k*7), Service: "shop.web.web_1." + metric + ".total"})
				}
			}
		}
		want, werr := slow.Evaluate(w, now)
		for _, ev := range []struct {
			name string
			e    Evaluator
		}{{"compiled", fast}, {"compiled without floats", closures}, {"compiled, the float path's closures only", tree}, {"compiled, the hclEvaluator's float path", hclFloats}} {
			got, gerr := ev.e.Evaluate(w, now)
			if (werr != nil) != (gerr != nil) {
				tb.Fatalf("conditions %q: interpreter error %v, %s error %v", conds, werr, ev.name, gerr)
			}
			if werr != nil {
				continue
			}
			for i := range want {
				if want[i].Known != got[i].Known || want[i].Holds != got[i].Holds || !reflect.DeepEqual(ValuesMap(want[i].Values), ValuesMap(got[i].Values)) || len(want[i].Values) != len(got[i].Values) {
					tb.Fatalf("condition %s: interpreter %+v, %s %+v", conds[i], want[i], ev.name, got[i])
				}
			}
		}
	}
	return true
}

// diffScale multiplies the generated cases (raised by hand for a long run).
var diffScale = 1

// Compiled conditions give what HCL's interpreter gives, on generated
// conditions and windows (missing data, zero, decimals, division by zero).
func TestCompiledConditionsMatchTheInterpreter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	g := &condGen{r: r}
	n, valid := 300*diffScale, 0
	for i := range n {
		conds := []string{g.boolean(1 + i%4), g.boolean(2)}
		if checkSame(t, conds, r, 20) {
			valid++
		}
	}
	if valid < n*9/10 {
		t.Errorf("only %d of %d generated policy types validate", valid, n)
	}
	// The float path is what is tested here as much as the closures: most
	// generated conditions are on it, and decided by it.
	if f, b := diffFloats.floats, diffFloats.fallbacks; f < 3*b || f < int64(n) {
		t.Errorf("the float path decided %d evaluations and gave %d back to cty", f, b)
	}
	// So are its flat comparisons.
	if diffFloats.flat < diffFloats.conds/10 {
		t.Errorf("of %d conditions on the float path, %d are flat comparisons", diffFloats.conds, diffFloats.flat)
	}
	t.Logf("float path: %d evaluations decided, %d given back to cty; %d conditions, %d flat", diffFloats.floats, diffFloats.fallbacks, diffFloats.conds, diffFloats.flat)
}

// Comparisons joined all by && or all by || are evaluated flat, and give
// what the interpreter and the float path's closures give (missing data,
// == against decimals, each comparison's value recorded).
func TestFlatComparisonsMatchTheInterpreter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	g := &condGen{r: r}
	before := diffFloats.flat
	for range 200 * diffScale {
		checkSame(t, []string{g.chain(), g.chain()}, r, 20)
	}
	if flat := diffFloats.flat - before; flat < 300*int64(diffScale) {
		t.Errorf("%d of 400 generated conditions are flat", flat)
	}
}

// A policy type of one or two flat conditions over at most two windows
// is evaluated by a flatEval, which gives what the interpreter, the
// closures and the hclEvaluator's float path give: missing data, == against
// decimals, each reading recorded once per condition, and an
// infinite value (a sum past the largest float64) handed to the
// hclEvaluator.
func TestFlatEvalMatchesTheInterpreter(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pools := [][]string{
		{`mean(window("cpu", "30s"))`, `hosts(window("cpu", "30s"))`},
		{`mean(services("\\.cpu\\.", "10s"))`, `hosts(services("\\.cpu\\.", "10s"))`, `sum(window("mem", "30s"))`},
		{`max(window("cpu", param.w))`, `percentile(window("mem", "30s"), param.q)`},
	}
	values := append(slices.Clone(diffValues), 1.7e308)
	before, flatEvals, fallbacks := diffFloats.floats, diffFloats.flatEvals, diffFloats.fallbacks
	n := 300 * diffScale
	g := &condGen{r: r}
	for range n {
		pool := pools[r.IntN(len(pools))]
		conds := []string{g.chainOf(pool, 2)}
		if r.IntN(2) == 0 {
			conds = append(conds, g.chainOf(pool, 2))
		}
		checkSameOver(t, conds, r, 20, values)
	}
	if got := diffFloats.flatEvals - flatEvals; got < int64(n)*9/10 {
		t.Errorf("%d of %d generated policy types are flatEvals", got, n)
	}
	if diffFloats.floats == before || diffFloats.fallbacks == fallbacks {
		t.Errorf("%d conditions decided on the float path, %d handed back (an infinite sum): want both", diffFloats.floats-before, diffFloats.fallbacks-fallbacks)
	}
}

// Which conditions are flat: comparisons of a reduction with a constant,
// one or joined all by && or all by ||.
func TestWhichConditionsAreFlat(t *testing.T) {
	cases := []struct {
		when  string
		terms int // 0: not flat
		or    bool
	}{
		{`mean(window("cpu", "30s")) > param.t`, 1, false},
		{`0.1 < mean(window("cpu", "30s"))`, 1, false},
		{`(mean(window("cpu", "30s")) > 1 && (count(window("cpu", "30s")) >= 3)) && max(window("mem", "10s")) != 2`, 3, false},
		{`mean(window("cpu", "30s")) > 1 || mean(window("cpu", "30s")) < -1`, 2, true},
		{`param.on ? hosts(window("cpu", "30s")) < 5 && 70 < mean(window("cpu", "30s")) : hosts(window("cpu", "30s")) > 5 && 70 > mean(window("cpu", "30s"))`, 2, false},
		{`mean(window("cpu", "30s")) > 1 && count(window("cpu", "30s")) > 1 || max(window("cpu", "30s")) > 1`, 0, false},
		{`mean(window("cpu", "30s")) + 1 > 2`, 0, false},
		{`mean(window("cpu", "30s")) > max(window("mem", "10s"))`, 0, false},
		{`!(mean(window("cpu", "30s")) > 1)`, 0, false},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			plan, diags := resolveSource(fmt.Sprintf(diffBlueprint, "  condition \"c0\" { when = "+c.when+" }\n"))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			ev, err := Compile(Target{Deployment: "shop"}, plan.Policies[0])
			if err != nil {
				t.Fatal(err)
			}
			he, _ := hclOf(ev)
			cd := he.conds[0]
			if cd.float == nil {
				t.Fatal("not on the float path")
			}
			if len(cd.flat.list) != c.terms || c.terms > 0 && cd.flat.or != c.or {
				t.Errorf("%d terms (or %v), want %d (or %v)", len(cd.flat.list), cd.flat.or, c.terms, c.or)
			}
		})
	}
}

// The conditions people write are compiled; what the compiler does not
// know is left to the interpreter, and says why.
func TestWhichConditionsAreCompiled(t *testing.T) {
	cases := []struct {
		when     string
		compiled bool
	}{
		{`mean(window("cpu", "30s")) > param.t`, true},
		{`param.on && (percentile(window("cpu", param.w), param.q) > param.t || max(window("mem", "10s")) > 2 * param.t)`, true},
		{`abs(mean(window("cpu", "30s")) - 50) < 10 ? true : count(window("cpu", "30s")) > 3`, true},
		{`[for v in [mean(window("cpu", "30s"))] : v > 1][0]`, false},
		{`percentile(window("cpu", "30s"), mean(window("mem", "30s"))) > 1`, false},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			plan, diags := resolveSource(fmt.Sprintf(diffBlueprint, "  condition \"c0\" { when = "+c.when+" }\n"))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got := Compilation(plan)
			if len(got) != 1 || got[0].Compiled != c.compiled || (!c.compiled && got[0].Why == "") {
				t.Errorf("compilation = %+v, want compiled %v", got, c.compiled)
			}
		})
	}
}

// FuzzCompiledConditions: the fuzzer's bytes seed the condition generator
// and the windows; compiled and interpreted must agree.
func FuzzCompiledConditions(f *testing.F) {
	for _, seed := range []uint64{1, 7, 42, 1234, 99999} {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], seed)
		binary.LittleEndian.PutUint64(b[8:], seed*31)
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b [16]byte
		copy(b[:], data)
		r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])))
		g := &condGen{r: r}
		checkSame(t, []string{g.boolean(1 + r.IntN(4))}, r, 5)
	})
}

// An evaluation of one condition reading one slot (a mean and hosts
// pair, say) touches 8 cache lines of its policy's allocation: the
// evaluator, the scope, two readings, the slot, the condition's hot part
// (name, flat terms, float path) and its result. A field added or moved
// that spreads them fails here.
func TestHCLAllocLayout(t *testing.T) {
	// The object's data starts this far into a 64-byte aligned block
	// (hclAlloc's comment).
	const header = 8
	var a hclAlloc
	lines := map[uintptr]bool{}
	touch := func(off, size uintptr) {
		off += header
		for l := off / 64; l <= (off+size-1)/64; l++ {
			lines[l] = true
		}
	}
	var c condition
	touch(unsafe.Offsetof(a.e), unsafe.Offsetof(a.e.hclCold))
	touch(unsafe.Offsetof(a.sc), unsafe.Offsetof(a.sc.target)+unsafe.Offsetof(a.sc.target.MinHosts)+unsafe.Sizeof(a.sc.target.MinHosts))
	touch(unsafe.Offsetof(a.readings), 2*unsafe.Sizeof(Reading{}))
	touch(unsafe.Offsetof(a.slots), unsafe.Sizeof(slot{}))
	touch(unsafe.Offsetof(a.conds), unsafe.Offsetof(c.float)+unsafe.Sizeof(c.float))
	touch(unsafe.Offsetof(a.res), unsafe.Sizeof(Result{}))
	if len(lines) > 8 {
		t.Errorf("an evaluation touches %d lines of hclAlloc, want 8", len(lines))
	}
	// The size class keeps the blocks 64-byte aligned.
	if size := unsafe.Sizeof(a) + header; size > 896 || size <= 768 {
		t.Errorf("hclAlloc is %d bytes with its header: its size class is no longer 896, a multiple of 64 (check its alignment, and this test)", size)
	}
}

func TestInstanceLayout(t *testing.T) {
	var in Instance
	// What every evaluation reads and writes (step, start, remember and
	// missing) is on the first two lines; the object is allocated alone,
	// in a size class that keeps it 64-byte aligned.
	hot := []struct {
		name      string
		off, size uintptr
	}{
		{"Eval", unsafe.Offsetof(in.Eval), unsafe.Sizeof(in.Eval)},
		{"missingSince", unsafe.Offsetof(in.missingSince), 8},
		{"lastSecond", unsafe.Offsetof(in.lastSecond), 8},
		{"ring", unsafe.Offsetof(in.ring), unsafe.Sizeof(in.ring)},
		{"last", unsafe.Offsetof(in.last), unsafe.Sizeof(in.last)},
		{"started", unsafe.Offsetof(in.started), 1},
		{"full", unsafe.Offsetof(in.full), 1},
		{"nKeys", unsafe.Offsetof(in.nKeys), 1},
		{"histKeys", unsafe.Offsetof(in.histKeys), unsafe.Sizeof(in.histKeys)},
	}
	for _, f := range hot {
		if f.off+f.size > 2*64 {
			t.Errorf("%s ends at byte %d: not on the first two lines", f.name, f.off+f.size)
		}
	}
	if size := unsafe.Sizeof(in); size > 320 || size <= 288 {
		t.Errorf("Instance is %d bytes: its size class is no longer 320, a multiple of 64 (check its layout, and this test)", size)
	}
}

// An evaluation of a flatEval's one condition reading one slot touches
// five cache lines: its header, first slot, first condition (terms and
// readings) and first result, in that order from the start of the
// object, whose data starts 8 bytes into a 64-byte aligned block (Go's
// heap header of an object over 512 bytes with pointers; its size class,
// 640, is a multiple of 64).
func TestFlatEvalLayout(t *testing.T) {
	const header = 8
	var f flatEval
	end := unsafe.Offsetof(f.res) + unsafe.Sizeof(Result{})
	if unsafe.Offsetof(f.slot0) > unsafe.Offsetof(f.cond0) || unsafe.Offsetof(f.cond0) > unsafe.Offsetof(f.res) {
		t.Error("the first slot, the first condition and the results are not in that order")
	}
	if lines := (header + end + 63) / 64; lines > 5 {
		t.Errorf("an evaluation of one condition touches %d lines, want 5", lines)
	}
	if size := unsafe.Sizeof(f) + header; size > 640 || size <= 576 {
		t.Errorf("flatEval is %d bytes with its header: its size class is no longer 640, a multiple of 64 (check its layout, and this test)", size)
	}
}

// A flatEval builds its hclEvaluator only for an evaluation it hands
// over (an infinite value): a deployed HCL policy is then a few objects,
// not the hundred its compiled closures and cty values are, which every
// garbage collection would scan.
func TestFlatEvalBuildsItsHCLEvaluatorOnlyWhenNeeded(t *testing.T) {
	pols := resolvePolicies(t, scaleCLJ)
	ev, err := Compile(Target{Deployment: "shop"}, pols["hcl_up"])
	if err != nil {
		t.Fatal(err)
	}
	f, ok := ev.(*flatEval)
	if !ok {
		t.Fatalf("scale_clj's type is a %T, want a flatEval", ev)
	}
	w := NewWindows(60)
	add := func(v, at float64) {
		if err := w.Add(&Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: "h1", Name: "cpu", Path: "total",
			Value: v, Time: at, Service: "shop.web.web_1.cpu.total"}); err != nil {
			t.Fatal(err)
		}
	}
	add(90, 1000)
	res, err := f.Evaluate(w, 1000)
	if err != nil || len(res) != 1 || !res[0].Known || !res[0].Holds || f.full != nil {
		t.Fatalf("evaluated %+v, %v; hclEvaluator built: %v (want it held, and not built)", res, err, f.full != nil)
	}
	if f.Window() != 10 || len(f.Reads()) != 1 || f.full != nil {
		t.Fatalf("window %g, reads %v; hclEvaluator built: %v", f.Window(), f.Reads(), f.full != nil)
	}
	add(1.7e308, 1001)
	add(1.7e308, 1002)
	res, err = f.Evaluate(w, 1002) // the mean is infinite: handed over
	if err != nil || len(res) != 1 || f.full == nil || f.full.fallbacks == 0 {
		t.Fatalf("evaluated %+v, %v; hclEvaluator built: %v", res, err, f.full != nil)
	}
}
