package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/plugins/mesh/meshtest"
	"github.com/orchhq/orch/policies"
)

// A blueprint's calisti source polls its node's mesh service with the
// token of a sensitive input (serve has no --mesh-url): high rps scales
// web on the primary cluster; the source failing is missing data, named.
func TestCalistiSourceOfTheBlueprintScales(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "calistisrc")
	testenv.CreateDeployment(t, cs, ns, "web", 1)
	calisti := meshtest.New("blueprint-token")
	defer calisti.Close()
	calisti.SetMetrics(ns, "web", mesh.Metrics{RPS: 40})
	t.Setenv("ORCH_INPUT_MESH_TOKEN", "blueprint-token")
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/calisti.hcl", "-d", "cal", "-i", "kubeconfig="+e.Kubeconfig,
		"-i", "namespace="+ns, "-i", "mesh_url="+calisti.URL); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "calistisrc")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	stopped := false
	defer func() {
		if !stopped {
			serve.stop(t)
		}
	}()
	time.Sleep(3 * time.Second)
	if got := replicasOf(t, cs, ns, "web"); got != 1 {
		t.Fatalf("web has %d replicas at 40 rps, want 1", got)
	}
	calisti.SetMetrics(ns, "web", mesh.Metrics{RPS: 95})
	testenv.WaitFor(t, "the polled rps scales web to 2", 30*time.Second, func() bool { return replicasOf(t, cs, ns, "web") == 2 })
	if calisti.Rejected() != 0 {
		t.Errorf("%d requests did not validate against the schema (or had the wrong token)", calisti.Rejected())
	}
	calisti.SetFail(true)
	explain := func() policies.PolicyStatus {
		r := orch(t, state, "policies", "explain", "web_rps", "-d", "cal", "-n", "100", "-o", "json")
		var ps policies.PolicyStatus
		if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
			t.Fatalf("explain: %v\n%s%s", err, r.stdout, r.stderr)
		}
		return ps
	}
	testenv.WaitFor(t, "the data missing", 20*time.Second, func() bool { return explain().MissingSince != 0 })
	serve.stop(t)
	stopped = true
	named := false
	for _, d := range explain().Decisions {
		named = named || d.Reason == "missing-data" && strings.Contains(d.Missing, "source mesh failing")
	}
	if !named {
		t.Errorf("no missing-data decision names the failing source: %+v", explain().Decisions)
	}
	if strings.Contains(serve.output(), "blueprint-token") {
		t.Error("serve's output shows the token")
	}
}
