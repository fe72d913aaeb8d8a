package policies

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/orchhq/orch/blueprints"
)

// scale.clj written as a user-defined policy type: it must behave exactly
// like the built-in scale_threshold on the same stream.
const scaleCLJ = `
policy_type "scale_clj" {
  parameter "service_selector" { default = ".*" }
  parameter "moving_window_size" { default = "10s" }
  parameter "scale_threshold" { type = number }
  parameter "scale_limit" {
    type    = number
    default = 10
  }
  parameter "scale_direction" { default = "<" }
  parameter "cooldown_time" { default = "30s" }
  condition "scale" {
    when = (param.scale_direction == "<"
      ? hosts(services(param.service_selector, param.moving_window_size)) < param.scale_limit && param.scale_threshold < mean(services(param.service_selector, param.moving_window_size))
      : hosts(services(param.service_selector, param.moving_window_size)) > param.scale_limit && param.scale_threshold > mean(services(param.service_selector, param.moving_window_size)))
  }
}

node "web" {}
workflow "scale" { uses = "test.scale" }

policy "builtin_up" {
  initial_delay = "0s"
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 70, scale_limit = 5 }
  trigger "scale" { workflow = workflow.scale }
}
policy "hcl_up" {
  initial_delay = "0s"
  type       = policy_type.scale_clj
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 70, scale_limit = 5 }
  trigger "scale" { workflow = workflow.scale }
}
policy "builtin_down" {
  initial_delay = "0s"
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 30, scale_limit = 1, scale_direction = ">", cooldown_time = "45s" }
  trigger "scale" { workflow = workflow.scale }
}
policy "hcl_down" {
  initial_delay = "0s"
  type       = policy_type.scale_clj
  targets    = [node.web]
  properties = { service_selector = "cpu", scale_threshold = 30, scale_limit = 1, scale_direction = ">", cooldown_time = "45s" }
  trigger "scale" { workflow = workflow.scale }
}
`

func resolvePolicies(t *testing.T, src string) map[string]*blueprints.PlanPolicy {
	t.Helper()
	out := map[string]*blueprints.PlanPolicy{}
	for _, p := range resolvePlan(t, src).Policies {
		out[p.Name] = p
	}
	return out
}

// stream: three hosts' cpu for 10 minutes, one sample a second each, going
// up and down across both thresholds, with a host that stops reporting.
func stream() []*Metric {
	var out []*Metric
	for s := 0; s < 600; s++ {
		t := 1.7e9 + float64(s)
		for h, phase := range []float64{0, 1, 2} {
			if h == 2 && s > 300 && s < 400 {
				continue // host c is silent for a while
			}
			v := 50 + 45*math.Sin(float64(s)/40+phase) + float64((s*7+h*13)%11) - 5
			out = append(out, &Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web_1", Host: fmt.Sprintf("10.0.0.%d", h),
				Name: "cpu", Path: "total", Value: v, Time: t, Service: "shop.web.web_1.cpu.total"})
		}
	}
	return out
}

func TestUserDefinedScaleCLJBehavesLikeTheBuiltIn(t *testing.T) {
	pols := resolvePolicies(t, scaleCLJ)
	w := NewWindows(600)
	instances := map[string]*Instance{}
	for name, p := range pols {
		in, err := NewInstance(Target{Deployment: "shop", Nodes: map[string]bool{"web": true}}, p)
		if err != nil {
			t.Fatal(err)
		}
		instances[name] = in
	}
	fired := map[string][]float64{}
	held := map[string]int{}
	for _, m := range stream() {
		w.Add(m)
		for name, in := range instances {
			ds, err := in.Step(w, m.Time, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Fired {
					fired[name] = append(fired[name], d.Time)
				} else {
					held[name]++
				}
			}
		}
	}
	for _, dir := range []string{"up", "down"} {
		b, h := fired["builtin_"+dir], fired["hcl_"+dir]
		if len(b) == 0 {
			t.Errorf("scale %s never fired: the stream does not exercise it", dir)
		}
		if !reflect.DeepEqual(b, h) {
			t.Errorf("scale %s: built-in fired at %v, user-defined at %v", dir, b, h)
		}
		if held["builtin_"+dir] == 0 || held["builtin_"+dir] != held["hcl_"+dir] {
			t.Errorf("scale %s: held back by cooldown %d vs %d times", dir, held["builtin_"+dir], held["hcl_"+dir])
		}
		for i := 1; i < len(b); i++ {
			cooldown := 30.0
			if dir == "down" {
				cooldown = 45
			}
			if b[i]-b[i-1] < cooldown {
				t.Errorf("scale %s fired %gs after the previous time, inside its cooldown", dir, b[i]-b[i-1])
			}
		}
	}
}

