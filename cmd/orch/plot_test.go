package main

import (
	"strings"
	"testing"

	"github.com/orchhq/orch/policies"
)

func TestPlotDrawsValuesThresholdsAndDecisions(t *testing.T) {
	ps := policies.PolicyStatus{Name: "rps", Type: "orch.rps_burst",
		Parameters: map[string]float64{"burst_value": 100, "reconcile_value": 60, "far_away": 1e9}}
	for i := range 60 {
		v := 50.0
		if i >= 20 && i < 40 {
			v = 150
		}
		ps.History = append(ps.History, policies.Point{Time: 1000 + float64(i), Values: map[string]float64{"rps": v, "hosts": 2}})
	}
	ds := []policies.Decision{{Time: 1025, Fired: true}, {Time: 1030, Reason: "cooldown"}, {Time: 1059, Reason: "missing-data"}}
	var b strings.Builder
	plotPolicy(&b, ps, ds)
	out := b.String()
	lines := strings.Split(out, "\n")
	for _, want := range []string{"burst_value 100", "reconcile_value 60", "* rps", "150", "50"} {
		if !strings.Contains(out, want) {
			t.Errorf("plot lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "far_away") || strings.Contains(out, "hosts") {
		t.Errorf("plot shows a parameter far from the values or the host count:\n%s", out)
	}
	// The top row holds the high values, the bottom row the low ones.
	if !strings.Contains(lines[1], "*") || !strings.Contains(lines[plotHeight], "*") {
		t.Errorf("values not at the top and bottom rows:\n%s", out)
	}
	var marks string
	for i, l := range lines {
		if strings.Contains(l, "+---") && i+1 < len(lines) {
			marks = lines[i+1] // the row under the time axis
		}
	}
	if strings.Count(marks, "F") != 1 || strings.Count(marks, "h") != 1 || strings.Count(marks, "m") != 1 ||
		strings.Index(marks, "F") > strings.Index(marks, "h") || strings.Index(marks, "h") > strings.Index(marks, "m") {
		t.Errorf("decision marks %q, want F, h, m in time order:\n%s", marks, out)
	}
	var empty strings.Builder
	plotPolicy(&empty, policies.PolicyStatus{Name: "x"}, nil)
	if !strings.Contains(empty.String(), "nothing to plot yet") {
		t.Errorf("empty history: %q", empty.String())
	}
}
