package policies

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSoakSeriesChurn: 1,000 deployments with a scale.clj policy
// each, and an hour of event time in which 1,000 hosts report every
// second and are replaced by new ones every 36 s (100,000 distinct series
// in all, ttl 10 s), with the missing-data tick every second. Memory must
// stay flat once the first hosts have expired: it reports the live heap
// after a GC at 5, 30 and 60 minutes of event time, and the most series
// kept at once.
func BenchmarkSoakSeriesChurn(b *testing.B) {
	const deployments, hosts, lifetime, hour = 1000, 1000, 36, 3600
	plan := resolvePlan(&testing.T{}, runnerBlueprint)
	for i := 0; i < b.N; i++ {
		p := NewPipeline(600)
		p.Now = nil // event time only: an hour in seconds
		r := NewRunner(p, &recordingQueue{}, &memState{m: map[string][]byte{}})
		ctx := context.Background()
		for d := 0; d < deployments; d++ {
			if err := r.AddDeployment(ctx, fmt.Sprintf("dep%d", d), plan); err != nil {
				b.Fatal(err)
			}
		}
		heap, rss := map[int]float64{}, map[int]float64{}
		most := 0
		start := time.Now()
		m := &Metric{NodeName: "web", NodeID: "web_1", Name: "cpu", Path: "total", Value: 10, TTL: 10}
		for s := 0; s < hour; s++ {
			at := 1_700_000_000 + float64(s)
			gen := s / lifetime
			for h := 0; h < hosts; h++ {
				dep := h % deployments
				m.DeploymentID = fmt.Sprintf("dep%d", dep)
				m.Host = fmt.Sprintf("10.%d.%d", gen, h)
				m.Service = m.DeploymentID + ".web.web_1.cpu.total"
				m.Time = at
				if err := r.Apply(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			if err := r.TickAt(ctx, at); err != nil {
				b.Fatal(err)
			}
			if n, _ := r.Series(); n > most {
				most = n
			}
			if minute := (s + 1) / 60; (s+1)%60 == 0 && (minute == 5 || minute == 30 || minute == 60) {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap[minute] = float64(ms.HeapInuse) / (1 << 20)
				rss[minute] = residentMB()
			}
		}
		b.ReportMetric(heap[5], "heap-MB-5m")
		b.ReportMetric(heap[30], "heap-MB-30m")
		b.ReportMetric(heap[60], "heap-MB-60m")
		b.ReportMetric(rss[5], "rss-MB-5m")
		b.ReportMetric(rss[30], "rss-MB-30m")
		b.ReportMetric(rss[60], "rss-MB-60m")
		b.ReportMetric(float64(most), "series-max")
		b.ReportMetric(float64(hosts*hour)/time.Since(start).Seconds(), "metrics/s")
	}
}

// residentMB is the process's resident set (Linux), or 0.
func residentMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(fields[1], 64)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}

// BenchmarkSampleBytes: 10,000 series (100 deployments of 100 hosts) at
// one sample a second with 10-minute windows, filled and then run 10
// minutes more (trimming as they go). It reports the heap per live sample
// (after a GC, minus the heap before), the process RSS, and the live
// samples. The target is 32 bytes per sample or less.
func BenchmarkSampleBytes(b *testing.B) {
	const deployments, hosts, window = 100, 100, 600
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		w := NewWindows(window)
		w.DefaultTTL = window
		m := &Metric{NodeName: "web", NodeID: "web_1", Name: "cpu", Path: "total"}
		deps := make([]string, deployments)
		hostNames := make([]string, hosts)
		for d := range deps {
			deps[d] = fmt.Sprintf("dep%d", d)
		}
		for h := range hostNames {
			hostNames[h] = fmt.Sprintf("10.0.0.%d", h)
		}
		for s := 0; s < 2*window; s++ {
			for d := range deps {
				for h := range hostNames {
					m.DeploymentID, m.Host, m.Service = deps[d], hostNames[h], deps[d]+".web.web_1.cpu.total"
					m.Time, m.Value = 1_700_000_000+float64(s), float64((s*7+h)%100)
					if err := w.Add(m); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		live := 0
		for _, s := range w.series {
			live += len(s.samples) - s.head
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(live), "bytes/sample")
		b.ReportMetric(float64(live), "samples")
		b.ReportMetric(residentMB(), "rss-MB")
		runtime.KeepAlive(w)
	}
}
