package policies

import (
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"testing"
)

func TestOrderStatAnswersRanksAsASortedCopy(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		vals func(r *rand.Rand) float64
	}{
		{"few distinct values (duplicates across blocks)", 3000, func(r *rand.Rand) float64 { return float64(r.IntN(5)) }},
		{"spread values", 5000, func(r *rand.Rand) float64 { return r.NormFloat64() * 1e6 }},
		{"ascending, as a growing counter", 2000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var o orderStat
			var ref []float64
			for i := 0; i < tc.n; i++ {
				v := float64(i)
				if tc.vals != nil {
					v = tc.vals(r)
				}
				o.insert(v)
				ref = append(ref, v)
				// Remove one in three, at random.
				if r.IntN(3) == 0 {
					j := r.IntN(len(ref))
					if !o.remove(ref[j]) {
						t.Fatalf("%v not removed", ref[j])
					}
					ref = append(ref[:j], ref[j+1:]...)
				}
			}
			if o.remove(math.Pi) {
				t.Error("removed a value never inserted")
			}
			sorted := append([]float64(nil), ref...)
			sort.Float64s(sorted)
			if o.n != len(sorted) {
				t.Fatalf("%d values, want %d", o.n, len(sorted))
			}
			for k := range sorted {
				if got := o.at(k); got != sorted[k] {
					t.Fatalf("at(%d) = %v, want %v", k, got, sorted[k])
				}
			}
			for _, b := range o.blocks {
				if len(b) == 0 || len(b) > 2*orderBlock {
					t.Fatalf("a block of %d values", len(b))
				}
			}
		})
	}
}

// FuzzPercentileFollowsTheWindow feeds the same stream of samples (hosts,
// late ones, trims by count and horizon, expiries, windows of several
// lengths read at moving times) to windows that follow each percentile
// window incrementally and to windows that copy and sort it at each read:
// every read must be the same, to the bit.
func FuzzPercentileFollowsTheWindow(f *testing.F) {
	f.Add([]byte{0, 1, 10, 1, 2, 20, 2, 3, 30, 3, 0, 40}, uint8(7))
	f.Add([]byte{0, 200, 5, 0, 201, 5, 0, 202, 5, 1, 10, 7, 0, 203, 9}, uint8(200))
	f.Add([]byte{3, 255, 1, 2, 255, 2, 1, 255, 3, 0, 0, 255, 0, 130, 4}, uint8(33))
	f.Fuzz(func(t *testing.T, data []byte, knobs uint8) {
		inc, ref := NewWindows(60), NewWindows(60)
		ref.bySort = true
		for _, w := range []*Windows{inc, ref} {
			w.MaxSamples = 8 + int(knobs%32)
			w.DefaultTTL = 20
		}
		pattern := regexp.MustCompile(`[.]m[12][.]`)
		now := 1000.0
		for i := 0; len(data) >= 3 && i < 3000; i++ {
			op, dt, x := data[0], data[1], data[2]
			data = data[3:]
			host := string(rune('a' + op%4))
			name := "m1"
			if op&4 != 0 {
				name = "m2"
			}
			tm := now + float64(dt%8)
			if dt >= 200 {
				tm = now - float64(dt-200) // late
			}
			now = math.Max(now, tm)
			m := &Metric{DeploymentID: "d", NodeName: "n", Host: host, Name: name, Value: float64(int(x) - 128),
				Time: tm, Service: "d.n." + host + "." + name + "."}
			for _, w := range []*Windows{inc, ref} {
				if err := w.Add(m); err != nil {
					t.Fatal(err)
				}
				if op&0x80 != 0 {
					w.Expire(now)
				}
			}
			for _, q := range []Query{
				{Deployment: "d", Metric: "m1", Seconds: 5 + float64(knobs%50), Now: now},
				{Deployment: "d", Metric: "m2", Seconds: 1, Now: now},
				{Deployment: "d", Pattern: pattern, Seconds: 30, Now: now},
			} {
				for _, p := range []float64{0, 50, 95, float64(knobs % 101)} {
					got, gotOK := inc.Reduce("percentile", q, p)
					want, wantOK := ref.Reduce("percentile", q, p)
					if gotOK != wantOK || gotOK && got != want {
						t.Fatalf("sample %d: percentile(%v) of %s/%v over %gs = %v (%v), sorting gives %v (%v)",
							i, p, q.Metric, q.Pattern, q.Seconds, got, gotOK, want, wantOK)
					}
				}
			}
		}
	})
}

func TestPercentileOfASteadyStreamIsNeverRefilled(t *testing.T) {
	for _, tc := range []struct {
		name             string
		horizon, seconds float64
	}{
		{"the window is the horizon (samples leave it as they are dropped)", 600, 600},
		{"a window shorter than the horizon", 3600, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindows(tc.horizon)
			w.MaxSamples = 1 << 16
			q := Query{Deployment: "d", Metric: "lat", Seconds: tc.seconds, nodesID: 1}
			hosts := []string{"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"}
			for sec := 0; sec < 3000; sec++ {
				for i, h := range hosts {
					m := metric("d", "web", h, "lat", float64((sec*7+i*13)%1000), float64(1_700_000_000+sec))
					if err := w.Add(m); err != nil {
						t.Fatal(err)
					}
					q.Now = m.Time
					if _, ok := w.Reduce("percentile", q, 95); !ok {
						t.Fatal("no percentile")
					}
				}
			}
			// One fill when the window is first read; each host's
			// first sample brings one more series into it.
			if w.pctRefills > len(hosts) {
				t.Errorf("%d refills of a steady window, want at most %d", w.pctRefills, len(hosts))
			}
			ref := NewWindows(tc.horizon)
			ref.bySort = true
			ref.series, ref.byAlias, ref.byDeploy = w.series, w.byAlias, w.byDeploy
			got, _ := w.Reduce("percentile", Query{Deployment: "d", Metric: "lat", Seconds: tc.seconds, Now: q.Now}, 95)
			want, _ := ref.Reduce("percentile", Query{Deployment: "d", Metric: "lat", Seconds: tc.seconds, Now: q.Now}, 95)
			if got != want {
				t.Errorf("p95 %v, sorting gives %v", got, want)
			}
		})
	}
}

// BenchmarkPercentile reads the p95 of a 10-minute window of 10 hosts at
// one sample a second (6,000 samples) after each sample, followed
// incrementally and, side by side, copied and sorted at each read.
func BenchmarkPercentile(b *testing.B) {
	for _, mode := range []string{"incremental", "sort"} {
		b.Run(mode, func(b *testing.B) {
			w := NewWindows(600)
			w.bySort = mode == "sort"
			q := Query{Deployment: "d", Metric: "lat", Seconds: 600, nodesID: 1}
			var hosts [10]*Metric
			for i := range hosts {
				hosts[i] = metric("d", "web", "h"+string(rune('0'+i)), "lat", 0, 0)
			}
			add := func(i int) {
				m := hosts[i%10]
				m.Value, m.Time = float64((i*7919)%1000), float64(1_700_000_000+i/10)
				if err := w.Add(m); err != nil {
					b.Fatal(err)
				}
				q.Now = m.Time
			}
			for i := 0; i < 6000; i++ {
				add(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				add(6000 + i)
				if _, ok := w.Reduce("percentile", q, 95); !ok {
					b.Fatal("no percentile")
				}
			}
		})
	}
}
