package policies

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func metric(dep, node, host, name string, v, t float64) *Metric {
	return &Metric{DeploymentID: dep, NodeName: node, NodeID: node + "_1", Host: host, Name: name, Value: v, Time: t,
		Service: dep + "." + node + "." + node + "_1." + name + "."}
}

func TestReduce(t *testing.T) {
	w := NewWindows(600)
	// host a: 10, 20 at t=100,105; host b: 40 at t=104; old sample at t=50.
	for _, m := range []*Metric{
		metric("shop", "web", "a", "cpu", 999, 50),
		metric("shop", "web", "a", "cpu", 10, 100),
		metric("shop", "web", "b", "cpu", 40, 104),
		metric("shop", "web", "a", "cpu", 20, 105),
		metric("shop", "db", "c", "cpu", 1000, 105),   // another node
		metric("other", "web", "a", "cpu", 1000, 105), // another deployment
	} {
		w.Add(m)
	}
	q := Query{Deployment: "shop", Nodes: map[string]bool{"web": true}, Metric: "cpu", Seconds: 10, Now: 105}
	tests := []struct {
		fn   string
		arg  float64
		want float64
	}{
		{"mean", 0, 27.5}, // (mean(10,20)=15 + 40) / 2 hosts
		{"hosts", 0, 2},
		{"min", 0, 10},
		{"max", 0, 40},
		{"sum", 0, 70},
		{"count", 0, 3},
		{"rate", 0, 7},
		{"last", 0, 20},
		{"percentile", 50, 20},
		{"percentile", 100, 40},
		// in time order 10@100, 40@104, 20@105: 10 -> 25 -> 22.5
		{"ewma", 0.5, 22.5},
	}
	for _, tt := range tests {
		got, ok := w.Reduce(tt.fn, q, tt.arg)
		if !ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s(%g) = %g, %v; want %g", tt.fn, tt.arg, got, ok, tt.want)
		}
	}
	// Every node of the deployment, by service pattern.
	all := Query{Deployment: "shop", Pattern: regexp.MustCompile(`^shop\..*\.cpu`), Seconds: 10, Now: 105}
	if got, _ := w.Reduce("hosts", all, 0); got != 3 {
		t.Errorf("hosts over the pattern = %g", got)
	}
	// No data is unknown, never zero.
	if _, ok := w.Reduce("mean", Query{Deployment: "shop", Metric: "rps", Seconds: 10, Now: 105}, 0); ok {
		t.Error("a window without samples gave a value")
	}
}

func TestWindowsStayBounded(t *testing.T) {
	w := NewWindows(10)
	w.MaxSamples = 100
	s := (*series)(nil)
	for i := 0; i < 100000; i++ {
		w.Add(metric("shop", "web", "a", "cpu", float64(i), float64(i)/1000))
		s = w.series[seriesKey{"shop", "web", "a", "cpu", ""}]
		// Live samples stay within the bound; the dropped prefix waiting for
		// compaction never makes the slice more than twice the bound.
		if live := len(s.samples) - s.head; live > 100 || len(s.samples) > 200 {
			t.Fatalf("after %d adds: %d live samples, %d kept, bound 100", i+1, live, len(s.samples))
		}
	}
	// The prefix sums still give the window's sum after many compactions:
	// the last 100 values, 99900..99999.
	if got, _ := w.Reduce("sum", Query{Deployment: "shop", Metric: "cpu", Seconds: 10, Now: 100}, 0); got != 9994950 {
		t.Errorf("sum of the last 100 = %g, want 9994950", got)
	}
	// A host that stops reporting expires.
	w.DefaultTTL = 5
	w.Add(metric("shop", "web", "gone", "cpu", 1, 100))
	w.Add(metric("shop", "web", "a", "cpu", 1, 200))
	if n := w.Expire(200); n != 1 || w.Len() != 1 {
		t.Errorf("expired %d, %d series left", n, w.Len())
	}
	if got, _ := w.Reduce("hosts", Query{Deployment: "shop", Metric: "cpu", Seconds: 1000, Now: 200}, 0); got != 1 {
		t.Errorf("hosts after expiry = %g", got)
	}
}

