package policies

import (
	"fmt"
	"math"

	"github.com/orchhq/orch/blueprints"
)

// targetValue is the HPA's rule over a window: the ratio of the metric's
// mean across hosts to the target. The policy stays pure: it fires a
// direction with the ratio, and the workflow reads the replicas and sets
// ceil(current x ratio).
type targetValue struct {
	target             Target
	metric             string
	window, goal, tol  float64
	upStab, downStab   float64
	upLimit, downLimit float64 // percent; 0: none
	recs               []ratioRec
	res                [2]Result
	upVals, downVals   [3]Reading
}

// ratioRec is the lowest and highest ratio of one second (a ratio within
// the tolerance counted as 1), for the stabilization windows.
type ratioRec struct {
	sec      float64
	low, top float64
}

func newTargetValue(t Target, pol *blueprints.PlanPolicy) (Evaluator, error) {
	p := readProps(pol)
	tv := &targetValue{target: t, metric: p.str("metric"), goal: p.num("target"), window: p.seconds("window"), tol: p.num("tolerance"),
		upLimit: p.num("scale_up_limit_percent"), downLimit: p.num("scale_down_limit_percent")}
	tv.upStab = stabilization(p, "scale_up_stabilization")
	tv.downStab = stabilization(p, "scale_down_stabilization")
	if p.err != nil {
		return nil, fmt.Errorf("policy %s: %w", pol.Name, p.err)
	}
	if tv.goal <= 0 || tv.tol < 0 || tv.tol > 1 || tv.upLimit < 0 || tv.downLimit < 0 || tv.downLimit > 100 {
		return nil, fmt.Errorf("policy %s: target %g, tolerance %g, limits %g%%/%g%% out of range", pol.Name, tv.goal, tv.tol, tv.upLimit, tv.downLimit)
	}
	return tv, nil
}

// stabilization reads a duration that may be "0s".
func stabilization(p *props, name string) float64 {
	s := p.str(name)
	if p.err != nil {
		return 0
	}
	d, err := blueprints.ParseDurationOrZero(s)
	if err != nil {
		p.err = fmt.Errorf("property %s: %w", name, err)
		return 0
	}
	return d.Seconds()
}

// Window is the window the ratio is taken over.
func (tv *targetValue) Window() float64 { return tv.window }

// Reads is its metric's window.
func (tv *targetValue) Reads() []*blueprints.WindowSpec {
	return []*blueprints.WindowSpec{{Metric: tv.metric, Duration: tv.window}}
}

// ScaleUp is the condition on_missing_data = "scale_up" fires.
func (tv *targetValue) ScaleUp() string { return "scale_up" }

// Peek evaluates a copy: the stabilization record stays as it is.
func (tv *targetValue) Peek(w *Windows, now float64) ([]Result, error) {
	c := *tv
	c.recs = append([]ratioRec(nil), tv.recs...)
	return c.Evaluate(w, now)
}

func (tv *targetValue) Evaluate(w *Windows, now float64) ([]Result, error) {
	up, down := Result{Condition: "scale_up"}, Result{Condition: "scale_down"}
	q := tv.target.query(tv.metric, tv.window, now)
	value, hosts, ok := w.MeanHosts(q)
	if !ok {
		tv.res = [2]Result{up, down}
		return tv.res[:], nil
	}
	ratio := value / tv.goal
	if math.Abs(ratio-1) <= tv.tol {
		ratio = 1 // within the tolerance: this recommendation is no change
	}
	tv.remember(now, ratio)
	low, top := tv.stabilized(now)
	if tv.upLimit > 0 {
		low = math.Min(low, 1+tv.upLimit/100)
	}
	top = math.Max(top, 1-tv.downLimit/100)
	tv.upVals = [3]Reading{{"value", value}, {"hosts", hosts}, {"ratio", low}}
	tv.downVals = [3]Reading{{"value", value}, {"hosts", hosts}, {"ratio", top}}
	up.Known, down.Known = true, true
	up.Values, down.Values = tv.upVals[:], tv.downVals[:]
	up.Holds, down.Holds = low > 1, top < 1
	tv.res = [2]Result{up, down}
	return tv.res[:], nil
}

// remember records a ratio in its second, and forgets the seconds beyond
// both stabilization windows.
func (tv *targetValue) remember(now, ratio float64) {
	sec := math.Floor(now)
	if n := len(tv.recs); n > 0 && tv.recs[n-1].sec == sec {
		r := &tv.recs[n-1]
		r.low, r.top = math.Min(r.low, ratio), math.Max(r.top, ratio)
	} else if n > 0 && tv.recs[n-1].sec > sec {
		// A metric late for its second counts in the newest one.
		r := &tv.recs[n-1]
		r.low, r.top = math.Min(r.low, ratio), math.Max(r.top, ratio)
	} else {
		tv.recs = append(tv.recs, ratioRec{sec: sec, low: ratio, top: ratio})
	}
	keep := math.Max(tv.upStab, tv.downStab)
	drop := 0
	for drop < len(tv.recs)-1 && tv.recs[drop].sec <= now-keep-1 {
		drop++
	}
	if drop > 0 {
		tv.recs = append(tv.recs[:0], tv.recs[drop:]...)
	}
}

// stabilized is the lowest ratio of the scale-up window and the highest of
// the scale-down window (the newest second always counts), as the HPA
// takes the lowest and highest recommendation of its windows.
func (tv *targetValue) stabilized(now float64) (low, top float64) {
	n := len(tv.recs)
	low, top = tv.recs[n-1].low, tv.recs[n-1].top
	for i := n - 2; i >= 0; i-- {
		r := tv.recs[i]
		if r.sec > now-tv.upStab {
			low = math.Min(low, r.low)
		}
		if r.sec > now-tv.downStab {
			top = math.Max(top, r.top)
		}
	}
	return low, top
}
