package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// examples/custom-policy: a policy type written in the blueprint scales the
// app up when the p95 latency breaks the SLO and down when it is calm.
func TestCustomPolicyExampleOnTheCluster(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "slo")
	testenv.CreateDeployment(t, cs, ns, "bookings", 2)
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "../../examples/custom-policy/blueprint.hcl", "-d", "slo",
		"-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	pub, err := producer.Dial(e.AMQPURL, exchange)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	latency := func(step string, value float64, want int32) {
		t.Helper()
		testenv.WaitFor(t, step, 60*time.Second, func() bool {
			for _, host := range []string{"h1", "h2"} {
				m := producer.Metric{DeploymentID: "slo", NodeName: "bookings", NodeID: "bookings", Host: host, Name: "latency",
					Value: value, Time: policies.Seconds(time.Now())}
				if err := pub.Publish(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond)
			return replicasOf(t, cs, ns, "bookings") == want
		})
	}
	latency("a scale-up on a p95 above the SLO", 0.8, 3)
	latency("a scale-down once calm", 0.1, 2)
	r := orch(t, state, "policies", "explain", "bookings_latency", "-d", "slo")
	for _, want := range []string{"breach", "calm", "fired: queued scale"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q:\n%s", want, r.stdout)
		}
	}
}
