package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
)

// serveProc is an orch serve the test started. Its output is written
// here by exec's own copier, so a Wait that returns has all of it: a
// pipe read by the test could lose the last lines, Wait closing the pipe
// before they were read.
type serveProc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out strings.Builder
}

func (s *serveProc) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *serveProc) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func startServe(t *testing.T, state string, args ...string) *serveProc {
	t.Helper()
	// Tests run in parallel: each serve's API takes any free port.
	s := &serveProc{cmd: exec.Command(orchBin, append([]string{"--state", state, "serve", "--api-addr", "127.0.0.1:0"}, args...)...)}
	s.cmd.Stdout, s.cmd.Stderr = s, s
	// A process that inherited the output and outlives orch would hold
	// Wait up: the output is then cut after this long.
	s.cmd.WaitDelay = 10 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "orch serve consuming", 60*time.Second, func() bool { return strings.Contains(s.output(), "metric intake connected") })
	return s
}

func (s *serveProc) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("orch serve exited: %v\n%s", err, s.output())
		}
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatalf("orch serve did not stop on SIGTERM\n%s", s.output())
	}
}

// Story 1 end to end: Diamond-format metrics published with amqp-publish
// make the scale.clj policy run kube_scale +1 over ssh on the primary
// cluster; the cooldown holds across a restart of orch serve; low values
// scale down.
func TestStory1ServeScalesFromMetrics(t *testing.T) {
	e := testenv.Get(t)
	if _, err := exec.LookPath("amqp-publish"); err != nil {
		t.Fatal("amqp-publish missing: make env-up installs amqp-tools")
	}
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "story1serve")
	testenv.CreateDeployment(t, cs, ns, "bookings", 2)
	replicas := func() int32 { return replicasOf(t, cs, ns, "bookings") }
	state := filepath.Join(t.TempDir(), "state.db")
	deployScaleExample(t, e, state, ns)
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	publish := func(value float64) {
		t.Helper()
		body := fmt.Sprintf(`{"node_id": "bookings_1", "node_name": "bookings", "deployment_id": "scale", "name": "cpu", "path": "total", "metric": %g, "unit": "percent", "type": "GAUGE", "host": "10.0.0.7", "service": "scale.bookings.bookings_1.cpu.total", "time": %d}`, value, time.Now().Unix())
		url := strings.TrimSuffix(e.AMQPURL, "/")
		if out, err := exec.Command("amqp-publish", "--url", url, "-e", exchange, "-r", "scale", "-C", "application/json", "-b", body).CombinedOutput(); err != nil {
			t.Fatalf("amqp-publish: %v %s", err, out)
		}
	}
	args := []string{"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue}

	// Until the start-up grace (one 10s window) is over, a breach is held
	// back: keep publishing until it scales.
	until := func(step string, value float64, want int32) {
		t.Helper()
		testenv.WaitFor(t, step, 60*time.Second, func() bool {
			if replicas() == want {
				return true
			}
			publish(value)
			return false
		})
	}
	serve := startServe(t, state, args...)
	until("kube_scale +1 from the metric", 95, 3)
	publish(96) // inside the cooldown
	time.Sleep(2 * time.Second)
	if got := replicas(); got != 3 {
		t.Errorf("scaled again inside the cooldown: %d replicas", got)
	}
	serve.stop(t)

	serve = startServe(t, state, args...)
	publish(97) // still inside the cooldown, after a restart
	time.Sleep(2 * time.Second)
	if got := replicas(); got != 3 {
		t.Errorf("the cooldown was forgotten across a restart: %d replicas", got)
	}
	// Load drops: once the window's mean (scale.clj averages the last 10s,
	// the 97 included) is below 30 and the grace is over, the scale-down
	// fires (its own cooldown).
	until("kube_scale -1 from a low metric", 10, 2)
	serve.stop(t)
	if !strings.Contains(serve.output(), "bookings_cpu_down: scale fired, workflow kube_scale queued") {
		t.Errorf("serve output lacks the trigger:\n%s", serve.output())
	}
}
