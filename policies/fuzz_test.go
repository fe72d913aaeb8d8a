package policies

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzWindowReductions feeds random sample streams (hosts, out-of-order
// times, huge and tiny values) to the windows and compares every
// reduction with a naive computation over the same samples.
func FuzzWindowReductions(f *testing.F) {
	f.Add([]byte{0, 1, 10, 1, 2, 20, 2, 3, 30}, uint16(5))
	f.Add([]byte{0, 0, 255, 0, 1, 1, 0, 2, 2, 0, 3, 3}, uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, span uint16) {
		type smp struct {
			host string
			t, v float64
		}
		w := NewWindows(1e9)
		w.MaxSamples = 1 << 20
		var all []smp
		now := 1000.0
		for len(data) >= 3 && len(all) < 2000 {
			host := string(rune('a' + data[0]%4))
			tm := 1000 + float64(data[1]%64)
			var v float64
			switch x := data[2]; {
			case x == 255:
				v = 1e17 // a huge sample among small ones
			case x == 254 && len(data) >= 11:
				v = math.Float64frombits(binary.LittleEndian.Uint64(data[3:11]))
				if math.IsNaN(v) || math.Abs(v) > MaxMetricValue {
					v = 0
				}
				data = data[8:]
			default:
				v = float64(int(x) - 100)
			}
			data = data[3:]
			all = append(all, smp{host, tm, v})
			now = math.Max(now, tm)
			if err := w.Add(&Metric{DeploymentID: "d", NodeName: "n", Host: host, Name: "m", Value: v, Time: tm, TTL: 1e9}); err != nil {
				t.Fatal(err)
			}
		}
		seconds := float64(span%80) + 0.5
		q := Query{Deployment: "d", Metric: "m", Seconds: seconds, Now: now}
		var in []smp
		for _, s := range all {
			if s.t > now-seconds && s.t <= now {
				in = append(in, s)
			}
		}
		check := func(fn string, want float64, wantOK bool, exact bool) {
			got, ok := w.Reduce(fn, q, 0)
			if ok != wantOK {
				t.Fatalf("%s: known %v, want %v (%d samples in the window)", fn, ok, wantOK, len(in))
			}
			if !ok {
				return
			}
			scale := 1.0
			for _, s := range in {
				scale = math.Max(scale, math.Abs(s.v))
			}
			tol := 1e-9 * scale * float64(len(in)+1)
			if exact {
				tol = 0
			}
			if math.Abs(got-want) > tol {
				t.Fatalf("%s = %v, want %v (%d samples, tolerance %g)", fn, got, want, len(in), tol)
			}
		}
		n, sum := 0, 0.0
		mn, mx := math.Inf(1), math.Inf(-1)
		hostSum, hostN := map[string]float64{}, map[string]int{}
		for _, s := range in {
			n++
			sum += s.v
			mn, mx = math.Min(mn, s.v), math.Max(mx, s.v)
			hostSum[s.host] += s.v
			hostN[s.host]++
		}
		mean := 0.0
		for h, hs := range hostSum {
			mean += hs / float64(hostN[h])
		}
		if len(hostSum) > 0 {
			mean /= float64(len(hostSum))
		}
		known := n > 0
		check("count", float64(n), known, true)
		check("sum", sum, known, false)
		check("min", mn, known, true)
		check("max", mx, known, true)
		check("hosts", float64(len(hostSum)), known, true)
		check("mean", mean, known, false)
	})
}
