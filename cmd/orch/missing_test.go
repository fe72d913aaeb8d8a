package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/plugins/mesh/meshtest"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// The metric sources stop under a running orch serve: the broker feeding
// one deployment is stopped, and the GraphQL source polled for another
// answers errors. In both, the policy that scales down on low values holds
// (missing data is never a zero), and the policy with on_missing_data =
// "scale_up" scales up, once per cooldown.
func TestMissingDataHoldsOrScalesUp(t *testing.T) {
	e := testenv.Get(t)
	broker := testenv.PrivateBroker(t)
	cs := e.Clientset(t, testenv.Primary)
	state := filepath.Join(t.TempDir(), "state.db")
	calisti := meshtest.New("mesh-token")
	defer calisti.Close()
	t.Setenv("ORCH_CALISTI_TOKEN", "mesh-token")

	// "viabroker" reads cpu published on the broker, "viamesh" rps polled
	// from the mesh.
	nss := map[string]string{}
	for dep, selector := range map[string]string{"viabroker": `\.cpu\.`, "viamesh": `\.rps\.`} {
		ns := testenv.Namespace(t, cs, "missing"+dep)
		nss[dep] = ns
		testenv.CreateDeployment(t, cs, ns, "web", 3)
		testenv.CreateDeployment(t, cs, ns, "api", 1)
		if r := orch(t, state, "deploy", "testdata/missing.hcl", "-d", dep, "-i", "kubeconfig="+e.Kubeconfig,
			"-i", "namespace="+ns, "-i", "selector="+selector); r.code != 0 {
			t.Fatalf("deploy %s: %s%s", dep, r.stdout, r.stderr)
		}
		for _, app := range []string{"web", "api"} {
			calisti.SetMetrics(ns, app, mesh.Metrics{RPS: 40})
		}
	}
	serve := startServe(t, state, "--amqp-url", broker.URL, "--queue", "orch-missing-test",
		"--mesh-url", calisti.URL, "--mesh-interval", "200ms")
	stopped := false
	defer func() {
		if !stopped {
			serve.stop(t)
		}
	}()

	// Normal values (40: neither scales) for a few windows, then the
	// sources stop.
	pub, err := producer.Dial(broker.URL, policies.DefaultExchange)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, node := range []string{"web", "api"} {
			m := producer.Metric{DeploymentID: "viabroker", NodeName: node, NodeID: node, Host: "h1", Name: "cpu", Path: "total",
				Value: 40, Time: policies.Seconds(time.Now())}
			if err := pub.Publish(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = pub.Close()
	broker.Stop(t)
	calisti.SetFail(true)
	time.Sleep(11 * time.Second) // the 2s windows empty, then about two cooldowns
	explain := func(dep, policy string) policies.PolicyStatus {
		t.Helper()
		r := orch(t, state, "policies", "explain", policy, "-d", dep, "-n", "100", "-o", "json")
		var ps policies.PolicyStatus
		if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
			t.Fatalf("explain %s/%s: %v\n%s%s", dep, policy, err, r.stdout, r.stderr)
		}
		return ps
	}
	// Live, through serve: the data is missing now.
	for dep := range nss {
		if down := explain(dep, "down"); down.MissingSince == 0 {
			t.Errorf("%s: down does not say its data is missing", dep)
		}
	}
	// Then stop serve (it drains the scale executions and flushes the
	// decision logs), so the decisions read below are all there were.
	serve.stop(t)
	stopped = true
	type outcome struct {
		fired []float64
	}
	results := map[string]outcome{}
	for dep := range nss {
		down := explain(dep, "down")
		var missing *policies.Decision
		for i, d := range down.Decisions {
			if d.Fired {
				t.Errorf("%s: down fired on missing data: %+v", dep, d)
			}
			if d.Reason == "missing-data" {
				missing = &down.Decisions[i]
			}
		}
		want := map[string]string{"viabroker": "broker failing", "viamesh": "mesh web failing"}[dep]
		if missing == nil || !strings.Contains(missing.Missing, want) {
			t.Errorf("%s: down's decisions %+v, want one held back as missing-data naming %q", dep, down.Decisions, want)
		}
		var o outcome
		for _, d := range explain(dep, "up").Decisions {
			if d.Fired {
				if d.Missing == "" || d.Execution == "" {
					t.Errorf("%s: up fired %+v, want on missing data with an execution", dep, d)
				}
				o.fired = append(o.fired, d.Time)
			}
		}
		results[dep] = o
	}
	for dep, ns := range nss {
		fired := results[dep].fired
		if len(fired) < 2 {
			t.Errorf("%s: up fired %d times in 11s or more of missing data with a 4s cooldown: %v", dep, len(fired), fired)
		}
		for i := 1; i < len(fired); i++ {
			if gap := fired[i] - fired[i-1]; gap < 4 || gap > 5.5 {
				t.Errorf("%s: fired %.1fs apart, want once per 4s cooldown: %v", dep, gap, fired)
			}
		}
		if got, want := replicasOf(t, cs, ns, "api"), int32(1+len(fired)); got != want {
			t.Errorf("%s: api has %d replicas after %d scale-ups from 1", dep, got, len(fired))
		}
		if got := replicasOf(t, cs, ns, "web"); got != 3 {
			t.Errorf("%s: web scaled down to %d on missing data", dep, got)
		}
	}
	if out := serve.output(); !strings.Contains(out, "metric source failing") {
		t.Errorf("serve did not log the failing mesh source:\n%s", out)
	}
}