func TestRPSBurstHysteresis(t *testing.T) {
	pols := resolvePolicies(t, `
node "bookings" {}
workflow "w" { uses = "test.scale" }
policy "rps" {
  initial_delay = "0s"
  type       = "orch.rps_burst"
  targets    = [node.bookings]
  properties = { burst_value = 40, reconcile_value = 20, throttle_delay = "30s" }
  trigger "burst" { workflow = workflow.w }
  trigger "reconcile" { workflow = workflow.w }
}`)
	in, err := NewInstance(Target{Deployment: "shop"}, pols["rps"])
	if err != nil {
		t.Fatal(err)
	}
	w := NewWindows(300)
	var events []string
	feed := func(from, to int, value func(s int) float64) {
		for s := from; s < to; s++ {
			m := &Metric{DeploymentID: "shop", NodeName: "bookings", Host: "h", Name: "rps", Value: value(s), Time: 1000 + float64(s)}
			w.Add(m)
			ds, err := in.Step(w, m.Time, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Fired {
					events = append(events, fmt.Sprintf("%s@%d", d.Condition, s))
				}
			}
		}
	}
	// In between the values: nothing.
	feed(0, 60, func(int) float64 { return 30 })
	// Spikes: the 5s mean crosses burst_value for a few seconds at a time,
	// never for the whole delay: nothing.
	feed(60, 120, func(s int) float64 {
		if s%10 == 0 {
			return 90
		}
		return 30
	})
	// Held above from s=120 (the 5s mean is 44 there): burst once, at 150.
	feed(120, 170, func(int) float64 { return 100 })
	// Down: the 5s mean is below reconcile_value from s=174: reconcile
	// once, at 204, and not again while it stays low.
	feed(170, 300, func(s int) float64 { return 15 + float64(s%3) })
	if want := []string{"burst@150", "reconcile@204"}; !reflect.DeepEqual(events, want) {
		t.Errorf("fired %v, want %v", events, want)
	}
}

func TestUserDefinedConditionsExplainTheirValues(t *testing.T) {
	pols := resolvePolicies(t, scaleCLJ)
	in, err := NewInstance(Target{Deployment: "shop", Nodes: map[string]bool{"web": true}}, pols["hcl_up"])
	if err != nil {
		t.Fatal(err)
	}
	w := NewWindows(60)
	w.Add(&Metric{DeploymentID: "shop", NodeName: "web", Host: "h", Name: "cpu", Value: 90, Time: 100, Service: "shop.web.web_1.cpu."})
	ds, err := in.Step(w, 100, nil)
	if err != nil || len(ds) != 1 {
		t.Fatalf("decisions %+v, %v", ds, err)
	}
	want := map[string]float64{"mean(services(cpu), 10s)": 90, "hosts(services(cpu), 10s)": 1}
	if !reflect.DeepEqual(ds[0].Values.Map(), want) {
		t.Errorf("values %v, want %v", ds[0].Values, want)
	}
}

func TestDecisionValuesAreAJSONObjectAsAMapWas(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    Values
		json string
	}{
		{"labels sorted", Values{{"mean(cpu, 10s)", 83.5}, {"hosts", 2}}, `{"time":0,"policy":"","condition":"","fired":false,"values":{"hosts":2,"mean(cpu, 10s)":83.5}}`},
		{"none left out", nil, `{"time":0,"policy":"","condition":"","fired":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(Decision{Values: tc.v})
			if err != nil || string(b) != tc.json {
				t.Fatalf("marshalled %s (%v), want %s", b, err, tc.json)
			}
			var back Decision
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Values.Map(), tc.v.Map()) {
				t.Errorf("read back %v, want %v", back.Values, tc.v)
			}
			for _, r := range tc.v {
				if got, ok := back.Values.Get(r.Label); !ok || got != r.Value {
					t.Errorf("Get(%q) = %v %v, want %v", r.Label, got, ok, r.Value)
				}
			}
		})
	}
	var v Values
	if err := json.Unmarshal([]byte(`["not", "an", "object"]`), &v); err == nil {
		t.Errorf("an array read as values: %v", v)
	}
}
