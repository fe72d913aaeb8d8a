package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
)

// updateServeV1 has one policy, "hot", on cpu; its trigger runs a workflow
// of steps that writes "hot" to the journal. v2 keeps it and adds "cold"
// on mem, writing "cold".
const updateServeV1 = `
input "journal" {}
node_type "app" {
  operation "note" {
    implementation = "script"
    inputs         = { command = ["sh", "-c", "echo \"$WHAT\" >> \"$JOURNAL\""], JOURNAL = input.journal, WHAT = "hot" }
  }
}
node "app" { type = "app" }
workflow "react" {
  parameter "what" { default = "hot" }
  step "note" {
    target         = node.app
    call_operation = "note"
    inputs         = { WHAT = param.what }
  }
}
policy_type "over" {
  parameter "metric" { type = string }
  parameter "cooldown_time" { default = "1h" }
  condition "high" { when = mean(window(param.metric, "5s")) > 50 }
}
policy "hot" {
  type          = policy_type.over
  initial_delay = "0s"
  properties    = { metric = "cpu" }
  trigger "high" { workflow = workflow.react }
}
`

const updateServeV2 = updateServeV1 + `
policy "cold" {
  type          = policy_type.over
  initial_delay = "0s"
  properties    = { metric = "mem" }
  trigger "high" {
    workflow   = workflow.react
    parameters = { what = "cold" }
  }
}
`

// An update through orch serve's API with the real broker: the policy
// kept keeps its cooldown (no second firing after the update), the policy
// added is evaluated at once; both trigger a workflow of steps.
func TestUpdateThroughServeKeepsPolicyState(t *testing.T) {
	e := testenv.Get(t)
	if _, err := exec.LookPath("amqp-publish"); err != nil {
		t.Fatal("amqp-publish missing: make env-up installs amqp-tools")
	}
	dir := t.TempDir()
	state, journal := filepath.Join(dir, "state.db"), filepath.Join(dir, "journal")
	v1, v2 := filepath.Join(dir, "v1.hcl"), filepath.Join(dir, "v2.hcl")
	for f, src := range map[string]string{v1: updateServeV1, v2: updateServeV2} {
		if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := orch(t, state, "deploy", v1, "-d", "upd", "-i", "journal="+journal); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "update")
	publish := func(metric string, value float64) {
		t.Helper()
		body := fmt.Sprintf(`{"node_id": "app_1", "node_name": "app", "deployment_id": "upd", "name": %q, "metric": %g, "host": "h1", "service": "upd.app.app_1.%s", "time": %d}`,
			metric, value, metric, time.Now().Unix())
		if out, err := exec.Command("amqp-publish", "--url", strings.TrimSuffix(e.AMQPURL, "/"), "-e", exchange, "-r", "upd", "-C", "application/json", "-b", body).CombinedOutput(); err != nil {
			t.Fatalf("amqp-publish: %v %s", err, out)
		}
	}
	notes := func() string { b, _ := os.ReadFile(journal); return string(b) }
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	testenv.WaitFor(t, "hot fires", 30*time.Second, func() bool {
		if strings.Contains(notes(), "hot") {
			return true
		}
		publish("cpu", 95)
		return false
	})

	// Through the API (serve holds the state file).
	r := orch(t, state, "deployments", "update", "upd", v2)
	if r.code != 0 || !strings.Contains(r.stdout, "add policy cold") || !strings.Contains(r.stdout, "keep policies hot") {
		t.Fatalf("update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	testenv.WaitFor(t, "cold fires, evaluated at once", 30*time.Second, func() bool {
		if strings.Contains(notes(), "cold") {
			return true
		}
		publish("mem", 95)
		return false
	})
	for range 3 {
		publish("cpu", 97)
	}
	time.Sleep(2 * time.Second)
	if n := strings.Count(notes(), "hot"); n != 1 {
		t.Errorf("hot fired %d times: its cooldown was lost in the update\n%s", n, notes())
	}
	r = orch(t, state, "policies", "list", "-d", "upd")
	if !strings.Contains(r.stdout, "cold") || !strings.Contains(r.stdout, "hot") {
		t.Errorf("policies after the update:\n%s%s", r.stdout, r.stderr)
	}
}