func TestLateSamplesKeepTimeOrder(t *testing.T) {
	w := NewWindows(100)
	for _, tm := range []float64{10, 30, 20} {
		w.Add(metric("d", "n", "h", "m", tm, tm))
	}
	if got, _ := w.Reduce("last", Query{Deployment: "d", Metric: "m", Seconds: 100, Now: 30}, 0); got != 30 {
		t.Errorf("last = %g after a late sample", got)
	}
	// The prefix sums follow the late insertion: the window (15, 30] holds 20 and 30.
	if got, _ := w.Reduce("sum", Query{Deployment: "d", Metric: "m", Seconds: 15, Now: 30}, 0); got != 50 {
		t.Errorf("sum over (15, 30] = %g, want 50", got)
	}
}

// The merged ewma equals the ewma of all samples stably sorted by time,
// with series interleaving and sharing timestamps.
func TestEWMAMergesSeriesInTimeOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		w := NewWindows(600)
		var all []sample
		for i := range 200 {
			host := fmt.Sprintf("h%d", rng.IntN(4))
			m := &Metric{DeploymentID: "d", NodeName: "n", NodeID: "n", Host: host, Name: "cpu",
				Value: float64(rng.IntN(100)), Time: 1000 + float64(i/3)}
			w.Add(m)
		}
		q := Query{Deployment: "d", Metric: "cpu", Seconds: 100, Now: 1067}
		w.each(q, func(s *series, lo, hi int) { all = append(all, s.samples[lo:hi]...) })
		sort.SliceStable(all, func(i, j int) bool { return all[i].t < all[j].t })
		want := all[0].v
		for _, s := range all[1:] {
			want = 0.3*s.v + 0.7*want
		}
		got, ok := w.Reduce("ewma", q, 0.3)
		if !ok || got != want {
			t.Fatalf("round %d: ewma %g, want %g", round, got, want)
		}
	}
}

// A huge sample never poisons the sums of the small ones around it: once
// it has left the window the mean is the small samples' again (with prefix
// sums alone it came out 0, which fired a scale-down), and a value beyond
// the range sums keep exact is refused, not summed into infinity.
func TestHugeValuesDoNotPoisonWindowSums(t *testing.T) {
	w := NewWindows(600)
	add := func(at, v float64) {
		w.Add(&Metric{DeploymentID: "d", NodeName: "n", Host: "h", Name: "m", Value: v, Time: at})
	}
	add(100, 1e17)
	for i, v := range []float64{1, 2, 3} {
		add(float64(102+i), v)
	}
	q := Query{Deployment: "d", Metric: "m", Seconds: 3, Now: 104}
	if got, ok := w.Reduce("mean", q, 0); !ok || got != 2 {
		t.Errorf("mean of 1, 2, 3 after a 1e17 left the window = %v (%v), want 2", got, ok)
	}
	if got, ok := w.Reduce("sum", q, 0); !ok || got != 6 {
		t.Errorf("sum = %v, want 6", got)
	}
	for _, body := range []string{
		`{"deployment_id":"d","host":"h","name":"m","metric":1e308,"time":100}`,
		`{"deployment_id":"d","host":"h","name":"m","metric":-2e18,"time":100}`,
		`{"deployment_id":"d","host":"h","name":"m","metric":1,"time":1e15}`,
	} {
		if _, err := Decode([]byte(body), "d"); err == nil {
			t.Errorf("%s accepted", body)
		} else if kind, _ := IsMalformed(err); kind != "value" {
			t.Errorf("%s: %v", body, err)
		}
	}
	p := NewPipeline(60)
	if _, err := p.Apply(&Metric{DeploymentID: "d", Host: "h", Name: "m", Value: math.NaN(), Time: 100}, nil); err == nil || p.Malformed["value"] != 1 {
		t.Errorf("a polled NaN: %v, %v", err, p.Malformed)
	}
}

