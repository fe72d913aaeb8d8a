package policies

import (
	"fmt"
	"testing"

	"github.com/orchhq/orch/plugins/kubernetes"
)

// targetPolicy is an orch.target_value policy with the given properties.
func targetPolicy(t *testing.T, props string) *Instance {
	t.Helper()
	pols := resolvePolicies(t, fmt.Sprintf(`
node "web" {}
workflow "w" { uses = "test.scale" }
policy "tv" {
  type       = "orch.target_value"
  properties = { metric = "load", %s }
  trigger "scale_up" { workflow = workflow.w }
  trigger "scale_down" { workflow = workflow.w }
}
`, props))
	in, err := NewInstance(Target{Deployment: "d"}, pols["tv"])
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// replicasAfter evaluates a target_value policy over one sample per pod
// and returns the replicas its firing gives through kubernetes.scale's
// proportional amount (current when nothing fires).
func replicasAfter(t *testing.T, in *Instance, w *Windows, now float64, current int32) (int32, string) {
	t.Helper()
	rs, err := in.Eval.Evaluate(w, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !r.Holds {
			continue
		}
		ratio, ok := Values(r.Values).Get("ratio")
		if !ok {
			t.Fatalf("%s fired without a ratio: %v", r.Condition, r.Values)
		}
		a, err := kubernetes.ParseAmount(fmt.Sprintf("*%v", ratio))
		if err != nil {
			t.Fatal(err)
		}
		return a.Apply(current, kubernetes.Limits{}), r.Condition
	}
	return current, ""
}

// The cases of the HPA's replica calculator (pkg/controller/podautoscaler,
// replica_calculator_test.go: resource utilization and pods metrics, one
// value per pod, the default tolerance 0.1) give the same replicas.
func TestTargetValueGivesTheHPAsReplicas(t *testing.T) {
	for _, tc := range []struct {
		name    string
		current int32
		pods    []float64 // each pod's value (utilization % or metric)
		target  float64
		want    int32
	}{
		{"scale up (CPU 30%, pods at 30/50/70%)", 3, []float64{30, 50, 70}, 30, 5},
		{"scale down (CPU 50%, pods at 10/30/50/25/25%)", 5, []float64{10, 30, 50, 25, 25}, 50, 3},
		{"within the tolerance (102% of 100%)", 3, []float64{101, 103, 102}, 100, 3},
		{"scale up on a pods metric (average 20000 of 15000)", 3, []float64{20000, 10000, 30000}, 15000, 4},
		{"scale down on a pods metric (12000 of 20000)", 5, []float64{12000, 12000, 12000, 12000, 12000}, 20000, 3},
		{"within the tolerance on a pods metric (20666 of 20000)", 3, []float64{20000, 21000, 21000}, 20000, 3},
		{"just beyond the tolerance (111%)", 4, []float64{111, 111, 111, 111}, 100, 5},
		{"at the tolerance's edge (90%: within)", 10, []float64{90, 90, 90, 90, 90, 90, 90, 90, 90, 90}, 100, 10},
		{"from two to the formula's replicas (150 of 100)", 2, []float64{150, 150}, 100, 3},
		{"scale down to one", 4, []float64{5, 5, 5, 5}, 100, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := targetPolicy(t, fmt.Sprintf(`target = %g, window = "10s", scale_down_stabilization = "0s", scale_up_limit_percent = 0`, tc.target))
			w := NewWindows(3600)
			now := 1.7e9
			for i, v := range tc.pods {
				if err := w.Add(&Metric{DeploymentID: "d", NodeName: "web", Host: fmt.Sprintf("pod-%d", i), Name: "load", Value: v, Time: now}); err != nil {
					t.Fatal(err)
				}
			}
			if got, cond := replicasAfter(t, in, w, now, tc.current); got != tc.want {
				t.Errorf("%d replicas (%s), the HPA gives %d", got, cond, tc.want)
			}
		})
	}
}

func TestTargetValueStabilizesAndLimits(t *testing.T) {
	feed := func(w *Windows, now, v float64) {
		t.Helper()
		if err := w.Add(&Metric{DeploymentID: "d", NodeName: "web", Host: "h", Name: "load", Value: v, Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a scale-down waits for the whole stabilization window, and takes its highest ratio", func(t *testing.T) {
		in := targetPolicy(t, `target = 100, window = "1s", scale_down_stabilization = "5s"`)
		w := NewWindows(3600)
		now := 1.7e9
		for s, v := range []float64{100, 40, 60, 50, 40, 40, 40, 40, 40} {
			feed(w, now+float64(s), v)
			got, cond := replicasAfter(t, in, w, now+float64(s), 10)
			switch {
			case s < 5 && got != 10:
				t.Fatalf("second %d: scaled to %d (%s) within 5s of a ratio of 1", s, got, cond)
			case s == 5 && got != 6:
				// Seconds 1 to 5: 0.6 is the highest ratio.
				t.Fatalf("second 5: %d replicas (%s), want ceil(10 x 0.6) = 6", got, cond)
			case s == 8 && got != 4:
				t.Fatalf("second 8: %d replicas (%s), want ceil(10 x 0.4) = 4", got, cond)
			}
		}
	})
	t.Run("a scale-up is on the lowest ratio of its window", func(t *testing.T) {
		in := targetPolicy(t, `target = 100, window = "1s", scale_up_stabilization = "3s", scale_up_limit_percent = 0`)
		w := NewWindows(3600)
		now := 1.7e9
		var got []int32
		for s, v := range []float64{300, 150, 400, 400, 400} {
			feed(w, now+float64(s), v)
			n, _ := replicasAfter(t, in, w, now+float64(s), 2)
			got = append(got, n)
		}
		// The window is the last 3s: seconds 1-3 hold 1.5, seconds 2-4 only 4.
		if fmt.Sprint(got) != "[6 3 3 3 8]" {
			t.Errorf("replicas %v, want [6 3 3 3 8] (the lowest ratio of the last 3s)", got)
		}
	})
	t.Run("a firing changes at most the limit's percent", func(t *testing.T) {
		in := targetPolicy(t, `target = 100, window = "1s", scale_up_limit_percent = 50, scale_down_limit_percent = 25, scale_down_stabilization = "0s"`)
		w := NewWindows(3600)
		feed(w, 1.7e9, 1000)
		if got, _ := replicasAfter(t, in, w, 1.7e9, 4); got != 6 {
			t.Errorf("ratio 10 limited to +50%% of 4: %d, want 6", got)
		}
		feed(w, 1.7e9+2, 1)
		if got, _ := replicasAfter(t, in, w, 1.7e9+2, 4); got != 3 {
			t.Errorf("ratio 0.01 limited to -25%% of 4: %d, want 3", got)
		}
	})
	t.Run("no data is no decision", func(t *testing.T) {
		in := targetPolicy(t, `target = 100`)
		rs, err := in.Eval.Evaluate(NewWindows(3600), 1.7e9)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Known || r.Holds {
				t.Errorf("%s known or holding without data: %+v", r.Condition, r)
			}
		}
	})
}
