package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// orch.target_value on the primary cluster: web goes from 2 to the
// replicas the HPA's formula gives, holds while the load is within the
// tolerance, and comes down proportionally after its stabilization window.
func TestTargetValueScalesADeploymentAsTheHPA(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "target")
	testenv.CreateDeployment(t, cs, ns, "web", 2)
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/target.hcl", "-d", "tv", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "target")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	pub, err := producer.Dial(e.AMQPURL, exchange)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// load publishes one value per host (the replicas' pods), every 200ms,
	// for d.
	load := func(d time.Duration, hosts int, v float64) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			for h := 0; h < hosts; h++ {
				m := producer.Metric{DeploymentID: "tv", NodeName: "web", NodeID: "web", Host: fmt.Sprintf("web-%d", h), Name: "load",
					Value: v, Time: policies.Seconds(time.Now())}
				if err := pub.Publish(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// 150 per pod on 2 pods, target 100: ceil(2 x 1.5) = 3.
	load(2*time.Second, 2, 150)
	testenv.WaitFor(t, "web scaled to ceil(2 x 150/100) = 3", 30*time.Second, func() bool {
		load(200*time.Millisecond, 2, 150)
		return replicasOf(t, cs, ns, "web") != 2
	})
	if got := replicasOf(t, cs, ns, "web"); got != 3 {
		t.Fatalf("web has %d replicas, the HPA's formula gives 3", got)
	}
	// The 2s window runs dry (missing data: nothing fires), then the load
	// is within the tolerance (108 of 100): it holds, past the cooldown and
	// the down stabilization.
	time.Sleep(2500 * time.Millisecond)
	load(8*time.Second, 3, 108)
	if got := replicasOf(t, cs, ns, "web"); got != 3 {
		t.Fatalf("web scaled to %d on a load within the tolerance, want 3", got)
	}
	// 40 per pod on 3 pods: ceil(3 x 0.4) = 2, once the 3s stabilization
	// window has only low ratios.
	testenv.WaitFor(t, "web scaled down to ceil(3 x 40/100) = 2", 30*time.Second, func() bool {
		load(500*time.Millisecond, 3, 40)
		return replicasOf(t, cs, ns, "web") != 3
	})
	if got := replicasOf(t, cs, ns, "web"); got != 2 {
		t.Errorf("web has %d replicas, the HPA's formula gives 2", got)
	}
}