// Series are bounded: they expire after their ttl (at their deployment's
// time), a new one beyond the limits is refused (the others still report),
// a deployment with no policies keeps none, and an undeployed one's go.
func TestSeriesAreExpiredAndBounded(t *testing.T) {
	w := NewWindows(600)
	w.MaxSeriesPerDeployment, w.MaxSeries = 2, 3
	add := func(dep, host string, at float64) error {
		return w.Add(&Metric{DeploymentID: dep, NodeName: "n", Host: host, Name: "m", Value: 1, Time: at, TTL: 10})
	}
	for _, h := range []string{"h1", "h2"} {
		if err := add("a", h, 100); err != nil {
			t.Fatal(err)
		}
	}
	err := add("a", "h3", 100)
	if kind, ok := IsMalformed(err); !ok || kind != "series-limit" {
		t.Fatalf("a third series of a deployment: %v", err)
	}
	if err := add("a", "h1", 101); err != nil {
		t.Errorf("a known series refused at the limit: %v", err)
	}
	if err := add("b", "h1", 100); err != nil {
		t.Fatal(err)
	}
	if err := add("c", "h1", 100); err == nil || !strings.Contains(err.Error(), "at most 3 series") {
		t.Errorf("a series beyond the total: %v", err)
	}
	// a's clock is at 115 (h2 expired at 110, h1 at 111), b's at 105.
	dropped := w.ExpireBy(func(dep string) float64 { return map[string]float64{"a": 115, "b": 105}[dep] })
	if dropped != 2 || w.Len() != 1 {
		t.Errorf("expired %d, %d left; want 2 and 1 (b's)", dropped, w.Len())
	}
	if _, ok := w.Reduce("count", Query{Deployment: "a", Metric: "m", Seconds: 60, Now: 101}, 0); ok {
		t.Error("an expired series is still queried")
	}
	if err := add("a", "h3", 116); err != nil {
		t.Errorf("room again after expiry: %v", err)
	}

	p := NewPipeline(600)
	if _, err := p.Apply(&Metric{DeploymentID: "nobody", Host: "h", Name: "m", Value: 1, Time: 100}, nil); err != nil || p.Unrouted != 1 || p.Windows.Len() != 0 {
		t.Errorf("a metric of a deployment with no policies: %v, unrouted %d, %d series", err, p.Unrouted, p.Windows.Len())
	}
	p.instances["d"] = nil
	if _, err := p.Apply(&Metric{DeploymentID: "d", Host: "h", Name: "m", Value: 1, Time: 100}, nil); err != nil || p.Windows.Len() != 1 {
		t.Fatalf("%v, %d series", err, p.Windows.Len())
	}
	p.Remove("d")
	if p.Windows.Len() != 0 || len(p.Windows.byAlias) != 0 || len(p.Windows.byDeploy) != 0 {
		t.Errorf("an undeployed deployment's series stay: %d", p.Windows.Len())
	}
}

