package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/workflows"
)

// legacyBlueprint was stored before cooldown_time was checked: "30 s" was
// then silently no cooldown.
const legacyBlueprint = `node "web" {}
workflow "scale" { uses = "kubernetes.scale" }
policy "web_cpu" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, cooldown_time = "30 s" }
  trigger "scale" { workflow = workflow.scale }
}
`

// storeLegacyDeployment writes a deployment into the state file as an
// older orch would have, bypassing today's checks.
func storeLegacyDeployment(t *testing.T, state, id string) {
	t.Helper()
	store, err := orchestrator.Open(state, orchestrator.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec := &orchestrator.BlueprintRecord{ID: "legacy0123456789", Main: []string{"/old/legacy.hcl"},
		Sources: map[string]string{"/old/legacy.hcl": legacyBlueprint}, CreatedAt: time.Now().UTC()}
	d := &orchestrator.Deployment{ID: id, Blueprint: rec.ID, Dir: "/old", CreatedAt: time.Now().UTC(),
		Instances: map[string]*workflows.NodeInstance{"web": {ID: "web_abc123", Node: "web", State: workflows.StateStarted}}}
	if err := store.CreateDeployment(context.Background(), rec, d); err != nil {
		t.Fatal(err)
	}
}

// A state file holding a deployment whose policy no longer compiles: serve
// starts, the other deployment's policy scales on the real broker and
// cluster, and the broken one is shown as broken, with the line that is
// wrong, in deployments list/show (through serve and without it), in
// /metrics and in the log. Its workflows still run: it can be undeployed.
func TestBrokenDeploymentDoesNotStopServe(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "broken")
	testenv.CreateDeployment(t, cs, ns, "web", 1)
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/restart.hcl", "-d", "web", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	storeLegacyDeployment(t, state, "legacy")

	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	breachWeb(t, e.AMQPURL, exchange)
	testenv.WaitFor(t, "the healthy deployment's policy scales web", 60*time.Second, func() bool { return replicasOf(t, cs, ns, "web") == 2 })

	reason := `/old/legacy.hcl:6:56: error: Invalid value for cooldown_time`
	checkShown := func(how string) {
		t.Helper()
		r := orch(t, state, "deployments", "list")
		if r.code != 0 || !strings.Contains(r.stdout, "broken: "+reason) || !strings.Contains(r.stdout, "web ") || strings.Count(r.stdout, "broken:") != 1 {
			t.Errorf("deployments list %s: %d\n%s%s", how, r.code, r.stdout, r.stderr)
		}
		r = orch(t, state, "deployments", "show", "legacy")
		if r.code != 0 || !strings.Contains(r.stdout, "Status:     broken") || !strings.Contains(r.stdout, reason) || !strings.Contains(r.stdout, `"30 s" is not a duration`) {
			t.Errorf("deployments show %s: %d\n%s%s", how, r.code, r.stdout, r.stderr)
		}
	}
	checkShown("through serve")
	ep, err := api.ReadEndpoint(api.EndpointPath(state))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ep.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ep.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "\norch_deployments_broken 1\n") {
		t.Errorf("/metrics lacks orch_deployments_broken 1:\n%s", body)
	}
	serve.stop(t)
	if out := serve.output(); !strings.Contains(out, "deployment broken") || !strings.Contains(out, "deployment=legacy") || !strings.Contains(out, "1 policies") {
		t.Errorf("serve's log does not say the deployment is broken, or counts its policy:\n%s", out)
	}
	checkShown("from the state file")

	// Its workflows still resolve: it can be undeployed.
	if r := orch(t, state, "undeploy", "legacy"); r.code != 0 {
		t.Errorf("undeploy of the broken deployment: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := orch(t, state, "deployments", "list"); strings.Contains(r.stdout, "legacy") {
		t.Errorf("legacy still listed after undeploy:\n%s", r.stdout)
	}
}
