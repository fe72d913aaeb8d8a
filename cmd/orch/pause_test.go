package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
)

// A policy paused without serve running stays paused across serve
// restarts: breaches are held back as "paused" and scale nothing. Resumed
// through serve's API, the next breach scales; a pause given --for ends by
// itself.
func TestPausedPolicyHoldsAcrossServeRestarts(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "pause")
	testenv.CreateDeployment(t, cs, ns, "web", 1)
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/restart.hcl", "-d", "web", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	if r := orch(t, state, "policies", "pause", "web_cpu", "-d", "web", "--reason", "load test"); r.code != 0 || !strings.Contains(r.stdout, "Policy web/web_cpu paused") {
		t.Fatalf("pause without serve: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := orch(t, state, "policies", "pause", "nope", "-d", "web"); r.code == 0 || !strings.Contains(r.stderr, "web_cpu") {
		t.Errorf("pausing an unknown policy: %d %s", r.code, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	args := []string{"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue}
	publish := func() { breachWeb(t, e.AMQPURL, exchange) }
	held := func(step string) {
		t.Helper()
		testenv.WaitFor(t, step+": the breach held back as paused", 30*time.Second, func() bool {
			r := orch(t, state, "policies", "show", "web_cpu", "-d", "web")
			return strings.Contains(r.stdout, "held back (paused)") && strings.Contains(r.stdout, "(load test)")
		})
		if got := replicasOf(t, cs, ns, "web"); got != 1 {
			t.Fatalf("%s: a paused policy scaled to %d", step, got)
		}
	}
	serve := startServe(t, state, args...)
	publish()
	held("first serve")
	serve.stop(t)

	serve = startServe(t, state, args...)
	defer serve.stop(t)
	publish()
	held("after a restart")

	if r := orch(t, state, "policies", "resume", "web_cpu", "-d", "web"); r.code != 0 || !strings.Contains(r.stdout, "resumed") {
		t.Fatalf("resume through serve: %d %s%s", r.code, r.stdout, r.stderr)
	}
	time.Sleep(1100 * time.Millisecond) // past the 1s moving window
	publish()
	testenv.WaitFor(t, "a scale-up once resumed", 60*time.Second, func() bool { return replicasOf(t, cs, ns, "web") == 2 })

	if r := orch(t, state, "policies", "pause", "--all", "-d", "web", "--for", "3s"); r.code != 0 || !strings.Contains(r.stdout, "paused until") {
		t.Fatalf("pause --for: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := orch(t, state, "policies", "list"); !strings.Contains(r.stdout, "paused") || !strings.Contains(r.stdout, "until") {
		t.Errorf("policies list does not show the pause:\n%s", r.stdout)
	}
	time.Sleep(1100 * time.Millisecond)
	publish()
	time.Sleep(1500 * time.Millisecond)
	if got := replicasOf(t, cs, ns, "web"); got != 2 {
		t.Fatalf("scaled during a --for pause: %d", got)
	}
	time.Sleep(1 * time.Second) // the pause has ended
	publish()
	testenv.WaitFor(t, "a scale-up once the pause expired", 60*time.Second, func() bool { return replicasOf(t, cs, ns, "web") == 3 })

	// explain tells it all, the decisions of the first serve included (the
	// log is kept in the state file).
	r := orch(t, state, "policies", "explain", "web_cpu", "-d", "web", "-n", "50")
	if r.code != 0 || strings.Count(r.stdout, "held back: the policy is paused") < 3 ||
		strings.Count(r.stdout, "fired: queued scale as execution") != 2 || !strings.Contains(r.stdout, "value=95") {
		t.Errorf("explain: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