// A window longer than an hour is not cut to the hour: the windows keep
// history as long as the longest window a policy reads.
func TestWindowsLongerThanAnHourKeepTheirHistory(t *testing.T) {
	plan := resolvePlan(t, `
node "web" {}
workflow "kube_scale" { uses = "test.scale" }
policy "slow" {
  initial_delay = "0s"
  type       = "orch.ewma_threshold"
  targets    = [node.web]
  properties = { metric = "cpu", window = "3h", scale_up_above = 80, scale_down_below = 10 }
  trigger "scale_up" { workflow = workflow.kube_scale }
}
policy_type "daily" {
  parameter "limit" { type = number }
  condition "high" { when = mean(window("cpu", "24h")) > param.limit }
}
policy "daily" {
  initial_delay = "0s"
  type       = policy_type.daily
  targets    = [node.web]
  properties = { limit = 50 }
}`)
	p := NewPipeline(3600)
	r := NewRunner(p, &recordingQueue{}, &memState{m: map[string][]byte{}})
	if err := r.AddDeployment(context.Background(), "shop", plan); err != nil {
		t.Fatal(err)
	}
	if p.Windows.Horizon != 3*3600 {
		t.Errorf("horizon %gs with a 3h ewma policy, want %d", p.Windows.Horizon, 3*3600)
	}
	for i := 0; i < 10; i++ { // one sample every four hours
		if err := r.Apply(context.Background(), &Metric{DeploymentID: "shop", NodeName: "web", Host: "h", Name: "cpu", Value: float64(i), Time: 1000 + float64(i)*14400, TTL: 1e6}); err != nil {
			t.Fatal(err)
		}
	}
	if p.Windows.Horizon != 24*3600 {
		t.Errorf("horizon %gs once the 24h condition ran, want %d", p.Windows.Horizon, 24*3600)
	}
	// The 24h window at the last sample holds the last 20 hours of samples
	// (6: 4..9), not the last hour's one.
	if n, ok := p.Windows.Reduce("count", Query{Deployment: "shop", Metric: "cpu", Seconds: 24 * 3600, Now: 1000 + 9*14400}, 0); !ok || n != 6 {
		t.Errorf("%v samples in the 24h window (%v), want 6", n, ok)
	}
}

// A window's host set keeps hosts in first-seen order and pools their
// series, whether it scans (few hosts) or indexes them (many).
func TestHostSetPoolsSeriesByHostInFirstSeenOrder(t *testing.T) {
	for _, hosts := range []int{1, smallHosts, smallHosts + 1, 40} {
		t.Run(fmt.Sprint(hosts), func(t *testing.T) {
			var hs hostSet
			want := map[string]hostAgg{}
			var order []string
			for round := range 3 {
				for h := hosts - 1; h >= 0; h-- {
					name := fmt.Sprintf("h%d", h)
					if _, seen := want[name]; !seen {
						order = append(order, name)
					}
					a := want[name]
					a.n, a.sum = a.n+round+1, a.sum+float64(h)
					want[name] = a
					hs.add(name, round+1, float64(h))
				}
			}
			if len(hs.hosts) != len(order) {
				t.Fatalf("%d hosts, want %d", len(hs.hosts), len(order))
			}
			for i, e := range hs.hosts {
				if e.host != order[i] || e.hostAgg != want[e.host] {
					t.Errorf("host %d: %+v, want %s %+v", i, e, order[i], want[order[i]])
				}
			}
		})
	}
}

func TestMemoizedReductionsEqualFreshOnesHoweverMany(t *testing.T) {
	w := NewWindows(600)
	for s := 0; s < 100; s++ {
		for h := range 3 {
			_ = w.Add(&Metric{DeploymentID: "d", NodeName: "web", Host: fmt.Sprintf("h%d", h), Name: "cpu", Value: float64(s * (h + 1) % 37), Time: 1000 + float64(s)})
		}
	}
	tg := Target{Deployment: "d"}
	tg.intern()
	// More reductions than the memo scans (smallMemo), each asked twice,
	// then again after the windows change.
	for round := range 2 {
		for pass := range 2 {
			for sec := 1; sec <= 3*smallMemo; sec++ {
				for _, fn := range []string{"mean", "max", "hosts"} {
					q := tg.query("cpu", float64(sec), 1099)
					got, gok := w.Reduce(fn, q, 0)
					q.nodesID = 0 // not memoized
					want, wok := w.Reduce(fn, q, 0)
					if got != want || gok != wok {
						t.Fatalf("round %d pass %d: %s over %ds memoized %v %v, fresh %v %v", round, pass, fn, sec, got, gok, want, wok)
					}
				}
			}
		}
		_ = w.Add(&Metric{DeploymentID: "d", NodeName: "web", Host: "h0", Name: "cpu", Value: 1e6, Time: 1099})
	}
}

