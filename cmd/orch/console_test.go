package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// consolePolicy adds a policy on the hosts' load to the nodecellar
// example, for the console's policy page.
const consolePolicy = `imports = ["blueprint.hcl"]

policy "host_load" {
  initial_delay = "0s"
  type          = "orch.scale_threshold"
  targets       = [node.host]
  properties = {
    service_selector   = "\\.load\\."
    scale_threshold    = 50
    moving_window_size = "2s"
    cooldown_time      = "1m"
  }
  trigger "scale" {
    workflow   = workflow.execute_operation
    parameters = { operation = "backup", type_names = ["nodecellar.Mongo"] }
  }
}
`

// The console in Debian's headless Chromium (playwright-core): log in
// with the token (a wrong one refused), see the topology of a deployment
// made through the API with its nodes, instances and relationships, run a
// workflow from its form and watch its events arrive, pause a policy and
// see it held back while its chart moves with the metrics published to the
// broker. Screenshots go to ORCH_CONSOLE_SHOTS (default: a directory under
// the system's temporary one, logged).
func TestConsoleInABrowser(t *testing.T) {
	e := testenv.Get(t)
	dir := t.TempDir()
	for _, f := range []string{"blueprint.hcl", "op.sh"} {
		b, err := os.ReadFile(filepath.Join("../../examples/nodecellar", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "console.hcl"), []byte(consolePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "console")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	ep, err := api.ReadEndpoint(api.EndpointPath(state))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := api.NewClient(ep.URL, ep.Token)
	_, x, err := client.Deploy(ctx, orchestrator.DeployRequest{Paths: []string{filepath.Join(dir, "console.hcl")}, ID: "cellar",
		Inputs: map[string]string{"journal": filepath.Join(dir, "journal")}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "install", 60*time.Second, func() bool {
		got, err := client.Execution(ctx, x.ID)
		return err == nil && got.Status.Ended()
	})

	// The hosts' load, every 300ms: 30 (below the threshold) until the
	// browser has paused the policy, then 80.
	pub, err := producer.Dial(e.AMQPURL, exchange)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var load atomic.Int64
	load.Store(30)
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	go func() {
		for pctx.Err() == nil {
			m := producer.Metric{DeploymentID: "cellar", NodeName: "host", NodeID: "host", Host: "h1", Name: "load",
				Value: float64(load.Load()), Time: policies.Seconds(time.Now())}
			_ = pub.Publish(pctx, m)
			time.Sleep(300 * time.Millisecond)
		}
	}()

	shots := os.Getenv("ORCH_CONSOLE_SHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "orch-console-shots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	nodes, _ := json.Marshal(map[string]int{"mongo_host": 1, "mongod": 1, "host": 2, "nodecellar": 2})
	edges, _ := json.Marshal([][3]string{{"mongod", "mongo_host", "contained"}, {"nodecellar", "host", "contained"}, {"nodecellar", "mongod", "connected"}})
	cmd := exec.Command("node", "testdata/console/console.cjs")
	cmd.Env = append(os.Environ(), "NODE_PATH="+e.NodePath, "ORCH_CHROMIUM="+e.Chromium, "ORCH_URL="+ep.URL, "ORCH_TOKEN="+ep.Token,
		"ORCH_DEPLOYMENT=cellar", "ORCH_POLICY=host_load", "ORCH_SHOTS="+shots, "ORCH_EXPECT_NODES="+string(nodes), "ORCH_EXPECT_EDGES="+string(edges))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var steps []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			steps = append(steps, line)
			switch line {
			case "need:breach":
				load.Store(80)
				_, _ = io.WriteString(stdin, "ok:breach\n")
			case "need:quiet":
				stopPub()
				time.Sleep(400 * time.Millisecond) // the last publish lands
				_, _ = io.WriteString(stdin, "ok:quiet\n")
			}
		}
	}()
	// The steps are read to the end before Wait, which closes the pipe
	// (the last step, "done", could otherwise go unread).
	timer := time.AfterFunc(4*time.Minute, func() { _ = cmd.Process.Kill(); _ = stdout.Close() })
	<-done
	err = cmd.Wait()
	timer.Stop()
	t.Logf("browser steps:\n%s\nscreenshots in %s", strings.Join(steps, "\n"), shots)
	if err != nil || len(steps) == 0 || steps[len(steps)-1] != "done" {
		t.Fatalf("the browser test failed (%v):\n%s\nserve:\n%s", err, stderr.String(), serve.output())
	}
	// The paused policy ran nothing.
	xs, err := client.Executions(ctx, "cellar")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.Workflow == "execute_operation" {
			t.Errorf("the paused policy ran %s (%s)", x.Workflow, x.ID)
		}
	}
}
