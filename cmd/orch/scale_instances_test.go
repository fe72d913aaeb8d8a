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

const workersBlueprint = `
input "journal" {}

node "worker" {
  instances {
    default = 1
    max     = 3
  }
  operation "create" {
    implementation = "script"
    inputs         = { command = ["sh", "-c", "echo \"create $ORCH_INSTANCE\" >> \"$JOURNAL\""], JOURNAL = input.journal }
  }
}

policy_type "busy" {
  parameter "cooldown_time" { default = "1h" }
  condition "high" {
    direction = "up"
    when      = mean(window("load", "5s")) > 80
  }
}

policy "grow" {
  type          = policy_type.busy
  targets       = [node.worker]
  initial_delay = "0s"
  trigger "high" {
    workflow   = workflow.scale
    parameters = { scalable_entity_name = "worker", delta = 1 }
  }
}
`

// The seed's "default scaling workflow": a policy triggers the built-in
// scale of a node from live metrics under orch serve, and a new instance
// of the node is installed; the metric names the instance that reported it.
func TestServeScalesInstancesFromMetrics(t *testing.T) {
	e := testenv.Get(t)
	if _, err := exec.LookPath("amqp-publish"); err != nil {
		t.Fatal("amqp-publish missing: make env-up installs amqp-tools")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	journal := filepath.Join(dir, "journal")
	bp := filepath.Join(dir, "workers.hcl")
	if err := os.WriteFile(bp, []byte(workersBlueprint), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := orch(t, state, "deploy", bp, "-d", "workers", "-i", "journal="+journal); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	first := ofNode(showDeployment(t, state, "workers"), "worker")
	if len(first) != 1 {
		t.Fatalf("workers after deploy: %+v", first)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	id := first[0].ID
	publish := func() {
		body := fmt.Sprintf(`{"node_id": %q, "node_name": "worker", "deployment_id": "workers", "name": "load", "path": "total", "metric": 95, "unit": "percent", "type": "GAUGE", "host": "10.0.0.8", "service": "workers.worker.%s.load.total", "time": %d}`, id, id, time.Now().Unix())
		if out, err := exec.Command("amqp-publish", "--url", strings.TrimSuffix(e.AMQPURL, "/"), "-e", exchange, "-r", "workers", "-C", "application/json", "-b", body).CombinedOutput(); err != nil {
			t.Fatalf("amqp-publish: %v %s", err, out)
		}
	}
	testenv.WaitFor(t, "a second worker instance", 60*time.Second, func() bool {
		if len(ofNode(showDeployment(t, state, "workers"), "worker")) == 2 {
			return true
		}
		publish()
		return false
	})
	workers := ofNode(showDeployment(t, state, "workers"), "worker")
	testenv.WaitFor(t, "the new worker started", 30*time.Second, func() bool {
		workers = ofNode(showDeployment(t, state, "workers"), "worker")
		return len(workers) == 2 && workers[1].State == "started"
	})
	if b, _ := os.ReadFile(journal); strings.Count(string(b), "create "+workers[1].ID) != 1 || strings.Count(string(b), "create ") != 2 {
		t.Errorf("journal:\n%s", b)
	}
	publish() // inside the cooldown: no third instance
	time.Sleep(2 * time.Second)
	if n := len(ofNode(showDeployment(t, state, "workers"), "worker")); n != 2 {
		t.Errorf("%d workers after a breach inside the cooldown", n)
	}
	if !strings.Contains(serve.output(), "workflow scale queued") {
		t.Errorf("serve output lacks the trigger:\n%s", serve.output())
	}
}