// A policy's window keeps its selection of series from one evaluation to
// the next: series that start, expire or are dropped after that must be
// found as a fresh query finds them.
func TestKeptSelectionsFollowSeriesStartingAndGoing(t *testing.T) {
	w := NewWindows(600)
	w.DefaultTTL = 30
	all, web := Target{Deployment: "shop"}, Target{Deployment: "shop", Nodes: map[string]bool{"web": true}}
	all.intern()
	web.intern()
	byPattern := all.query("", 20, 0)
	byPattern.Pattern = regexp.MustCompile(`[.]cpu[.]`)
	queries := map[string]Query{
		"metric":          all.query("cpu", 20, 0),
		"metric on nodes": web.query("cpu", 20, 0),
		"pattern":         byPattern,
	}
	kept := map[string]*selection{}
	steps := []struct {
		name string
		do   func()
		now  float64
	}{
		{"one host", func() { w.Add(metric("shop", "web", "a", "cpu", 10, 100)) }, 100},
		{"a second host starts", func() { w.Add(metric("shop", "web", "b", "cpu", 30, 101)) }, 101},
		{"a host of another node", func() { w.Add(metric("shop", "db", "c", "cpu", 50, 102)) }, 102},
		{"another metric", func() { w.Add(metric("shop", "web", "d", "mem", 70, 103)) }, 103},
		{"host a goes on", func() { w.Add(metric("shop", "web", "a", "cpu", 20, 125)) }, 125},
		{"b and c expire", func() { w.Expire(134) }, 134},
		{"b comes back", func() { w.Add(metric("shop", "web", "b", "cpu", 40, 135)) }, 135},
		{"the deployment is dropped", func() { w.Drop("shop") }, 136},
		{"and starts again", func() { w.Add(metric("shop", "db", "c", "cpu", 60, 137)) }, 137},
	}
	for _, st := range steps {
		st.do()
		for name, q := range queries {
			q.Now = st.now
			fresh := q
			fresh.nodesID = 0 // no selection, nothing memoized
			want := fmt.Sprint(w.Reduce("hosts", fresh, 0))
			want += fmt.Sprint(w.Reduce("sum", fresh, 0))
			var sel *selection = kept[name]
			q.sel = w.selectionOf(&q, &sel)
			kept[name] = sel
			got := fmt.Sprint(w.Reduce("hosts", q, 0))
			got += fmt.Sprint(w.Reduce("sum", q, 0))
			if got != want {
				t.Errorf("%s, %s: a kept selection gives hosts and sum %s, a fresh query %s", st.name, name, got, want)
			}
		}
	}
}

// span finds the window's samples however many there are and wherever the
// window ends (a linear scan is the reference).
func TestSpanFindsTheWindowsSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		s := &series{}
		n := rng.IntN(3 * spanLookBack)
		at := 0.0
		for range n {
			at += float64(rng.IntN(3)) // equal times too
			s.add(at, 1)
		}
		s.head = rng.IntN(n + 1)
		from := float64(rng.IntN(int(at)+4)) - 2
		to := from + float64(rng.IntN(int(at)+4))
		lo, hi := s.span(from, to)
		wlo, whi := s.head, s.head
		for i := s.head; i < len(s.samples); i++ {
			if s.samples[i].t <= from {
				wlo = i + 1
			}
			if s.samples[i].t <= to {
				whi = i + 1
			}
		}
		if whi < wlo {
			whi = wlo
		}
		if lo != wlo || hi != whi {
			t.Fatalf("round %d: span(%g, %g) of %v from %d = [%d, %d), want [%d, %d)", round, from, to, s.samples, s.head, lo, hi, wlo, whi)
		}
	}
}

