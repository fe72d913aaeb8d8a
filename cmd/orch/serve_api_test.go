package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/policies"
)

const webPolicy = `
node "web" {}
policy_type "hot" {
  parameter "limit" { type = number }
  condition "high" { when = mean(window("cpu", "30s")) > param.limit }
}
policy "web_cpu" {
  type       = policy_type.hot
  targets    = [node.web]
  properties = { limit = 80 }
}
`

// While orch serve holds the state file, the CLI works through its API:
// deploy with progress, listings, events, policies with live values, undeploy;
// /metrics needs the token; stopping serve gives the state file back.
func TestCLIGoesThroughServe(t *testing.T) {
	e := testenv.Get(t)
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state.db")
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)

	ep, err := api.ReadEndpoint(api.EndpointPath(state))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(api.EndpointPath(state)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("endpoint file mode: %v %v", st.Mode(), err)
	}
	if !strings.HasPrefix(ep.URL, "http://127.0.0.1:") {
		t.Errorf("API at %s, want loopback", ep.URL)
	}

	files := filepath.Join(tmp, "files")
	r := orch(t, state, "deploy", "../../examples/files/blueprint.hcl", "-d", "files", "-i", "dir="+files)
	if r.code != 0 || !strings.Contains(r.stdout, "install succeeded") || !strings.Contains(r.stdout, "[config_") {
		t.Fatalf("deploy through serve: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(files, "app.conf")); err != nil {
		t.Errorf("deploy through serve did not install: %v", err)
	}
	if r = orch(t, state, "deployments", "list"); r.code != 0 || !strings.Contains(r.stdout, "files") {
		t.Errorf("deployments list: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r = orch(t, state, "workflow", "run", "install", "-d", "files"); r.code != 0 {
		t.Errorf("workflow run: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r = orch(t, state, "events", "-d", "files", "--follow"); r.code != 0 || !strings.Contains(r.stdout, "install succeeded") {
		t.Errorf("events --follow: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r = orch(t, state, "workflow", "run", "nope", "-d", "files"); r.code == 0 || !strings.Contains(r.stderr, "nope") {
		t.Errorf("unknown workflow through serve: %d %s", r.code, r.stderr)
	}

	// A deployment with a policy, made through serve, is evaluated at once.
	bp := filepath.Join(tmp, "web.hcl")
	if err := os.WriteFile(bp, []byte(webPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = orch(t, state, "deploy", bp, "-d", "web"); r.code != 0 {
		t.Fatalf("deploy web: %s%s", r.stdout, r.stderr)
	}
	if r = orch(t, state, "metrics", "publish", "--url", e.AMQPURL, "--exchange", exchange, "-d", "web", "--node", "web",
		"--name", "cpu", "--value", "91"); r.code != 0 {
		t.Fatalf("publish: %s%s", r.stdout, r.stderr)
	}
	testenv.WaitFor(t, "the metric in the policy's window", 30*time.Second, func() bool {
		r = orch(t, state, "policies", "show", "web_cpu", "-d", "web")
		return strings.Contains(r.stdout, "mean(cpu, 30s) = 91")
	})
	if !strings.Contains(r.stdout, "holds") || !strings.Contains(r.stdout, "live, from orch serve") {
		t.Errorf("policies show:\n%s", r.stdout)
	}
	r = orch(t, state, "policies", "list", "-o", "json")
	var ps []struct {
		Name       string
		Conditions []struct{ Holds bool }
	}
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil || len(ps) != 1 || !ps[0].Conditions[0].Holds {
		t.Errorf("policies list -o json: %v %s", err, r.stdout)
	}

	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, ep.URL+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d", code)
	}
	code, text := get(ep.Token)
	if code != http.StatusOK || !strings.Contains(text, "orch_metric_messages_received_total 1") || !strings.Contains(text, `orch_executions_total{event="succeeded"} 3`) {
		t.Errorf("/metrics: %d\n%s", code, text)
	}

	if r = orch(t, state, "undeploy", "files"); r.code != 0 || !strings.Contains(r.stdout, "Deployment files deleted") {
		t.Errorf("undeploy through serve: %d %s%s", r.code, r.stdout, r.stderr)
	}
	serve.stop(t)
	if strings.Contains(serve.output(), ep.Token) {
		t.Errorf("serve printed its token")
	}
	if _, err := os.Stat(api.EndpointPath(state)); !os.IsNotExist(err) {
		t.Errorf("endpoint file left after serve stopped: %v", err)
	}
	if r = orch(t, state, "deployments", "list"); r.code != 0 || strings.Contains(r.stdout, "files") || !strings.Contains(r.stdout, "web") {
		t.Errorf("deployments list after serve stopped: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r = orch(t, state, "policies", "list"); r.code != 0 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("policies list without serve: %d %s%s", r.code, r.stdout, r.stderr)
	}
}

// The broker is stopped and started again under a running orch serve: it
// reconnects without crashing, and a breach after the restart triggers the
// workflow again.
func TestServeSurvivesABrokerRestart(t *testing.T) {
	e := testenv.Get(t)
	broker := testenv.PrivateBroker(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "brokerrestart")
	testenv.CreateDeployment(t, cs, ns, "web", 1)
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/restart.hcl", "-d", "web", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	serve := startServe(t, state, "--amqp-url", broker.URL, "--queue", "orch-restart-test")
	defer serve.stop(t)
	publish := func() { breachWeb(t, broker.URL, policies.DefaultExchange) }
	publish()
	testenv.WaitFor(t, "a scale-up before the restart", 60*time.Second, func() bool { return replicasOf(t, cs, ns, "web") == 2 })

	broker.Stop(t)
	testenv.WaitFor(t, "serve to notice the broker is gone", 30*time.Second, func() bool {
		return strings.Contains(serve.output(), "metric intake disconnected")
	})
	broker.Start(t)
	testenv.WaitFor(t, "serve to reconnect", 60*time.Second, func() bool {
		return strings.Count(serve.output(), "metric intake connected") >= 2
	})
	time.Sleep(1100 * time.Millisecond) // past the 1s cooldown
	publish()
	testenv.WaitFor(t, "a scale-up after the restart", 60*time.Second, func() bool { return replicasOf(t, cs, ns, "web") == 3 })
	if serve.cmd.ProcessState != nil {
		t.Fatalf("serve exited:\n%s", serve.output())
	}
}

// breachWeb publishes, with orch metrics publish, a cpu of 95 for the web
// node of the testdata/restart.hcl deployment "web": above its threshold.
func breachWeb(t *testing.T, url, exchange string) {
	t.Helper()
	if r := orch(t, filepath.Join(t.TempDir(), "unused.db"), "metrics", "publish", "--url", url, "--exchange", exchange, "-d", "web", "--node", "web",
		"--name", "cpu", "--path", "total", "--value", "95"); r.code != 0 {
		t.Fatalf("publish: %s%s", r.stdout, r.stderr)
	}
}
