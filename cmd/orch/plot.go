package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/orchhq/orch/policies"
)

// plotSize is the plot area in characters.
const plotWidth, plotHeight = 64, 12

var plotGlyphs = []byte{'*', 'o', '+', '#'}

// plotPolicy draws a policy's window values over time against its
// numeric parameters (thresholds), with the decisions marked under the
// time axis: F fired, h held back, m data missing.
func plotPolicy(w io.Writer, ps policies.PolicyStatus, decisions []policies.Decision) {
	if len(ps.History) == 0 {
		fmt.Fprintf(w, "%s: nothing to plot yet (no evaluation with data)\n", ps.Name)
		return
	}
	// Series: every value the conditions read, but the host count.
	keys := map[string]bool{}
	for _, p := range ps.History {
		for k := range p.Values {
			if k != "hosts" {
				keys[k] = true
			}
		}
	}
	names := slices.Sorted(maps.Keys(keys))
	if len(names) > len(plotGlyphs) {
		names = names[:len(plotGlyphs)]
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range ps.History {
		for _, k := range names {
			if v, ok := p.Values[k]; ok {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		fmt.Fprintf(w, "%s: nothing to plot yet (no evaluation with data)\n", ps.Name)
		return
	}
	// Reference lines: the numeric parameters near the values' range.
	span := math.Max(hi-lo, math.Max(math.Abs(hi), 1))
	var refs []string
	for _, k := range slices.Sorted(maps.Keys(ps.Parameters)) {
		if v := ps.Parameters[k]; v >= lo-span && v <= hi+span {
			refs = append(refs, k)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	t0, t1 := ps.History[0].Time, ps.History[len(ps.History)-1].Time
	for _, d := range decisions {
		t0, t1 = math.Min(t0, d.Time), math.Max(t1, d.Time)
	}
	if t1 == t0 {
		t1 = t0 + 1
	}
	col := func(t float64) int { return min(plotWidth-1, int((t-t0)/(t1-t0)*float64(plotWidth-1)+0.5)) }
	row := func(v float64) int { return min(plotHeight-1, int((hi-v)/(hi-lo)*float64(plotHeight-1)+0.5)) }

	grid := make([][]byte, plotHeight)
	for i := range grid {
		grid[i] = []byte(strings.Repeat(" ", plotWidth))
	}
	labels := make([]string, plotHeight)
	for _, k := range refs {
		r := row(ps.Parameters[k])
		for c := range grid[r] {
			grid[r][c] = '-'
		}
		labels[r] = strings.TrimPrefix(labels[r]+", ", ", ") + fmt.Sprintf("%s %g", k, ps.Parameters[k])
	}
	for i, k := range names {
		for _, p := range ps.History {
			if v, ok := p.Values[k]; ok {
				grid[row(v)][col(p.Time)] = plotGlyphs[i]
			}
		}
	}
	marks := []byte(strings.Repeat(" ", plotWidth))
	for _, d := range decisions {
		c, m := col(d.Time), byte('h')
		switch {
		case d.Fired:
			m = 'F'
		case d.Reason == "missing-data" || d.Missing != "":
			m = 'm'
		}
		if marks[c] != 'F' {
			marks[c] = m
		}
	}
	fmt.Fprintf(w, "%s (%s)\n", ps.Name, ps.Type)
	for i, line := range grid {
		axis := ""
		switch i {
		case 0:
			axis = fmt.Sprintf("%.4g", hi)
		case plotHeight - 1:
			axis = fmt.Sprintf("%.4g", lo)
		}
		fmt.Fprintf(w, "%9s |%s| %s\n", axis, line, labels[i])
	}
	fmt.Fprintf(w, "%9s +%s+\n", "", strings.Repeat("-", plotWidth))
	fmt.Fprintf(w, "%9s  %s\n", "", marks)
	from, to := time.Unix(0, int64(t0*1e9)).Local().Format("15:04:05"), time.Unix(0, int64(t1*1e9)).Local().Format("15:04:05")
	fmt.Fprintf(w, "%9s  %s%s%s\n", "", from, strings.Repeat(" ", max(1, plotWidth-len(from)-len(to))), to)
	var legend []string
	for i, k := range names {
		legend = append(legend, fmt.Sprintf("%c %s", plotGlyphs[i], k))
	}
	fmt.Fprintf(w, "%9s  %s;  F fired, h held back, m data missing\n", "", strings.Join(legend, ", "))
}