// A selection's memo serves a reduction without a query only for the
// same reduction (function, length, time, argument, min_hosts) in the
// same windows, while nothing changed: any other read, or a metric added
// in between, computes again.
func TestRecallServesOnlyTheSameReductionUnchanged(t *testing.T) {
	pair := func(seconds, now float64, minHosts int) memoKey {
		return memoKey{fn: meanHostsFn, seconds: seconds, now: now, minHosts: minHosts}
	}
	for _, tc := range []struct {
		name   string
		change func(w *Windows) *Windows
		k      memoKey
		served bool
		want   memoized
	}{
		{"the same mean and hosts", func(w *Windows) *Windows { return w }, pair(20, 110, 0), true, memoized{v: 20, hosts: 2, ok: true}},
		{"the same max", func(w *Windows) *Windows { return w }, memoKey{fn: "max", seconds: 20, now: 110}, true, memoized{v: 30, ok: true}},
		{"another function", func(w *Windows) *Windows { return w }, memoKey{fn: "min", seconds: 20, now: 110}, false, memoized{}},
		{"another argument", func(w *Windows) *Windows { return w }, memoKey{fn: "max", seconds: 20, now: 110, arg: 1}, false, memoized{}},
		{"another length", func(w *Windows) *Windows { return w }, pair(5, 110, 0), false, memoized{}},
		{"another time", func(w *Windows) *Windows { return w }, pair(20, 111, 0), false, memoized{}},
		{"another min_hosts", func(w *Windows) *Windows { return w }, pair(20, 110, 3), false, memoized{}},
		{"a metric added since", func(w *Windows) *Windows { w.Add(metric("shop", "web", "c", "cpu", 90, 110)); return w }, pair(20, 110, 0), false, memoized{}},
		{"the deployment dropped", func(w *Windows) *Windows { w.Drop("shop"); return w }, pair(20, 110, 0), false, memoized{}},
		{"other windows", func(*Windows) *Windows { return NewWindows(600) }, pair(20, 110, 0), false, memoized{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindows(600)
			w.Add(metric("shop", "web", "a", "cpu", 10, 100))
			w.Add(metric("shop", "web", "b", "cpu", 30, 105))
			tg := Target{Deployment: "shop"}
			tg.intern()
			q := tg.query("cpu", 20, 110)
			var sel *selection
			q.sel = w.selectionOf(&q, &sel)
			if mean, hosts, ok := w.MeanHosts(q); !ok || mean != 20 || hosts != 2 {
				t.Fatalf("MeanHosts %v %v %v", mean, hosts, ok)
			}
			if v, ok := w.Reduce("max", q, 0); !ok || v != 30 {
				t.Fatalf("max %v %v", v, ok)
			}
			m, served := sel.recall(tc.change(w), tc.k)
			if served != tc.served || served && m != tc.want {
				t.Errorf("served %v %+v, want %v %+v", served, m, tc.served, tc.want)
			}
		})
	}
}

// A series' window memo gives what span and sum give, whatever moved in
// between: windows sliding by more or less than the gaps between samples,
// samples added (late ones too), trimmed and compacted away.
func TestWindowMemoMatchesSpanAndSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 300 {
		s := &series{}
		at, now := 1000.0, 1000.0
		for step := range 400 {
			switch op := rng.IntN(10); {
			case op < 4:
				at += float64(rng.IntN(4))
				s.add(at, float64(rng.IntN(100)))
			case op == 4:
				s.add(at-float64(rng.IntN(20)), float64(rng.IntN(100))) // late
			case op == 5:
				s.trim(now-float64(rng.IntN(30)), 4+rng.IntN(60))
			case op == 6 && rng.IntN(50) == 0:
				s.add(at, bigValue*2) // sums loop while it is live
			}
			now = max(now, at) + float64(rng.IntN(3))
			seconds := float64(1 + rng.IntN(15))
			from := now - seconds
			if rng.IntN(4) == 0 {
				from = now - float64(1+rng.IntN(15)) // another window length
			}
			to := now
			if rng.IntN(3) == 0 {
				to -= float64(rng.IntN(6)) // a window ending before the newest sample
				from = min(from, to)
			}
			n, sum := s.window(from, to)
			lo, hi := s.span(from, to)
			wn, wsum := hi-lo, 0.0
			if hi > lo {
				wsum = s.sum(lo, hi)
			}
			if n != wn || sum != wsum {
				t.Fatalf("round %d step %d, window (%g, %g]: memo %d %v, span and sum %d %v", round, step, from, to, n, sum, wn, wsum)
			}
		}
	}
}
